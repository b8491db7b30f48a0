"""fcc served by uvicorn on loopback, a real upstream behind it, the official SDK in front."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import msgspec
import pytest

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from tests.conftest import Live, replay_config
from tests.support.grammar import check_grammar, parse_sse
from tests.support.servers import free_port, serve
from tests.support.upstream import Upstream

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def client(fcc_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fcc_url, api_key="anything", max_retries=0) as sdk:
        yield sdk


def raw_stream(url: str, model: str, **body) -> tuple[httpx.Response, list]:
    payload = {"model": model, "max_tokens": 100, "stream": True, "messages": USER, **body}
    response = httpx.post(f"{url}/v1/messages?beta=true", json=payload, timeout=30)
    events = (
        parse_sse(response.text)
        if response.headers.get("content-type", "").startswith("text/event-stream")
        else []
    )
    return response, events


@pytest.mark.parametrize(
    "case",
    [
        "text_basic",
        "tool_call_kimi_ids",
        "reasoning_then_tool_call",
        "tool_calls_parallel_interleaved",
        "unicode_and_escapes",
    ],
)
def test_streams_are_grammatical_and_match_non_streaming(
    case: str, client: anthropic.Anthropic, fcc_url: str
):
    response, events = raw_stream(fcc_url, f"replay/case:{case}", thinking={"type": "adaptive"})
    assert response.status_code == 200
    assert response.headers["x-fcc-route"] == f"replay/case:{case}"
    check_grammar(events)
    with client.messages.stream(
        model=f"replay/case:{case}", max_tokens=100, messages=USER, thinking={"type": "adaptive"}
    ) as stream:
        streamed = stream.get_final_message()
    whole = client.messages.create(
        model=f"replay/case:{case}", max_tokens=100, messages=USER, thinking={"type": "adaptive"}
    )
    strip = lambda m: [b.model_dump(exclude={"parsed_output"}) for b in m.content]  # noqa: E731
    streamed_blocks = strip(streamed)
    for block in streamed_blocks + strip(whole):
        if block["type"] == "tool_use":
            block.pop("id")  # synthesized ids differ per request; everything else must not
    assert streamed_blocks == [{k: v for k, v in b.items() if k != "id"} for b in strip(whole)]
    assert streamed.stop_reason == whole.stop_reason
    assert streamed.usage.output_tokens == whole.usage.output_tokens > 0


def test_tool_call_round_trip_through_the_sdk(client: anthropic.Anthropic, live_upstream: Live):
    first = client.messages.create(
        model="replay/case:tool_call_kimi_ids",
        max_tokens=100,
        messages=USER,
        tools=[
            {"name": "Bash", "input_schema": {"type": "object"}},
            {"name": "Read", "input_schema": {"type": "object"}},
        ],
    )
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert [c.name for c in calls] == ["Bash", "Read"]
    assert all(c.id.replace("_", "").replace("-", "").isalnum() for c in calls)
    assert calls[0].input == {"command": "pytest -x -q", "description": "Run tests"}
    client.messages.create(
        model="replay/text:done",
        max_tokens=100,
        messages=[
            *USER,
            {
                "role": "assistant",
                "content": [c.model_dump(exclude={"caller"}, exclude_none=True) for c in calls],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": c.id, "content": "ok"} for c in calls],
            },
        ],
    )
    sent = live_upstream.upstream.requests[-1].body["messages"]
    # Kimi's own ids come back to Kimi, though the client only ever saw sanitized ones.
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["functions.Bash:0", "functions.Read:1"]
    assert [m["tool_call_id"] for m in sent[2:4]] == ["functions.Bash:0", "functions.Read:1"]


def test_tiers_route_by_family(client: anthropic.Anthropic, live_upstream: Live):
    msg = client.messages.create(model="claude-haiku-4-5-20251001", max_tokens=10, messages=USER)
    assert msg.content[0].text == "hi there"
    assert msg.model == "claude-haiku-4-5-20251001"
    assert live_upstream.upstream.requests[-1].body["model"] == "text:hi_there"


def test_anthropic_upstream_is_normalized(client: anthropic.Anthropic, fcc_url: str):
    response, events = raw_stream(fcc_url, "replay_anthropic/case:llamacpp_out_of_order_stop")
    assert response.status_code == 200
    check_grammar(events)
    msg = client.messages.create(
        model="replay_anthropic/case:llamacpp_out_of_order_stop", max_tokens=10, messages=USER
    )
    assert [b.type for b in msg.content] == [
        b["content_block"]["type"] for _, b in events if _ == "content_block_start"
    ]
    text = client.messages.create(model="replay_anthropic/text:hello_world", max_tokens=10, messages=USER)
    assert text.content[0].text == "helloworld" or text.content[0].text.replace(" ", "") == "helloworld"


def test_mid_stream_error_ends_with_an_error_event(fcc_url: str, client: anthropic.Anthropic):
    response, events = raw_stream(fcc_url, "replay/case:error_object_in_stream")
    assert response.status_code == 200
    check_grammar(events)
    assert events[-1][0] == "error"
    with pytest.raises(anthropic.APIStatusError):
        client.messages.create(model="replay/case:error_object_in_stream", max_tokens=10, messages=USER)


def test_context_overflow_before_content_is_a_400_that_compacts(client: anthropic.Anthropic, fcc_url: str):
    for model in ("replay/overflow:x", "replay/case:error_vllm_object"):
        with pytest.raises(anthropic.BadRequestError) as err:
            client.messages.create(model=model, max_tokens=10, messages=USER)
        assert err.value.body["error"]["message"].startswith("prompt is too long")
        response, _ = raw_stream(fcc_url, model)
        assert response.status_code == 400


@pytest.mark.parametrize(
    ("code", "status", "error_type"),
    [
        (429, 429, "rate_limit_error"),
        (500, 500, "api_error"),
        (503, 529, "overloaded_error"),
        (504, 504, "timeout_error"),
        (402, 402, "billing_error"),
        (422, 400, "invalid_request_error"),
    ],
)
def test_upstream_errors_become_anthropic_errors(code, status, error_type, fcc_url: str):
    response, _ = raw_stream(fcc_url, f"replay/status:{code}")
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert response.headers["request-id"].startswith("req_")
    if code == 429:
        assert response.headers["retry-after"] == "7"


def test_upstream_key_rejections_stop_the_clients_retries(fcc_url: str):
    for code in (401, 403, 404):
        response, _ = raw_stream(fcc_url, f"replay/status:{code}")
        assert response.status_code == code
        assert response.headers["x-should-retry"] == "false"


def test_missing_key_says_which_variable(tmp_path: Path, live_upstream: Live):
    extra = f"""\
  keyed:
    display_name: Keyed
    transport: openai_chat
    base_url: {live_upstream.upstream_url}/v1
    auth: bearer
    api_key_env: FCC_TEST_KEYED_KEY
