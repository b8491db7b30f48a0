"""The real Claude Code CLI, pinned, installed from npm into .ci-cache on first use."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".ci-cache"
CURRENT = "2.1.330"
LEGACY = "2.0.77"  # the last JavaScript release: still sends warmup/prefix/filepath probes


def claude_binary(version: str) -> Path:
    target = CACHE / f"claude-code-{version}"
    binary = target / "node_modules" / ".bin" / "claude"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        message = "npm is not installed: the Claude Code end-to-end tests need Node.js and npm"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    target.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            subprocess.run(
                [
                    npm,
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    f"@anthropic-ai/claude-code@{version}",
                ],
                cwd=target,
                check=True,
                capture_output=True,
                timeout=600,
            )
    return binary


def run_claude(
    binary: Path,
    base_url: str,
    home: Path,
    prompt: str,
    *extra: str,
    token: str = "anything",
    timeout: float = 120,
) -> dict[str, Any]:
    """`claude -p PROMPT --output-format json` against fcc; returns the parsed result."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": token,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "IS_SANDBOX": "1",  # --dangerously-skip-permissions as root
    }
    proc = subprocess.run(
        [str(binary), "-p", prompt, "--output-format", "json", *extra],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    assert lines, f"claude printed no JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
