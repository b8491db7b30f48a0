"""Hostile and malformed requests, one by one: each gets an actionable Anthropic-shaped 4xx (or is
served), never a 500, never reaches the upstream when refused, and the server keeps serving.

All tests here share one fcc (module scope), so the last test checks that it survived them all.
The bugs this file found are fixed; each case stays as a regression test.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from tests.conftest import Live, replay_config
from tests.support.grammar import check_grammar, parse_sse
from tests.support.servers import serve

USER = [{"role": "user", "content": "hi"}]
OK_MODEL = "replay/text:ok"


@pytest.fixture(scope="module")
def url(live_upstream: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = load_settings(replay_config(tmp_path_factory.mktemp("hostile"), live_upstream.upstream_url))
    with serve(create_app(settings, KeyStore(environ={}))) as base:
        yield base


@pytest.fixture(scope="module")
def small_url(live_upstream: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = replay_config(
        tmp_path_factory.mktemp("small"), live_upstream.upstream_url, "server:\n  max_body_mb: 1\n"
    )
    with serve(create_app(load_settings(path), KeyStore(environ={}))) as base:
        yield base


def post(
    base: str,
    raw: bytes | None = None,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    path: str = "/v1/messages",
) -> httpx.Response:
    if raw is None:
        raw = json.dumps(body).encode()
    sent = {"content-type": "application/json", "connection": "close", **(headers or {})}
    return httpx.post(f"{base}{path}", content=raw, headers=sent, timeout=30)


def good(**extra: Any) -> dict[str, Any]:
    return {"model": OK_MODEL, "max_tokens": 16, "messages": USER, **extra}


def error_of(response: httpx.Response, status: int, error_type: str = "invalid_request_error") -> str:
    """Assert an Anthropic-shaped error with this status and type; return its message."""
    if response.status_code == 500:
        settle()
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message.strip(), body
    assert response.headers["request-id"].startswith("req_")
    return message


def assert_alive(base: str) -> None:
    started = time.monotonic()
    response = post(base, body={"model": "replay/text:alive", "max_tokens": 5, "messages": USER})
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "alive"
    assert time.monotonic() - started < 5


def settle() -> None:
    """After a crash, let the server thread finish logging its traceback. On CPython 3.11 <
    3.11.8, two threads formatting tracebacks at once (the traceback module calls ast.parse)
    can race on ast's global recursion counter: SystemError "AST constructor recursion depth
    mismatch" inside pytest's own report (gh-106905)."""
    time.sleep(0.25)


@contextlib.contextmanager
def untouched(live: Live) -> Iterator[None]:
    """The block's requests must not reach the upstream."""
    before = len(live.upstream.requests)
    yield
    assert len(live.upstream.requests) == before, "a refused request reached the upstream"


# -- malformed bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"model": "x", "messages": [', "line 1 column 29"),
        (b'{\n  "model": "x",\n  "max_tokens": 5,,\n}', "line 3 column 19"),
        (b'{"model": "x"} trailing', "line 1 column 16"),
        (b"", "line 1 column 1"),
        (b"{'model': 'x'}", "line 1 column 2"),
    ],
    ids=["truncated", "double-comma", "trailing-garbage", "empty", "single-quotes"],
)
def test_malformed_json_reports_the_position(url: str, live_upstream: Live, raw: bytes, where: str):
    with untouched(live_upstream):
        message = error_of(post(url, raw), 400)
    assert "not valid JSON" in message and where in message, message
    assert_alive(url)


def test_non_utf8_bytes_report_the_offset(url: str, live_upstream: Live):
    with untouched(live_upstream):
        message = error_of(post(url, b'{"model": "caf\xe9", "max_tokens": 5}'), 400)
    assert "UTF-8" in message and "offset 14" in message, message
    with untouched(live_upstream):
        error_of(post(url, b'{"model": "\xed\xa0\x80"}'), 400)  # an encoded lone surrogate


