"""fcc/engine/transports/speed.py: the fast paths are used when installed and can each be turned off;
asking for one that is missing says how to get it. In CI (.ci/run) the integration tests also
run with FCC_LOOP=asyncio FCC_HTTP=h11, and the upstream-facing ones with FCC_UPSTREAM=httpx
as well."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fcc import __version__
from fcc.engine.transports import speed


def test_by_default_the_installed_fast_paths_are_used(monkeypatch: pytest.MonkeyPatch):
    for name in ("FCC_LOOP", "FCC_HTTP", "FCC_UPSTREAM"):
        monkeypatch.delenv(name, raising=False)
    assert speed.loop() == ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    assert speed.http() == ("httptools" if importlib.util.find_spec("httptools") else "h11")
    assert speed.upstream() == ("httptools" if importlib.util.find_spec("httptools") else "httpx")


def test_each_can_be_turned_off(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FCC_LOOP", "asyncio")
    monkeypatch.setenv("FCC_HTTP", "H11")
    monkeypatch.setenv("FCC_UPSTREAM", "httpx")
    assert (speed.loop(), speed.http(), speed.upstream()) == ("asyncio", "h11", "httpx")


def test_a_missing_fast_path_asked_for_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "uvloop" else real(name))
    monkeypatch.delenv("FCC_LOOP", raising=False)
    assert speed.loop() == "asyncio"  # auto: the stdlib loop, silently
    monkeypatch.setenv("FCC_LOOP", "uvloop")
    with pytest.raises(RuntimeError, match="pip install uvloop"):
        speed.loop()


def test_a_value_that_is_no_choice_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FCC_UPSTREAM", "curl")
    with pytest.raises(RuntimeError, match="FCC_UPSTREAM=curl: use auto, httptools or httpx"):
        speed.upstream()


def test_the_fcc_executable_never_imports_httpxs_own_command_line_client():
    """httpx imports its CLI (rich, pygments, click) whenever those are installed: ~50 ms of
    every `fcc serve` start. The executable keeps it out; httpx itself works as before."""
    code = (
        "import sys; sys.argv = ['fcc', '--help']; from fcc.launch import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import httpx, pygments\n"  # pygments is there: only the block keeps httpx._main out
        "print(sys.modules.get('httpx._main'), 'pygments.lexers' in sys.modules,"
        " httpx.Client().base_url == httpx.URL(''))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-3:] == ["None", "False", "True"], done.stdout + done.stderr


def test_fcc_serve_prints_its_banner_without_importing_rich(tmp_path: Path):
    """Importing and setting up rich is a tenth of a start on a slow machine (bench/MISSED.md):
    `fcc serve` prints its banner, the tiers table included, as plain lines, and rich stays out
    of the server's process."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "providers:\n  local:\n    display_name: Local\n    transport: openai_chat\n"
        "    base_url: http://127.0.0.1:9/v1\n    auth: none\n    local: true\n"
        "tiers:\n  opus: local/big\n  sonnet: local/mid\n  haiku: local/small\n  default: local/mid\n"
        "state: {backend: memory}\n",
        encoding="utf-8",
    )
    code = (
        "import sys, uvicorn\n"
        "uvicorn.run = lambda *a, **k: print('rich imported:', 'rich' in sys.modules)\n"
        f"sys.argv = ['fcc', 'serve', '--config', {str(config)!r}, '--port', '8999']\n"
        "from fcc.launch import main\nmain()\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_STATE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"fcc {__version__} listening on http://127.0.0.1:8999"
    assert "  export ANTHROPIC_BASE_URL=http://127.0.0.1:8999" in lines
    table = lines[lines.index("Tiers:") + 1 : -1]
    assert [row.split() for row in table] == [
        ["tier", "routes", "to", "from", "fallbacks"],
        ["opus", "local/big", "config", "-"],
        ["sonnet", "local/mid", "config", "-"],
        ["haiku", "local/small", "config", "-"],
        ["default", "local/mid", "config", "-"],
    ]
    assert len({row.index(row.split()[1]) for row in table}) == 1  # the columns line up
    assert lines[-1] == "rich imported: False"