"""
    path = replay_config(tmp_path, live_upstream.upstream_url)
    text = path.read_text().replace("tiers:", extra.rstrip("\n") + "\ntiers:", 1)
    path.write_text(text)
    settings = load_settings(path)
    with serve(create_app(settings, KeyStore(environ={}))) as url:
        response, _ = raw_stream(url, "keyed/text:x")
        assert response.status_code == 401
        assert "FCC_TEST_KEYED_KEY" in response.json()["error"]["message"]
        assert response.headers["x-should-retry"] == "false"
    with serve(create_app(settings, KeyStore(environ={"FCC_TEST_KEYED_KEY": "sk-live-123456789"}))) as url:
        response, events = raw_stream(url, "keyed/text:x")
        assert response.status_code == 200
        check_grammar(events)
    assert live_upstream.upstream.requests[-1].headers["authorization"] == "Bearer sk-live-123456789"


def test_unreachable_backend_names_provider_url_and_fix(tmp_path: Path, live_upstream: Live):
    dead = f"http://127.0.0.1:{free_port()}"
    path = replay_config(tmp_path, live_upstream.upstream_url)
    path.write_text(path.read_text() + "  \n")
    settings = load_settings(path)
    provider = msgspec.structs.replace(settings.providers["replay"], base_url=dead + "/v1")
    settings = msgspec.structs.replace(settings, providers={**settings.providers, "replay": provider})
    with serve(create_app(settings, KeyStore(environ={}))) as url:
        response, _ = raw_stream(url, "claude-haiku-4-5")
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert dead in message and "Replay upstream" in message and "--tier" in message
    assert response.headers["x-should-retry"] == "false"


def test_fallback_before_content(tmp_path: Path, live_upstream: Live):
    path = replay_config(
        tmp_path,
        live_upstream.upstream_url,
        "fallbacks:\n  default: [replay/status:500, replay/text:rescued]\n",
    )
    path.write_text(
        path.read_text().replace(
            "default: replay/text:hello_from_the_test_upstream", "default: replay/status:429"
        )
    )
    with serve(create_app(load_settings(path), KeyStore(environ={}))) as url:
        with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as client:
            msg = client.messages.create(model="some-model", max_tokens=10, messages=USER)
        assert msg.content[0].text == "rescued"
        response, events = raw_stream(url, "some-model")
        assert response.headers["x-fcc-route"] == "replay/text:rescued"
        check_grammar(events)


def test_pings_keep_a_slow_stream_alive(tmp_path: Path):
    slow = Upstream(delay=0.4)
    with serve(slow.app()) as upstream_url:
        path = replay_config(tmp_path, upstream_url, "server:\n  ping_interval: 0.1\n")
        with serve(create_app(load_settings(path), KeyStore(environ={}))) as url:
            response, events = raw_stream(url, "replay/text:slow_words_here")
    assert response.status_code == 200
    check_grammar(events)
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names.count("message_start") == 1
    assert "ping" in names[1 : names.index("content_block_start")]
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "slow words here"


def test_count_tokens_counts_everything(client: anthropic.Anthropic, fcc_url: str):
    from tests.conftest import FIXTURES

    body = json.loads((FIXTURES / "cc2.0.77-count-tokens-tools.json").read_text())["body"]
    with_tools = client.messages.count_tokens(**body).input_tokens
    without = client.messages.count_tokens(model=body["model"], messages=body["messages"]).input_tokens
    assert without < 20 < 5000 < with_tools  # 18 tool schemas are most of the prompt


def test_models_list_is_anthropic_shaped_with_claude_ids(client: anthropic.Anthropic, fcc_url: str):
    response = httpx.get(f"{fcc_url}/v1/models?limit=1000", headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 200
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids and all("claude" in i for i in ids)
    entries = response.json()["data"]
    haiku = next(e for e in entries if e["id"] == "claude-haiku-fcc")
    assert haiku["display_name"] == "Haiku tier → text:hi_there · Replay upstream"
    assert haiku["description"].startswith("replay/text:hi_there")  # the route, for the picker's subtitle
    # Each alias routes back to its tier.
    msg = client.messages.create(model="claude-haiku-fcc", max_tokens=10, messages=USER)
    assert msg.content[0].text == "hi there"


def test_preconnects_health_and_unknown_paths(fcc_url: str):
    assert httpx.head(f"{fcc_url}/").status_code == 200
    assert httpx.head(f"{fcc_url}/api/hello").status_code == 200
    assert httpx.get(f"{fcc_url}/health").json()["status"] == "ok"
    missing = httpx.get(f"{fcc_url}/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_bad_requests_get_actionable_400s(fcc_url: str):
    bad = httpx.post(
        f"{fcc_url}/v1/messages",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 400 and "line 1 column" in bad.json()["error"]["message"]
    no_model = httpx.post(f"{fcc_url}/v1/messages", json={"max_tokens": 5, "messages": USER})
    assert no_model.status_code == 400 and "model" in no_model.json()["error"]["message"]
    no_messages = httpx.post(f"{fcc_url}/v1/messages", json={"model": "x", "max_tokens": 5, "messages": []})
    assert "messages" in no_messages.json()["error"]["message"]
    not_utf8 = httpx.post(f"{fcc_url}/v1/messages", content=b"\xff\xfe{}")
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.json()["error"]["message"]


@pytest.mark.parametrize("where", ["handler", "stream before content"])
def test_a_failure_of_fccs_own_is_a_500_that_says_so_and_the_server_carries_on(
    where: str, fcc_url: str, monkeypatch: pytest.MonkeyPatch
):
    """POST /v1/messages bypasses Starlette's error middleware (server/app.py): its own
    errors still get the application's answer, whether the handler fails or the stream
    fails before anything was written."""
    from fcc.engine.routing import dispatch
    from fcc.engine.server import messages

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    if where == "handler":
        monkeypatch.setattr(messages, "features_of", broken)
    else:
        monkeypatch.setattr(dispatch.Dispatcher, "_first_content", staticmethod(broken))
    for stream in (True, False):
        response = httpx.post(
            f"{fcc_url}/v1/messages",
            json={"model": "replay/text:hi", "max_tokens": 5, "stream": stream, "messages": USER},
        )
        assert response.status_code == 500
        assert response.json()["error"] == {
            "type": "api_error",
            "message": "fcc hit an internal error; see its log",
        }
    monkeypatch.undo()
    again = httpx.post(
        f"{fcc_url}/v1/messages", json={"model": "replay/text:hi", "max_tokens": 5, "messages": USER}
    )
    assert again.status_code == 200 and again.json()["content"][0]["text"] == "hi"


def test_body_size_limit(tmp_path: Path, live_upstream: Live):
    path = replay_config(tmp_path, live_upstream.upstream_url, "server:\n  max_body_mb: 0.001\n")
    with serve(create_app(load_settings(path), KeyStore(environ={}))) as url:
        big = httpx.post(
            f"{url}/v1/messages",
            json={"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "a" * 5000}]},
        )
    assert big.status_code == 413 and big.json()["error"]["type"] == "request_too_large"


def test_auth_when_a_token_is_set(tmp_path: Path, live_upstream: Live):
    path = replay_config(
        tmp_path, live_upstream.upstream_url, "server:\n  auth_token: correct-horse-battery\n"
    )
    with serve(create_app(load_settings(path), KeyStore(environ={}))) as url:
        assert httpx.head(f"{url}/api/hello").status_code == 200
        for headers in ({}, {"x-api-key": "wrong"}, {"authorization": "Bearer wrong"}):
            denied = httpx.post(
                f"{url}/v1/messages", json={"model": "x", "max_tokens": 5, "messages": USER}, headers=headers
            )
            assert denied.status_code == 401 and denied.headers["x-should-retry"] == "false"
        for headers in (
            {"x-api-key": "correct-horse-battery"},
            {"authorization": "Bearer correct-horse-battery"},
        ):
            ok = httpx.post(
                f"{url}/v1/messages",
                json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": USER},
                headers=headers,
            )
            assert ok.status_code == 200
