"""`fcc claude`: Claude Code, wired to fcc, in one command.

If an fcc answers on the configured address, Claude Code uses it; otherwise one is started
in the background for the life of the command (its log in the state directory) and stopped
when Claude Code exits. Claude Code gets the base URL and token, gateway model discovery, the
tier aliases as its models, and the context window of the smallest model the routes can land
on (CLAUDE_CODE_MAX_CONTEXT_TOKENS: what the client actually reads, for ids it does not know
as Claude's), so it compacts before that backend overflows. Every other argument goes to
`claude` unchanged, and its exit status is fcc claude's.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

import msgspec

from fcc.engine.catalog.config import Settings, state_dir
from fcc.engine.errors import FccError

INSTALL = "npm install -g @anthropic-ai/claude-code"
PLACEHOLDER_TOKEN = "fcc-local"  # loopback without server.auth_token: any token will do
UNKNOWN_WINDOW = 200_000  # no routed model has a known window: Claude's own size, and fcc's 400 on overflow
READY_WITHIN = 30.0
LOCAL_TIMEOUT_MS = "1800000"  # slow local models: 30 min per request before the client gives up


class LaunchError(FccError):
    pass


class Window(msgspec.Struct, frozen=True):
    tokens: int
    output: int | None  # CLAUDE_CODE_MAX_OUTPUT_TOKENS to set (None: the client's default)
    smallest: str | None  # the model it comes from (None: no window known)


def window_for(settings: Settings) -> Window:
    """The smallest context window the session's routes can land on, and an output budget
    that leaves the client room to compact (it compacts at window - min(output, 20000) - 13000)."""
    known: list[tuple[int, str, int | None]] = []
    for ref in settings.routed():
        provider = settings.providers.get(ref.provider)
        info = provider.model(ref.model) if provider else None
        if provider is not None and info is not None and info.context_window:
            known.append((info.context_window, str(ref), provider.output_cap(ref.model)))
    if not known:
        return Window(UNKNOWN_WINDOW, None, None)
    tokens, smallest, cap = min(known)
    if tokens >= UNKNOWN_WINDOW:
        return Window(tokens, None, smallest)
    output = max(4096, tokens // 8)
    return Window(tokens, min(output, cap) if cap else output, smallest)


def fcc_at(url: str) -> int | None:
    """The pid of the fcc answering at `url`, None if nothing answers; LaunchError if
    something else does."""
    try:
        with urllib.request.urlopen(f"{url}/", timeout=1) as response:
            hello = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if not isinstance(hello, dict) or hello.get("name") != "fcc":
        raise LaunchError(
            f"{url} answers, but it is not fcc: free the port or set server.port in config.yaml"
        )
    return int(hello.get("pid") or 0)


def _die_with_parent() -> None:
    """In the started server, before exec: on Linux, SIGTERM when fcc claude itself dies, so
    not even a kill -9 of the launcher leaves an fcc behind."""
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_server(settings: Settings, config: Path | None, url: str) -> subprocess.Popen[bytes]:
    log_path = state_dir() / "fcc-claude-serve.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        "fcc",
        "serve",
        "--host",
        settings.server.host,
        "--port",
        str(settings.server.port),
    ]
    if config is not None:
        args += ["--config", str(config)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            raise LaunchError(f"fcc serve did not start (see {log_path}): {' / '.join(tail) or 'no output'}")
        with contextlib.suppress(LaunchError):
            if fcc_at(url) is not None:
                return proc
        time.sleep(0.1)
    stop_server(proc)
    raise LaunchError(f"fcc serve did not answer within {READY_WITHIN:g} s (see {log_path})")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def client_env(settings: Settings, url: str, base: Mapping[str, str]) -> dict[str, str]:
    """Claude Code's environment: where fcc is, and what it must be told; the user's own
    settings of the other variables win."""
    env = dict(base)
    env["ANTHROPIC_BASE_URL"] = url
    env["ANTHROPIC_AUTH_TOKEN"] = settings.server.auth_token or PLACEHOLDER_TOKEN
    env.pop("ANTHROPIC_API_KEY", None)  # one credential: the client would otherwise ask which
    window = window_for(settings)
    wanted = {
        "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1",
        # Ids the client does not know as Claude's: it then reads the window below (for
        # Claude ids it would assume Claude's own, far beyond a local model's).
        "ANTHROPIC_MODEL": "claude-opus-fcc",
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "claude-opus-fcc",
        "ANTHROPIC_DEFAULT_SONNET_MODEL": "claude-sonnet-fcc",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-fcc",
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": str(window.tokens),
    }
    for tier in ("opus", "sonnet", "haiku"):
        route = settings.tiers.get(tier)
        if route is not None:
            wanted[f"ANTHROPIC_DEFAULT_{tier.upper()}_MODEL_NAME"] = f"{tier.capitalize()} → {route.target}"
    if window.output is not None:
        wanted["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(window.output)
    if any(p.local for r in settings.routed() if (p := settings.providers.get(r.provider)) is not None):
        wanted["API_TIMEOUT_MS"] = LOCAL_TIMEOUT_MS
    for name, value in wanted.items():
        env.setdefault(name, value)
    return env


def claude_binary(base: Mapping[str, str]) -> str:
    found = shutil.which("claude", path=base.get("PATH"))
    if found is None:
        raise LaunchError(f"claude is not on PATH: install Claude Code with `{INSTALL}`")
    return found


def launch(
    settings: Settings, config: Path | None, args: list[str], base: Mapping[str, str] | None = None
) -> int:
    base = os.environ if base is None else base
    claude = claude_binary(base)
    url = settings.server.url
    started: subprocess.Popen[bytes] | None = None
    if fcc_at(url) is None:
        started = start_server(settings, config, url)
    env = client_env(settings, url, base)
    try:
        child = subprocess.Popen([claude, *args], env=env)

        def forward(signum: int, _frame: FrameType | None) -> None:
            # Ctrl-C reaches Claude Code from the terminal itself; other signals are passed on.
            if signum != signal.SIGINT:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        code = child.wait()
    finally:
        if started is not None:
            stop_server(started)
    return code if code >= 0 else 128 - code
