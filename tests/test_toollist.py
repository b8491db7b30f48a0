"""A tool list seen before is parsed, checked, measured, translated and encoded once
(translate/toollist.py), and nothing an upstream or a client sees changes: every value and
every byte is what parsing the whole request afresh gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import pytest

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.providers import Quirks
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.errors import ClientError
from fcc.engine.request.features import features_of
from fcc.engine.server import create_app
from fcc.engine.translate import toollist, wire
from fcc.engine.translate.anthropic_request import to_anthropic_upstream
from fcc.engine.translate.openai_request import Target, to_openai
from fcc.engine.translate.tokens import ToolSizes, tally
from fcc.engine.translate.validate import check_request
from tests.conftest import FIXTURES, Live, replay_config
from tests.support.servers import serve

RECORDED = {
    p.stem: p.read_bytes() for p in sorted(FIXTURES.glob("*.json")) if json.loads(p.read_bytes()).get("body")
}
MAIN_TURNS = [name for name in RECORDED if "-main-" in name]


def body_bytes(name: str, **changes: Any) -> bytes:
    body = {**json.loads(RECORDED[name])["body"], **changes}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.fixture(autouse=True)
def _no_lists_kept() -> None:
    toollist.clear()


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_a_recorded_request_parses_to_what_the_whole_parse_gives(name: str):
    raw = body_bytes(name)
    first, again = toollist.parse_body(raw), toollist.parse_body(raw)
    assert first == again == json.loads(raw)
    assert list(first) == list(json.loads(raw))  # the members' order too


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"m","messages":[]}',  # no tools member: parsed whole
        b'{"tools":{"name":"x"},"model":"m"}',  # not a list: parsed, never shared
        b'{"tools":[{"name":"a"}],"tools":[{"name":"b"}],"n":12345678901234567890123}',
        b'{"a":{"tools":[1]},"tools":[],"b":[1.5,true,null,"\\u00e9"]}',
        b'[{"tools":[]}]',  # not an object: the whole parse decides
        b'"tools"',
    ],
)
def test_any_json_parses_as_the_whole_parse_does(raw: bytes):
    assert toollist.parse_body(raw) == wire.fast_loads(raw) == json.loads(raw)


@pytest.mark.parametrize(
    "raw", [b'{"tools":[1,]}', b'{"tools":[1]', b'{"tools":"\\ud800"}', b'{"tools":[]} x', b"tools"]
)
def test_what_msgspec_refuses_is_refused_the_same_way(raw: bytes):
    with pytest.raises(wire.DecodeError):
        wire.fast_loads(raw)
    with pytest.raises(wire.DecodeError):
        toollist.parse_body(raw)


def test_deep_nesting_is_a_decode_error_not_a_crash():
    raw = b'{"tools":[' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    with pytest.raises(wire.DecodeError):
        toollist.parse_body(raw)


def test_the_same_tools_are_shared_and_other_tools_are_not():
    turn = "cc2.1.330-main-tool-turn2-result"
    one = toollist.parse_body(body_bytes(turn))
    two = toollist.parse_body(body_bytes(turn, messages=[{"role": "user", "content": "other"}]))
    assert two["tools"] is one["tools"]
    assert two["messages"] is not one["messages"]
    known = toollist.shared(one["tools"])
    assert known is not None and known.tools is one["tools"]
    other = toollist.parse_body(body_bytes("cc2.1.197-main-say-hello"))
    assert other["tools"] is not one["tools"] and toollist.shared(other["tools"]) is not known
    assert toollist.shared(json.loads(body_bytes(turn))["tools"]) is None  # equal, not the one


def test_only_the_last_lists_are_kept():
    firsts = [
        toollist.parse_body(b'{"tools":[{"name":"t%d"}]}' % i)["tools"] for i in range(toollist.MAX_LISTS + 2)
    ]
    assert len(toollist.known_lists()) == toollist.MAX_LISTS
    assert toollist.shared(firsts[0]) is None and toollist.shared(firsts[-1]) is not None
    again = toollist.parse_body(b'{"tools":[{"name":"t0"}]}')["tools"]
    assert again is not firsts[0] and again == firsts[0]
    # A forgotten list leaves no encoding behind: one per kept list, plus each translation.
    target = Target("up-model", Quirks())
    for listed in [again, *firsts[-3:]]:
        to_openai({"messages": [{"role": "user", "content": "hi"}], "tools": listed}, target)
    assert len(toollist._wire) == toollist.MAX_LISTS + 4
    toollist.clear()
    assert not toollist._wire and not toollist.known_lists()


QUIRKS = [
    Quirks(),
    Quirks(
        strip_keywords=frozenset({"$schema", "additionalProperties", "format"}), drop_empty_properties=True
    ),
    Quirks(strict_tools=True),
]


@pytest.mark.parametrize("name", MAIN_TURNS)
def test_the_upstream_body_is_byte_for_byte_the_one_encoded_afresh(name: str):
    """Each provider's policy translates the same list its own way: one after the other, as
    when a session's turns fall back from one provider to another."""
    tools = json.loads(RECORDED[name])["body"]["tools"]
    raw = body_bytes(name, tools=[{**tools[0], "strict": True}, *tools[1:]])
    for quirks in [*QUIRKS, *QUIRKS]:
        target = Target("up-model", quirks, output_cap=8192, thinking=True)
        afresh = wire.dumps(to_openai(json.loads(raw), target))
        assert toollist.encode_body(to_openai(toollist.parse_body(raw), target)) == afresh
        passed = wire.dumps(to_anthropic_upstream(json.loads(raw), "up-model", quirks, False, 8192))
        sent = to_anthropic_upstream(toollist.parse_body(raw), "up-model", quirks, False, 8192)
        assert toollist.encode_body(sent) == passed
    assert len(toollist.known_lists()) == 1


