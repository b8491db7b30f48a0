"""What issue #11 pins through fcc on loopback with the official SDK: tool input that always
parses (streamed and not, both transports), and context edits that reach an
Anthropic-compatible upstream unless the route forces thinking off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from tests.conftest import Live, replay_config
from tests.support.servers import serve

USER = [{"role": "user", "content": "read two files"}]
CUT = [
    # (model, the text that must survive, how many whole tool calls must arrive)
    ("replay/case:tool_call_cut_mid_arguments", "Checking both files.", 1),
    ("replay/case:tool_call_cut_only_call", None, 0),
    ("replay_anthropic/case:tool_use_cut_mid_input", "Let me look.", 0),
]


@pytest.fixture
def client(fcc_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fcc_url, api_key="anything", max_retries=0) as sdk:
        yield sdk


@pytest.mark.parametrize(("model", "text", "calls"), CUT)
def test_a_tool_call_cut_by_max_tokens_is_not_delivered(model, text, calls, client):
    with client.messages.stream(model=model, max_tokens=40, messages=USER) as stream:
        streamed = stream.get_final_message()  # raises if any tool input does not parse
    whole = client.messages.create(model=model, max_tokens=40, messages=USER)
    for message in (streamed, whole):
        assert message.stop_reason == "max_tokens"
        tools = [b for b in message.content if b.type == "tool_use"]
        assert len(tools) == calls
        assert all(isinstance(b.input, dict) and b.input for b in tools)
        texts = [b.text for b in message.content if b.type == "text"]
        assert texts == ([text] if text else [])


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "replay/case:tool_call_python_dict_args",
            {"command": "ls -la", "run_in_background": False, "timeout": None},
        ),
        ("replay/case:tool_call_prose_args", {}),
        ("replay_anthropic/case:tool_use_python_dict_input", {"command": "pwd", "sandbox": True}),
        ("replay_anthropic/case:llamacpp_tool_use_without_input", {"city": "Paris"}),
    ],
)
def test_complete_tool_input_always_parses(model, expected, client):
    with client.messages.stream(model=model, max_tokens=40, messages=USER) as stream:
        streamed = stream.get_final_message()
    whole = client.messages.create(model=model, max_tokens=40, messages=USER)
    for message in (streamed, whole):
        first = next(b for b in message.content if b.type == "tool_use")
        assert first.input == expected
        assert message.stop_reason == "tool_use"


EDITS = [
    {"type": "clear_thinking_20251015", "keep": "all"},
    {"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": 30000}},
]


@pytest.fixture
def forced_off_url(tmp_path: Path, live_upstream: Live) -> Iterator[str]:
    # A tier whose route says thinking: false, beside the replay config's usual ones.
    config = replay_config(tmp_path, live_upstream.upstream_url)
    text = config.read_text(encoding="utf-8").replace(
        "  opus: replay/agent:echo",
        "  opus: {model: replay_anthropic/text:no_thinking_here, thinking: false}",
    )
    config.write_text(text, encoding="utf-8")
    with serve(create_app(load_settings(config), KeyStore(environ={}))) as url:
        yield url


def _sent(live_upstream: Live, model: str) -> dict:
    return next(r.body for r in reversed(live_upstream.upstream.requests) if r.body["model"] == model)


@pytest.mark.parametrize("thinking", [None, {"type": "adaptive"}])
def test_context_edits_reach_an_anthropic_upstream_unchanged(thinking, client, live_upstream: Live):
    extra = {"thinking": thinking} if thinking else {}
    client.messages.create(
        model="replay_anthropic/text:edits_kept",
        max_tokens=20,
        messages=USER,
        extra_body={"context_management": {"edits": EDITS}, **extra},
    )
    sent = _sent(live_upstream, "text:edits_kept")
    assert sent["context_management"] == {"edits": EDITS}
    assert sent.get("thinking") == thinking


def test_a_route_forcing_thinking_off_drops_only_the_thinking_edit(forced_off_url: str, live_upstream: Live):
    with anthropic.Anthropic(base_url=forced_off_url, api_key="x", max_retries=0) as sdk:
        sdk.messages.create(
            model="claude-opus-5-5",
            max_tokens=20,
            messages=USER,
            thinking={"type": "adaptive"},
            extra_body={"context_management": {"edits": EDITS}},
        )
    sent = _sent(live_upstream, "text:no_thinking_here")
    assert "thinking" not in sent
    assert sent["context_management"] == {"edits": [EDITS[1]]}
