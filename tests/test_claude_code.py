"""The real Claude Code CLI, through fcc, against a real upstream on loopback."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from fcc.engine.catalog.config import Settings, load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from tests.conftest import Live, replay_config
from tests.support.claude import CURRENT, LEGACY, claude_binary, run_claude
from tests.support.servers import serve

pytestmark = pytest.mark.slow

# A prompt the test upstream's agent answers with one Bash call, then a quote of its output.
TOOL_RUN = (
    "run echo hello-from-tool and tell me what it printed",
    "--allowedTools",
    "Bash",
    "--dangerously-skip-permissions",
)


@pytest.fixture(scope="module")
def claude() -> Path:
    return claude_binary(CURRENT)


def test_plain_answer(claude: Path, fcc_url: str, tmp_path: Path, live_upstream: Live):
    result = run_claude(claude, fcc_url, tmp_path, "say hello", "--model", "claude-haiku-4-5")
    assert result["is_error"] is False, result
    assert result["result"] == "hi there"
    assert result["usage"]["input_tokens"] > 0


def test_tool_round_trip(claude: Path, fcc_url: str, tmp_path: Path, live_upstream: Live):
    before = len(live_upstream.upstream.requests)
    result = run_claude(
        claude,
        fcc_url,
        tmp_path,
        *TOOL_RUN,
    )
    assert result["is_error"] is False, result
    assert result["result"] == "The command printed: hello-from-tool"
    assert result["num_turns"] == 2
    # The second upstream request carried the tool's real output back, paired by id.
    turns = [r.body for r in live_upstream.upstream.requests[before:] if r.body.get("tools")]
    last = turns[-1]["messages"]
    assert last[-1]["role"] == "tool" and last[-1]["content"].strip() == "hello-from-tool"
    assert last[-1]["tool_call_id"] == last[-2]["tool_calls"][0]["id"] == "call_echo1"


def test_auth_token_enforced(claude: Path, replay_settings: Settings, tmp_path: Path):
    import msgspec

    server = msgspec.structs.replace(replay_settings.server, auth_token="s3cret-token")
    settings = msgspec.structs.replace(replay_settings, server=server)
    with serve(create_app(settings, KeyStore(environ={}))) as url:
        ok = run_claude(
            claude, url, tmp_path, "say hello", "--model", "claude-haiku-4-5", token="s3cret-token"
        )
        assert ok["result"] == "hi there"
        denied = run_claude(claude, url, tmp_path, "say hello", "--model", "claude-haiku-4-5", token="wrong")
        assert denied["is_error"] is True


def test_session_survives_a_rate_limited_primary(claude: Path, tmp_path: Path, live_upstream: Live):
    path = replay_config(tmp_path, live_upstream.upstream_url, "fallbacks:\n  opus: [replay/agent:echo]\n")
    path.write_text(path.read_text().replace("opus: replay/agent:echo", "opus: replay/status:429"))
    before = len(live_upstream.upstream.requests)
    with serve(create_app(load_settings(path), KeyStore(environ={}))) as url:
        result = run_claude(
            claude,
            url,
            tmp_path,
            *TOOL_RUN,
        )
    assert result["is_error"] is False, result
    assert result["result"] == "The command printed: hello-from-tool"
    models = [r.body["model"] for r in live_upstream.upstream.requests[before:]]
    # The primary said 429 (retry after 7 s) once; the rest of the session went to the fallback.
    assert models == ["status:429", "agent:echo", "agent:echo"]


def test_legacy_client(fcc_url: str, tmp_path: Path):
    result = run_claude(claude_binary(LEGACY), fcc_url, tmp_path, "say hello", "--model", "claude-haiku-4-5")
    assert result["is_error"] is False, result
    assert result["result"] == "hi there"


def test_legacy_client_busywork_never_reaches_the_upstream(
    fcc_url: str, tmp_path: Path, live_upstream: Live, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="fcc.request")
    before = len(live_upstream.upstream.requests)
    result = run_claude(
        claude_binary(LEGACY),
        fcc_url,
        tmp_path,
        "run echo hello-from-tool and tell me what it printed",
        "--allowedTools",
        "Bash",
    )
    assert result["result"] == "The command printed: hello-from-tool"
    sent = live_upstream.upstream.requests[before:]
    # Only the two real model turns went upstream: no warmup, no file-path extraction.
    assert len(sent) == 2
    assert all(len(r.body["messages"]) > 1 and r.body.get("tools") for r in sent)
    answered = [r.getMessage() for r in caplog.records if "probe:" in r.getMessage()]
    assert sum("probe:warmup" in m for m in answered) >= 1
    assert any("probe:file_paths" in m for m in answered)


ROUTED = """\
routes:
  - name: subagents
    when: {subagent: true}
    use: replay/text:hi
  - name: background
    when: {family: haiku}
    use: replay/text:from_the_background_rule
"""


def test_routing_rules_decide_for_the_real_client(claude: Path, tmp_path: Path, live_upstream: Live):
    path = replay_config(tmp_path, live_upstream.upstream_url, ROUTED)
    path.write_text(path.read_text().replace("opus: replay/agent:echo", "opus: replay/agent:spawn"))
    with serve(create_app(load_settings(path), KeyStore(environ={}))) as url:
        # A haiku run lands where the haiku rule says, not on the haiku tier.
        before = len(live_upstream.upstream.requests)
        result = run_claude(claude, url, tmp_path, "say hello", "--model", "claude-haiku-4-5")
        assert result["result"] == "from the background rule", result
        assert [r.body["model"] for r in live_upstream.upstream.requests[before:]] == [
            "text:from_the_background_rule"
        ]
        # The main agent (opus) hands the work to a subagent: the subagent's own request goes
        # where the subagent rule says; the main turns stay on the opus tier.
        before = len(live_upstream.upstream.requests)
        result = run_claude(
            claude,
            url,
            tmp_path,
            "use a subagent to say hi",
            "--model",
            "claude-opus-5-5",
            "--dangerously-skip-permissions",
        )
        rules = [r["rule"] for r in reversed(httpx.get(f"{url}/dashboard/data").json()["recent"])]
    assert result["is_error"] is False, result
    assert result["result"] == "The subagent said: hi", result
    sent = live_upstream.upstream.requests[before:]
    assert [r.body["model"] for r in sent] == ["agent:spawn", "text:hi", "agent:spawn"]
    assert rules[-3:] == ["tier:opus", "subagents", "tier:opus"]