@pytest.mark.parametrize("raw", [b"[]", b'[{"model": "x"}]', b'"a string"', b"42", b"null", b"true"])
def test_non_object_json_is_refused(url: str, live_upstream: Live, raw: bytes):
    with untouched(live_upstream):
        message = error_of(post(url, raw), 400)
    assert "must be a JSON object" in message


# -- content types -----------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8"])
def test_json_content_types_are_served(url: str, content_type: str | None):
    raw = json.dumps(good()).encode()
    headers = {"connection": "close"} if content_type is None else {"content-type": content_type}
    response = httpx.post(f"{url}/v1/messages", content=raw, headers=headers, timeout=30)
    assert response.status_code == 200 and response.json()["type"] == "message"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_browser_simple_content_types_are_refused(url: str, live_upstream: Live, content_type: str):
    with untouched(live_upstream):
        response = post(url, json.dumps(good()).encode(), headers={"content-type": content_type})
        assert response.status_code in (400, 415), response.status_code
        body = response.json()
        assert body["type"] == "error" and "application/json" in body["error"]["message"]


# -- required fields ---------------------------------------------------------------------------

TOOL = {"name": "Read", "description": "Reads a file", "input_schema": {"type": "object"}}
REQUIRED = {
    "model_missing": ({"max_tokens": 5, "messages": USER}, "model: required"),
    "model_number": ({"model": 3, "max_tokens": 5, "messages": USER}, "model: required, a string"),
    "model_empty": ({"model": "", "max_tokens": 5, "messages": USER}, "model: required"),
    "model_null": ({"model": None, "max_tokens": 5, "messages": USER}, "model: required"),
    "model_list": ({"model": ["claude"], "max_tokens": 5, "messages": USER}, "model: required"),
    "messages_missing": ({"model": OK_MODEL, "max_tokens": 5}, "messages: required"),
    "messages_empty": ({"model": OK_MODEL, "max_tokens": 5, "messages": []}, "non-empty list"),
    "messages_string": ({"model": OK_MODEL, "max_tokens": 5, "messages": "hi"}, "messages: required"),
    "messages_object": ({"model": OK_MODEL, "max_tokens": 5, "messages": USER[0]}, "messages: required"),
    "message_not_object": ({"model": OK_MODEL, "max_tokens": 5, "messages": ["hi"]}, "must be an object"),
    "max_tokens_missing": ({"model": OK_MODEL, "messages": USER}, "max_tokens: required"),
    "max_tokens_string": ({"model": OK_MODEL, "max_tokens": "100", "messages": USER}, "non-negative integer"),
    "max_tokens_float": ({"model": OK_MODEL, "max_tokens": 100.5, "messages": USER}, "max_tokens"),
    "max_tokens_negative": ({"model": OK_MODEL, "max_tokens": -1, "messages": USER}, "max_tokens"),
    "max_tokens_bool": ({"model": OK_MODEL, "max_tokens": True, "messages": USER}, "max_tokens"),
    "max_tokens_null": ({"model": OK_MODEL, "max_tokens": None, "messages": USER}, "max_tokens"),
    "stream_yes": ({**good(), "stream": "yes"}, "stream: must be true or false"),
    "stream_number": ({**good(), "stream": 1}, "stream: must be true or false"),
    "stream_null": ({**good(), "stream": None}, "stream: must be true or false"),
    "role_tool": ({**good(), "messages": [{"role": "tool", "content": "x"}]}, "unknown role 'tool'"),
    "role_missing": ({**good(), "messages": [{"content": "x"}]}, "use user, assistant or system"),
    "role_upper": (
        {**good(), "messages": [{"role": "USER", "content": "x"}]},
        "use user, assistant or system",
    ),
    "user_content_number": ({**good(), "messages": [{"role": "user", "content": 5}]}, "string or a list"),
    "user_content_null": ({**good(), "messages": [{"role": "user", "content": None}]}, "string or a list"),
    "assistant_content_object": (
        {**good(), "messages": [{"role": "assistant", "content": {"text": "x"}}]},
        "string or a list",
    ),
    # The second tool is bad, the first is fine: the message names the one at fault.
    "tool_not_object": ({**good(), "tools": [TOOL, "Bash"]}, "tools[1]: must be an object"),
    "tool_name_missing": (
        {**good(), "tools": [TOOL, {"description": "x"}]},
        "tools[1].name: must be a string",
    ),
    "tool_type_number": ({**good(), "tools": [TOOL, {**TOOL, "type": 7}]}, "tools[1].type: must be a string"),
    "tool_about_list": (
        {**good(), "tools": [TOOL, {**TOOL, "description": ["x"]}]},
        "tools[1].description: must be a string",
    ),
    "tool_schema_string": (
        {**good(), "tools": [TOOL, {**TOOL, "input_schema": "{}"}]},
        "tools[1].input_schema: must be an object",
    ),
}


