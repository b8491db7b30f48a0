"""The bench's command-line tools, run as a user runs them, for their tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_json(module: str, *args: str, timeout: float) -> Any:
    """`python -m MODULE ARGS --json` from the repository's root: its JSON; a failed run fails
    the test with the end of what it wrote to stderr."""
    run = subprocess.run(
        [sys.executable, "-m", module, *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)
