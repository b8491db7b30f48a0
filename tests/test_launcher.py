"""fcc claude with the real Claude Code CLI: it starts fcc when none answers (and leaves none
behind), uses one that does, passes arguments and exit status through, offers every reachable
model in the /model picker, tells the client the routes' real window; and fcc statusline."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Live, replay_config
from tests.support.claude import CURRENT, claude_binary
from tests.support.servers import free_port
from tests.test_state_live import fcc_serve

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
STATUSLINE = json.loads((HERE / "fixtures" / "claude-code" / "cc2.1.330-statusline.json").read_text())


@pytest.fixture(scope="module")
def claude_dir() -> Path:
    return claude_binary(CURRENT).parent


def _fcc_processes(marker: str) -> list[int]:
    """Processes whose command line names `marker` (the test's own config file)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
    return found


@pytest.fixture
def setup(
    tmp_path: Path, live_upstream: Live, claude_dir: Path
) -> Iterator[tuple[Path, dict[str, str], int]]:
    port = free_port()
    extra = f"""\
server:
  port: {port}
"""
    config = replay_config(tmp_path, live_upstream.upstream_url, extra)
    text = config.read_text()
    text = text.replace(
        "    local: true\n  replay_anthropic:",
        "    local: true\n    models:\n"
        "      - {id: 'text:small_window', context_window: 32768, max_output_tokens: 8192}\n"
        "      - {id: 'text:thinks', reasoning: true}\n"
        "    quirks: {reasoning_param: reasoning_effort}\n  replay_anthropic:",
    )
    text = text.replace("  haiku: replay/text:hi_there", "  haiku: replay/text:small_window")
    config.write_text(text)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{claude_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "IS_SANDBOX": "1",
    }
    yield config, env, port
    assert not _fcc_processes(str(config)), "an fcc started for the test is still running"


def fcc_claude(
    config: Path, env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fcc", "claude", "--config", str(config), *args],
        env=env,
        cwd=cwd or Path(env["HOME"]),
        capture_output=True,
        text=True,
        timeout=180,
    )


def result_of(proc: subprocess.CompletedProcess[str]) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    assert lines, f"no JSON (exit {proc.returncode}): {proc.stdout}\n{proc.stderr}"
    data: dict = json.loads(lines[-1])
    return data


def test_it_starts_fcc_runs_claude_and_leaves_nothing_behind(setup, live_upstream: Live):
    config, env, _ = setup
    before = len(live_upstream.upstream.requests)
    proc = fcc_claude(config, env, "-p", "say hello", "--output-format", "json")
    result = result_of(proc)
    assert proc.returncode == 0 and result["is_error"] is False, proc.stderr
    # The launcher's own default model is the opus tier alias, which routes where opus goes.
    assert result["result"] == "The command printed: hello-from-tool"
    assert [r.body["model"] for r in live_upstream.upstream.requests[before:]] == ["agent:echo", "agent:echo"]
    # The client was told the smallest window the routes can land on (haiku's 32k model).
    usage = result["modelUsage"]
    assert {u["contextWindow"] for u in usage.values()} == {32768}, usage
    assert (Path(env["XDG_STATE_HOME"]) / "free-claude-code" / "fcc-claude-serve.log").exists()
    assert not _fcc_processes(str(config))
    # Claude Code's own exit status comes back.
    failed = fcc_claude(config, env, "--no-such-option")
    assert failed.returncode != 0 and not _fcc_processes(str(config))


def test_a_running_fcc_is_used(setup, live_upstream: Live, tmp_path: Path):
    config, env, port = setup
    state = tmp_path / "served"
    state.mkdir()
    with fcc_serve(config, state, port=port) as url:
        pid = httpx.get(f"{url}/health").json()["pid"]
        proc = fcc_claude(
            config, env, "-p", "say hello", "--output-format", "json", "--model", "claude-haiku-fcc"
        )
        assert proc.returncode == 0 and result_of(proc)["result"] == "small window"
        assert _fcc_processes(str(config)) == [pid]  # no second fcc was started
        recent = httpx.get(f"{url}/dashboard/data").json()["recent"]
        assert recent and recent[0]["model"] == "claude-haiku-fcc"


def test_every_reachable_model_is_in_the_picker_and_lands_where_it_says(setup, live_upstream: Live):
    config, env, _ = setup
    # Discovery: the client fetches /v1/models (nonessential traffic stays allowed here).
    proc = fcc_claude(
        config, env, "-p", "hi", "--output-format", "json", "--model", "claude-fcc/replay/text:picked"
    )
    assert result_of(proc)["result"] == "picked"
    cache = json.loads((Path(env["HOME"]) / ".claude" / "cache" / "gateway-models.json").read_text())
    ids = {m["id"] for m in cache["models"]}
    assert {
        "claude-opus-fcc",
        "claude-fcc/replay/text:small_window",
        "claude-fcc-nothink/replay/text:thinks",
    } <= ids
    names = {m["id"]: m["display_name"] for m in cache["models"]}
    assert names["claude-fcc-nothink/replay/text:thinks"].endswith("(no thinking)")
    # The thinking model asks upstream for reasoning; its (no thinking) twin never does.
    before = len(live_upstream.upstream.requests)
    for model in ("claude-fcc/replay/text:thinks", "claude-fcc-nothink/replay/text:thinks"):
        fcc_claude(config, env, "-p", "hi", "--output-format", "json", "--model", model)
    bodies = [r.body for r in live_upstream.upstream.requests[before:] if r.body["model"] == "text:thinks"]
    assert "reasoning_effort" in bodies[0] and "reasoning_effort" not in bodies[-1]


def test_without_claude_on_path_it_says_how_to_install_it(setup):
    config, env, _ = setup
    proc = fcc_claude(config, {**env, "PATH": "/usr/bin:/bin"}, "-p", "hi")
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        == "claude is not on PATH: install Claude Code with `npm install -g @anthropic-ai/claude-code`"
    )


def test_statusline_names_the_route_of_the_sessions_last_request(setup, tmp_path: Path):
    config, env, port = setup
    state = tmp_path / "served"
    state.mkdir()
    session = STATUSLINE["session_id"]
    with fcc_serve(config, state, port=port) as url:
        httpx.post(
            f"{url}/v1/messages",
            json={
                "model": "claude-haiku-9",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"x-claude-code-session-id": session},
        )
        time.sleep(0.3)
        shown = subprocess.run(
            [sys.executable, "-m", "fcc", "statusline"],
            input=json.dumps(STATUSLINE),
            env={**env, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_AUTH_TOKEN": "x"},
            capture_output=True,
            text=True,
            timeout=10,
        )
    assert shown.returncode == 0 and shown.stdout.startswith("fcc · replay/text:small_window · "), (
        shown.stdout
    )
    assert " in / " in shown.stdout
    started = time.monotonic()
    stopped = subprocess.run(
        [sys.executable, "-m", "fcc", "statusline"],
        input=json.dumps(STATUSLINE),
        env={**env, "ANTHROPIC_BASE_URL": url},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert stopped.returncode == 0 and stopped.stdout.strip() == "fcc: not running"
    assert time.monotonic() - started < 2