@pytest.mark.parametrize(("body", "says"), REQUIRED.values(), ids=REQUIRED.keys())
def test_bad_fields_get_actionable_400s(url: str, live_upstream: Live, body: dict[str, Any], says: str):
    with untouched(live_upstream):
        message = error_of(post(url, body=body), 400)
    assert says in message, message
    # What to do: the message names the field and what it must be.
    assert any(w in message for w in ("required", "must", "use ")), message


def test_count_tokens_validates_too(url: str, live_upstream: Live):
    with untouched(live_upstream):
        message = error_of(post(url, body={"model": "x"}, path="/v1/messages/count_tokens"), 400)
    assert "messages: required" in message
    counted = post(url, body={"model": "x", "messages": USER}, path="/v1/messages/count_tokens")
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 0


# -- accepted oddities -------------------------------------------------------------------------


def test_unknown_block_types_are_dropped(url: str, live_upstream: Live):
    # A block type from a future client release: forwarded compatibly, i.e. dropped.
    blocks = [{"type": "future_block_2027", "payload": {"x": 1}}, {"type": "text", "text": "hi"}]
    response = post(url, body=good(messages=[{"role": "user", "content": blocks}]))
    assert response.status_code == 200
    assert live_upstream.upstream.requests[-1].body["messages"][-1] == {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("block", "says"),
    [
        ({"no_type": True}, "type: must be a string"),
        ({"type": None}, "type: must be a string"),
        ("a bare string", "must be an object"),
        (17, "must be an object"),
    ],
)
def test_blocks_that_are_not_blocks_are_400s(url: str, live_upstream: Live, block: Any, says: str):
    with untouched(live_upstream):
        message = error_of(post(url, body=good(messages=[{"role": "user", "content": [block]}])), 400)
    assert "messages[0].content[0]" in message and says in message


def test_unknown_top_level_fields_are_ignored(url: str):
    response = post(url, body=good(stream=True, betas_of_the_future={"a": [1, 2]}, container=None))
    assert response.status_code == 200
    check_grammar(parse_sse(response.text))


def test_tool_result_without_tool_use_is_forwarded(url: str, live_upstream: Live):
    """Anthropic itself would 400 this; fcc does not pair ids, it forwards and lets the
    upstream decide (an upstream 400 comes back as a 400)."""
    block = {"type": "tool_result", "tool_use_id": "toolu_nobody", "content": "orphan"}
    response = post(url, body=good(messages=[{"role": "user", "content": [block]}]))
    assert response.status_code == 200
    sent = live_upstream.upstream.requests[-1].body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": "toolu_nobody", "content": "orphan"}


def test_bad_base64_image_is_forwarded(url: str, live_upstream: Live):
    """fcc does not decode images: the data goes upstream as a data: URL for it to judge."""
    source = {"type": "base64", "media_type": "image/png", "data": "%%%not base64%%%"}
    content = [{"type": "image", "source": source}, {"type": "text", "text": "what is this"}]
    response = post(url, body=good(messages=[{"role": "user", "content": content}]))
    assert response.status_code == 200
    parts = live_upstream.upstream.requests[-1].body["messages"][-1]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%not base64%%%"}}