@pytest.mark.parametrize("name", MAIN_TURNS)
def test_the_estimate_and_the_features_are_those_of_the_whole_parse(name: str):
    raw = body_bytes(name)
    sizes = ToolSizes()
    afresh = json.loads(raw)
    for _ in range(2):
        body = toollist.parse_body(raw)
        assert toollist.shared(body["tools"]) is not None
        assert tally(body, sizes) == tally(afresh, ToolSizes()) == tally(afresh)
        assert features_of(body, {}, sizes=sizes) == features_of(afresh, {})


def test_a_bad_tool_list_is_refused_every_time_it_comes():
    raw = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":7}]}'
    for _ in range(2):
        with pytest.raises(ClientError, match=r"tools\[0\]\.name: must be a string"):
            check_request(toollist.parse_body(raw), need_max_tokens=True)
    good = raw.replace(b'"name":7', b'"name":"t"')
    for _ in range(2):
        check_request(toollist.parse_body(good), need_max_tokens=True)
    # A known good list is not checked again; the rest of the request still is.
    with pytest.raises(ClientError, match="max_tokens"):
        check_request(
            toollist.parse_body(good.replace(b'"max_tokens":5', b'"max_tokens":-1')), need_max_tokens=True
        )


@pytest.mark.parametrize("use", ["replay/agent:echo", "replay_anthropic/agent:echo"])
def test_through_the_server_every_turn_sends_the_bytes_a_fresh_parse_would(
    use: str, tmp_path: Path, live_upstream: Live
):
    """Three turns of a recorded Claude Code session with the same tools, from the SDK: the
    upstream gets the same tools JSON each time, and each body equals the one sent when
    nothing is remembered."""
    upstream = live_upstream.upstream
    turn = json.loads(RECORDED["cc2.1.330-main-tool-turn2-result"])["body"]
    config = replay_config(tmp_path, live_upstream.upstream_url, f"routes:\n  - name: r\n    use: [{use}]\n")
    sent: list[bytes] = []
    with (
        serve(create_app(load_settings(config), KeyStore(environ={}))) as url,
        anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk,
    ):
        for i, clear in enumerate([False, False, True]):
            if clear:
                toollist.clear()
            before = len(upstream.requests)
            messages = [
                *turn["messages"],
                {"role": "assistant", "content": f"turn {i}"},
                {"role": "user", "content": "go on"},
            ]
            with sdk.messages.stream(
                model="claude-fcc-test",
                max_tokens=64,
                system=turn["system"],
                tools=turn["tools"],
                messages=messages,
            ) as stream:
                assert stream.get_final_message().content
            assert len(upstream.requests) == before + 1
            sent.append(upstream.requests[-1].raw)
    assert len(sent[0]) > 20_000
    tools = [json.dumps(json.loads(s)["tools"]) for s in sent]
    assert tools[0] == tools[1] == tools[2]
    # Turn 3 went out with nothing remembered: its bytes are the reference for its messages.
    fresh = json.loads(sent[2])
    for earlier in sent[:2]:
        assert {k: v for k, v in json.loads(earlier).items() if k != "messages"} == {
            k: v for k, v in fresh.items() if k != "messages"
        }
    assert sent[1].count(b'"tools":') == 1 and sent[1].index(b'"tools":') == sent[2].index(b'"tools":')
