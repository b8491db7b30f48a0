"""fcc/engine/transports/speed.py: the fast paths are used when installed and can each be turned off;
asking for one that is missing says how to get it. The whole integration suite also runs with
FCC_LOOP=asyncio FCC_HTTP=h11 FCC_UPSTREAM=httpx in CI (.ci/run)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from fcc.engine.transports import speed


def test_by_default_the_installed_fast_paths_are_used(monkeypatch: pytest.MonkeyPatch):
    for name in ("FCC_LOOP", "FCC_HTTP", "FCC_UPSTREAM"):
        monkeypatch.delenv(name, raising=False)
    assert speed.loop() == ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    assert speed.http() == ("httptools" if importlib.util.find_spec("httptools") else "h11")
    assert speed.upstream() == "aiohttp"


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
    with pytest.raises(RuntimeError, match="FCC_UPSTREAM=curl: use auto, aiohttp or httpx"):
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