def test_huge_max_tokens_and_deep_but_bounded_nesting_are_served(url: str):
    assert post(url, body=good(max_tokens=10**30)).status_code == 200
    nested = (
        '{"model": "replay/text:ok", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "x": '
    )
    raw = (nested + "[" * 500 + "]" * 500 + "}").encode()
    assert post(url, raw).status_code == 200


# -- request-side bugs: client mistakes that end in a 500 --------------------------------------

TEXT_5 = {"type": "text", "text": 5}
CRASHES = {
    "user_text_number": good(messages=[{"role": "user", "content": [TEXT_5]}]),
    "assistant_text_list": good(
        messages=[{"role": "assistant", "content": [{"type": "text", "text": ["a"]}]}]
    ),
    "system_block_text_number": good(system=[TEXT_5]),
    "system_role_text_number": good(messages=[{"role": "system", "content": [TEXT_5]}, *USER]),
    "tool_result_text_number": good(
        messages=[
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [TEXT_5]}]}
        ]
    ),
    "image_source_string": good(
        messages=[{"role": "user", "content": [{"type": "image", "source": "x.png"}]}]
    ),
    "document_source_string": good(
        messages=[{"role": "user", "content": [{"type": "document", "source": "x"}]}]
    ),
    "metadata_string": good(metadata="user-1"),
    "output_config_string": good(output_config="json"),
    "tools_number": good(tools=5),
    "tools_true": good(tools=True),
    "tool_choice_type_list": good(tools=[{"name": "a", "input_schema": {}}], tool_choice={"type": ["auto"]}),
}


@pytest.mark.parametrize("body", CRASHES.values(), ids=CRASHES.keys())
def test_wrong_types_inside_the_body_are_400s(url: str, live_upstream: Live, body: dict[str, Any]):
    with untouched(live_upstream):
        error_of(post(url, body=body), 400)


COUNT_CRASHES = {
    "text_number": {"model": "x", "messages": [{"role": "user", "content": [TEXT_5]}]},
    "tool_use_name_number": {
        "model": "x",
        "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": 3, "input": {}}]}],
    },
    "document_source_string": {
        "model": "x",
        "messages": [{"role": "user", "content": [{"type": "document", "source": "x"}]}],
    },
    "tools_number": {"model": "x", "messages": USER, "tools": 5},
}


@pytest.mark.parametrize("body", COUNT_CRASHES.values(), ids=COUNT_CRASHES.keys())
def test_count_tokens_wrong_types_are_400s(url: str, body: dict[str, Any]):
    error_of(post(url, body=body, path="/v1/messages/count_tokens"), 400)


def _with(tail: str, model: str = OK_MODEL) -> bytes:
    head = json.dumps({"model": model, "max_tokens": 5, "messages": USER})
    return f"{head[:-1]}, {tail}}}".encode()


NUMBERS = {
    # 1e999 is valid JSON; Python reads it as inf, and httpx refuses to encode inf upstream.
    "temperature_1e999": _with('"temperature": 1e999'),
    "anthropic_route_1e999": _with('"top_p": -1e999', "replay_anthropic/text:ok"),
    # Not JSON at all, but Python's json module accepts these literals.
    "nan_literal": _with('"temperature": NaN'),
    "infinity_literal": _with('"x": Infinity'),
}


@pytest.mark.parametrize("raw", NUMBERS.values(), ids=NUMBERS.keys())
def test_non_finite_numbers_are_400s(url: str, live_upstream: Live, raw: bytes):
    with untouched(live_upstream):
        error_of(post(url, raw), 400)


@pytest.mark.parametrize("where", ["top", "content"])
def test_pathologically_deep_json_is_a_400(url: str, live_upstream: Live, where: str):
    deep = "[" * 5000 + "]" * 5000
    if where == "top":
        raw = deep
    else:
        raw = (
            '{"model": "replay/text:ok", "max_tokens": 5, "messages": [{"role": "user", "content": '
            + deep
            + "}]}"
        )
    with untouched(live_upstream):
        error_of(post(url, raw.encode()), 400)


# -- size limits -------------------------------------------------------------------------------


def _big_body(size: int) -> bytes:
    return json.dumps(good(messages=[{"role": "user", "content": "a" * size}])).encode()


def test_body_over_the_limit_with_content_length(small_url: str, live_upstream: Live):
    with untouched(live_upstream):
        response = post(small_url, _big_body(2 * 1024 * 1024))
        message = error_of(response, 413, "request_too_large")
    assert "larger than 1 MB" in message
    assert post(small_url, _big_body(512 * 1024)).status_code == 200
    assert_alive(small_url)


def test_body_over_the_limit_says_what_to_do(small_url: str):
    message = error_of(post(small_url, _big_body(2 * 1024 * 1024)), 413, "request_too_large")
    assert "max_body_mb" in message


def _raw_exchange(base: str, head: bytes, body_chunks: Iterator[bytes]) -> bytes:
    """Send a request over a raw socket; stop sending if the server answers or hangs up."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in body_chunks:
                sock.sendall(chunk)
        data = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 4 + _length(data):
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
        return data


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_chunked_upload_over_the_limit(small_url: str, live_upstream: Live):
    head = (
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    payload = _big_body(2 * 1024 * 1024)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 64 * 1024):
            piece = payload[i : i + 64 * 1024]
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
        yield b"0\r\n\r\n"

    with untouched(live_upstream):
        answer = _raw_exchange(small_url, head, chunks())
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413", answer[:300]
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["type"] == "request_too_large"
    assert_alive(small_url)


# -- slow and idle clients ---------------------------------------------------------------------


def test_slow_client_does_not_block_others(url: str):
    body = json.dumps(good(model="replay/text:slow_one")).encode()
    head = (
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    trickled = 10  # one byte per 0.2 s: ~2 s

    def slow() -> Iterator[bytes]:
        for i in range(trickled):
            yield body[i : i + 1]
            time.sleep(0.2)
        yield body[trickled:]

    result: dict[str, bytes] = {}
    thread = threading.Thread(target=lambda: result.setdefault("answer", _raw_exchange(url, head, slow())))
    thread.start()
    served = 0
    try:
        time.sleep(0.3)
        while thread.is_alive() and served < 50:
            started = time.monotonic()
            response = post(url, body=good(model="replay/text:meanwhile"))
            assert response.status_code == 200
            assert time.monotonic() - started < 1.0, "a request waited on the slow client"
            served += 1
            time.sleep(0.05)
    finally:
        thread.join(timeout=15)
    assert served >= 5, served
    answer = result["answer"]
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"slow one" in answer


def test_many_idle_keepalive_connections(url: str):
    host, port = url.removeprefix("http://").split(":")
    sockets: list[socket.socket] = []
    try:
        for i in range(200):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sockets.append(sock)
            if i % 2 == 0:
                # A finished request on a keep-alive connection, then silence.
                sock.sendall(b"GET /api/hello HTTP/1.1\r\nhost: x\r\n\r\n")
                data = b""
                while b"}" not in data:
                    data += sock.recv(4096)
                assert data.startswith(b"HTTP/1.1 200")
            # The odd ones never send a byte.
        started = time.monotonic()
        response = post(url, body=good(model="replay/text:still_quick", stream=True))
        assert response.status_code == 200
        check_grammar(parse_sse(response.text))
        assert time.monotonic() - started < 2.0
    finally:
        for sock in sockets:
            sock.close()
    assert_alive(url)


# -- the property ------------------------------------------------------------------------------


def test_zz_server_survived_everything_above(url: str):
    """Runs last in this module (file order): the shared server still answers."""
    assert_alive(url)
    stream = post(url, body=good(model="replay/text:after_all", stream=True))
    assert stream.status_code == 200
    check_grammar(parse_sse(stream.text))
    assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
