"""The upstream leg on either transport (fcc's own, fcc/engine/transports/h1.py, or httpx's
own pool with FCC_UPSTREAM=httpx) raises the same httpx errors for the same wire events, so the
transport loop's decisions do not depend on which runs. Real sockets on loopback: a server
that answers, closes, cuts a body short, or drops a kept-alive connection as a request comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from fcc.engine.transports.h1 import H1Transport
from tests.support.servers import free_port, serve

pytestmark = pytest.mark.anyio
LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def transports() -> list[Callable[..., httpx.AsyncBaseTransport]]:
    """Each leg, made with LIMITS or the limits given."""
    return [
        lambda limits=LIMITS: H1Transport(limits),
        lambda limits=LIMITS: httpx.AsyncHTTPTransport(limits=limits),
    ]


TRANSPORTS = pytest.mark.parametrize("make", transports(), ids=["h1", "httpcore"])


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length) if length else b""


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server; `handler(reader, writer, n)` serves the n-th request of a connection
    (from 1) and says whether to keep the connection. Yields its URL and the connections seen."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        n = 0
        try:
            while True:
                n += 1
                await read_request(reader)
                if not await handler(reader, writer, n):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async with listening(on_connect) as url:
        yield url, connections


@contextlib.asynccontextmanager
async def listening(
    on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """asyncio's server on a free port, yielding its URL; connections still being served when
    the block ends (a handler sleeping or writing) end with it, not with the test's loop."""
    handlers: set[asyncio.Task[Any]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await on_connect(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    try:
        async with server:
            yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def sse(text: str) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode()
    head = f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
    writer.write(sse("hello"))
    await writer.drain()
    return True


@TRANSPORTS
async def test_an_answer_comes_through_and_the_connection_is_kept(make):
    async with raw_server(answer) as (url, connections), httpx.AsyncClient(transport=make()) as client:
        for _ in range(3):
            response = await client.post(url + "/v1/chat/completions", content=b"{}")
            assert response.status_code == 200 and b"hello" in response.content
            assert response.headers["content-type"] == "text/event-stream"
        assert len(connections) == 1


@TRANSPORTS
async def test_nobody_listening_is_a_connect_error(make):
    async with httpx.AsyncClient(transport=make()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{free_port()}/v1/chat/completions", content=b"{}")


@TRANSPORTS
async def test_a_connection_closed_before_any_answer_is_a_protocol_error(make):
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        return False

    async with raw_server(close) as (url, _), httpx.AsyncClient(transport=make()) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.post(url + "/v1/chat/completions", content=b"{}")


@TRANSPORTS
async def test_a_body_cut_short_is_an_error_mid_read(make):
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        writer.write(b'10\r\ndata: {"a": 1}\n\n\r\n')  # one whole chunk, then the connection goes
        await writer.drain()
        return False

    async with raw_server(cut) as (url, _), httpx.AsyncClient(transport=make()) as client:
        async with client.stream("POST", url + "/v1/chat/completions", content=b"{}") as response:
            got = b""
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                async for piece in response.aiter_bytes():
                    got += piece
        assert got == b'data: {"a": 1}\n\n'


async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
    """An answer that goes on for two seconds, an event every 10 ms."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    with contextlib.suppress(ConnectionError):
        for _ in range(200):
            writer.write(b"6\r\ndata:\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
    return False


@TRANSPORTS
async def test_a_body_left_unread_does_not_leave_its_connection_for_reuse(make):
    async with raw_server(endless) as (url, connections), httpx.AsyncClient(transport=make()) as client:
        for _ in range(2):
            async with client.stream("POST", url + "/v1/chat/completions", content=b"{}") as response:
                async for _piece in response.aiter_bytes():
                    break  # the client goes after one read: the connection cannot be reused
        assert len(connections) == 2


BODY = '{"a":"é"}'.encode()


@TRANSPORTS
async def test_the_request_goes_out_as_given(make):
    seen: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head + await reader.readexactly(len(BODY)))
        writer.write(sse("ok"))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient(transport=make()) as client:
        response = await client.post(
            f"http://127.0.0.1:{port}/v1/chat/completions?api-version=1",
            content=BODY,
            headers={"authorization": "Bearer k", "content-type": "application/json"},
        )
        assert response.status_code == 200
    head, body = seen[0].split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    fields = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    assert lines[0] == "POST /v1/chat/completions?api-version=1 HTTP/1.1"
    assert fields["authorization"] == "Bearer k" and fields["content-length"] == str(len(BODY))
    assert fields["content-type"] == "application/json" and fields["host"] == f"127.0.0.1:{port}"
    assert "python-httpx" in fields["user-agent"]  # httpx's headers, not the transport's own
    assert body == BODY


# ---------- the rest of HTTP/1.1 an upstream may use, the same on both legs ----------


def server_of(reply: bytes, keep: bool = True) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(reply)
        await writer.drain()
        return keep

    return handler


@TRANSPORTS
async def test_a_body_that_ends_with_the_connection_arrives_whole(make):
    reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: one\n\ndata: two\n\n"
    async with raw_server(server_of(reply, keep=False)) as (url, connections):
        async with httpx.AsyncClient(transport=make()) as client:
            for _ in range(2):  # and the connection, ended, is not reused
                response = await client.post(url + "/v1/chat/completions", content=b"{}")
                assert response.content == b"data: one\n\ndata: two\n\n"
        assert len(connections) == 2


@TRANSPORTS
async def test_an_interim_answer_is_passed_over(make):
    reply = b"HTTP/1.1 100 Continue\r\n\r\n" + sse("after the interim")
    async with raw_server(server_of(reply)) as (url, _), httpx.AsyncClient(transport=make()) as client:
        response = await client.post(url + "/v1/chat/completions", content=b"{}")
        assert response.status_code == 200 and b"after the interim" in response.content


@TRANSPORTS
async def test_connection_close_and_a_head_answer_leave_nothing_to_reuse(make):
    closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
    async with raw_server(server_of(closing)) as (url, connections):
        async with httpx.AsyncClient(transport=make()) as client:
            for _ in range(2):
                assert (await client.get(url + "/v1/models")).content == b"ok"
        assert len(connections) == 2
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"  # the length of a GET's body
    async with raw_server(server_of(head)) as (url, _), httpx.AsyncClient(transport=make()) as client:
        response = await client.head(url + "/v1/models", timeout=5)
        assert response.status_code == 200 and response.content == b""


@TRANSPORTS
async def test_a_request_body_of_unknown_length_goes_chunked(make):
    seen: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        body = b""
        while (size := int((await reader.readuntil(b"\r\n")).strip(), 16)) > 0:
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readexactly(2)
        seen.append(body)
        writer.write(sse("ok"))
        await writer.drain()
        writer.close()

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b'{"a":', b"", b'"' + b"x" * 70_000 + b'"}'):
            yield piece

    async with listening(on_connect) as url, httpx.AsyncClient(transport=make()) as client:
        response = await client.post(url + "/v1/chat/completions", content=pieces())
        assert response.status_code == 200
    assert seen == [b'{"a":"' + b"x" * 70_000 + b'"}']


@TRANSPORTS
async def test_an_upstream_that_does_not_speak_http_is_a_protocol_error(make):
    not_http = server_of(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    async with raw_server(not_http) as (url, _), httpx.AsyncClient(transport=make()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(url + "/v1/chat/completions", content=b"{}")


@TRANSPORTS
async def test_a_header_with_a_line_break_never_reaches_the_upstream(make):
    heads: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                await reader.readexactly(2)
                writer.write(sse("ok"))
                await writer.drain()
        writer.close()

    async with listening(on_connect) as url, httpx.AsyncClient(transport=make()) as client:
        with pytest.raises(httpx.LocalProtocolError):
            await client.post(
                url + "/v1/chat/completions", content=b"{}", headers={"x-key": "k\r\nx-injected: 1"}
            )
        assert (await client.post(url + "/v1/chat/completions", content=b"{}")).status_code == 200
    assert len(heads) == 1 and b"x-injected" not in heads[0]


@TRANSPORTS
async def test_silence_past_the_read_timeout_is_a_read_timeout(make):
    requests: list[int] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        requests.append(n)
        if len(requests) == 1:
            await asyncio.sleep(2)  # no answer at all
            return False
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata:\n\r\n")
        await writer.drain()
        await asyncio.sleep(2)  # then nothing more
        return False

    timeout = httpx.Timeout(5, read=0.2)
    async with raw_server(silent) as (url, _), httpx.AsyncClient(transport=make(), timeout=timeout) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(url + "/v1/chat/completions", content=b"{}")
        async with client.stream("POST", url + "/v1/chat/completions", content=b"{}") as response:
            with pytest.raises(httpx.ReadTimeout):
                async for _ in response.aiter_raw():
                    pass


@TRANSPORTS
async def test_no_free_connection_within_the_pool_timeout_is_a_pool_timeout_and_a_cancel_frees_one(make):
    transport = make(httpx.Limits(max_connections=1, max_keepalive_connections=1))
    timeout = httpx.Timeout(5, pool=0.2)
    async with (
        raw_server(endless) as (url, _),
        httpx.AsyncClient(transport=transport, timeout=timeout) as client,
    ):
        reading = asyncio.Event()

        async def hold() -> None:
            async with client.stream("POST", url + "/v1/chat/completions", content=b"{}") as response:
                async for _ in response.aiter_raw():
                    reading.set()

        holder = asyncio.ensure_future(hold())
        await reading.wait()
        with pytest.raises(httpx.PoolTimeout):
            await client.post(url + "/v1/chat/completions", content=b"{}")
        holder.cancel()  # a reader that goes mid-answer gives its connection back (closed)
        with contextlib.suppress(asyncio.CancelledError):
            await holder
        async with client.stream("POST", url + "/v1/chat/completions", content=b"{}") as response:
            assert response.status_code == 200


@TRANSPORTS
async def test_an_idle_connection_past_its_keep_alive_expiry_is_not_reused(make):
    transport = make(httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=0.1))
    async with raw_server(answer) as (url, connections), httpx.AsyncClient(transport=transport) as client:
        await client.post(url + "/v1/chat/completions", content=b"{}")
        await client.post(url + "/v1/chat/completions", content=b"{}")
        assert len(connections) == 1
        await asyncio.sleep(0.3)
        await client.post(url + "/v1/chat/completions", content=b"{}")
        assert len(connections) == 2


async def test_a_reader_that_falls_behind_holds_the_upstream_back():
    """fcc's leg stops reading the socket once 256 KB wait unread, and starts again as they go."""
    from fcc.engine.transports import h1

    sent = asyncio.Event()

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (8 * 2**20))
        with contextlib.suppress(ConnectionError):
            for _ in range(128):
                writer.write(b"x" * 65536)
                await writer.drain()
        sent.set()
        return False

    async with (
        raw_server(flood) as (url, _),
        httpx.AsyncClient(transport=H1Transport(LIMITS)) as client,
        client.stream("GET", url + "/big") as response,
    ):
        await asyncio.sleep(0.5)
        (conn,) = [c for c in gc_objects(h1._Connection) if c.busy]
        assert conn.paused and conn.buffered < h1._HIGH_WATER + 2**20
        assert not sent.is_set()  # the server is held back
        got = 0
        async for piece in response.aiter_raw():
            got += len(piece)
        assert got == 8 * 2**20


async def test_a_request_goes_out_before_its_answer_is_awaited_and_one_never_awaited_frees_its_connection():
    """H1Transport.send_now (what Sender.start uses): with a kept-alive connection at hand the
    request is on the wire when the call returns, and awaiting only waits for the answer; a
    written request whose answer is never awaited closes its connection (nobody could read
    the answer off it); with no connection at hand, nothing goes out until awaited."""
    arrived: asyncio.Queue[int] = asyncio.Queue()

    async def noted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        arrived.put_nowait(n)
        return await answer(reader, writer, n)

    def post(url: str) -> httpx.Request:
        return httpx.Request("POST", url + "/v1/chat/completions", content=b"{}")

    transport = H1Transport(LIMITS)
    async with raw_server(noted) as (url, connections):
        first = transport.send_now(post(url))  # no connection yet: a coroutine, not started
        await asyncio.sleep(0.1)
        assert arrived.empty()
        response = await first
        await response.aread()
        assert await arrived.get() == 1

        pending = transport.send_now(post(url))  # written on the kept-alive connection now
        assert await asyncio.wait_for(arrived.get(), 2) == 2
        response = await pending
        assert b"hello" in await response.aread()

        transport.send_now(post(url)).close()  # written, never read
        assert await asyncio.wait_for(arrived.get(), 2) == 3
        response = await transport.send_now(post(url))  # so this one needs a new connection
        await response.aread()
        assert len(connections) == 2
        assert transport._open == 1  # the abandoned one is not counted as open any more
    await transport.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/v1/chat/completions",
        "http://127.0.0.1:8899/v1/messages?beta=true",
        "https://bücher.example:8443/v1/x",
    ],
)
async def test_senders_requests_are_the_ones_httpx_would_build(url: str):
    """Sender.request sets Host and Content-Length itself (httpx looks for them otherwise): the
    request is the one AsyncClient.build_request makes, header for header, and its content the
    very bytes given, not a copy."""
    from fcc.engine.transports.http import Sender

    content = b'{"model": "m", "messages": []}' * 100
    headers = {"Authorization": "Bearer k", "content-type": "application/json", "x-extra": "1"}
    timeout = httpx.Timeout(None, connect=5.0)
    async with httpx.AsyncClient(transport=H1Transport(LIMITS)) as client:
        sender = Sender(client, H1Transport(LIMITS))
        ours = sender.request(url, headers, content, timeout)
        theirs = client.build_request("POST", url, headers=headers, content=content, timeout=timeout)
    assert ours.url == theirs.url and ours.method == "POST"
    assert sorted(ours.headers.multi_items()) == sorted(theirs.headers.multi_items())
    assert ours.content is content and ours.extensions["timeout"] == theirs.extensions["timeout"]


def gc_objects(kind: type) -> list[Any]:
    import gc

    return [o for o in gc.get_objects() if isinstance(o, kind)]


# ---------- through fcc: a kept-alive connection the server drops as the request comes ----------


@contextlib.contextmanager
def threaded(handler: Handler) -> Iterator[tuple[str, list[int]]]:
    """raw_server in a thread of its own, for a test that runs fcc in the foreground."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    async def main() -> None:
        stop = box["stop"] = asyncio.Event()
        async with raw_server(handler) as (url, connections):
            box["url"], box["connections"] = url, connections
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield str(box["url"]), box["connections"]  # type: ignore[misc]
    finally:
        loop.call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
        thread.join(5)
        loop.close()


def dropping_upstream() -> contextlib.AbstractContextManager[tuple[str, list[int]]]:
    """Answers the first request of each connection; drops the connection when a second one
    comes on it (a server closing an idle keep-alive just as fcc reuses it)."""
    connections: list[int] = []

    async def drop_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        if n > 1:
            return False
        connections.append(1)
        writer.write(sse(f"answer {len(connections)}"))
        await writer.drain()
        return True

    return threaded(drop_second)


def fcc_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        "providers:\n  drop:\n    transport: openai_chat\n"
        f"    base_url: {url}/v1\n    auth: none\n    local: true\n"
        "tiers:\n  default: drop/m\n"
    )
    return config


@pytest.mark.parametrize("upstream", ["httptools", "httpx"])
def test_a_dropped_keep_alive_is_retried_once_on_a_fresh_connection(
    upstream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FCC_UPSTREAM", upstream)
    with dropping_upstream() as (url, connections):
        with serve(create_app(load_settings(fcc_config(tmp_path, url)), KeyStore(environ={}))) as fcc:
            texts = []
            for _ in range(3):
                response = httpx.post(
                    f"{fcc}/v1/messages",
                    json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
                    timeout=10,
                )
                assert response.status_code == 200, response.text
                texts.append(response.json()["content"][0]["text"])
        assert texts == ["answer 1", "answer 2", "answer 3"]  # each on a fresh connection
        assert len(connections) == 3


@TRANSPORTS
async def test_once_answered_the_request_body_is_not_kept_for_the_stream(make):
    """A streamed answer lasts minutes; the 60 KB it was asked with need not (http._sent).
    httpcore's own request keeps the stream it was given until the response closes, so with
    FCC_UPSTREAM=httpx the bytes stay: only fcc's own leg lets them go."""
    import gc

    from fcc.engine.transports.http import _sent

    transport = make()
    kept_by_transport = not isinstance(transport, H1Transport)
    async with raw_server(answer) as (url, _), httpx.AsyncClient(transport=transport) as client:
        body = b'{"messages":"' + b"x" * 60_000 + b'"}'
        outgoing = client.build_request("POST", url + "/v1/chat/completions", content=body)
        response = await client.send(outgoing, stream=True)
        holders = [type(r).__name__ for r in gc.get_referrers(body) if r is not globals()]
        assert "Request" in holders  # what _sent is for: httpx keeps it
        _sent(outgoing)
        gc.collect()
        assert not [r for r in gc.get_referrers(body) if isinstance(r, httpx.Request)]
        streams = [r for r in gc.get_referrers(body) if isinstance(r, httpx.ByteStream)]
        assert len(streams) == (1 if kept_by_transport else 0), "something still holds the sent body"
        assert b"hello" in await response.aread()
        await response.aclose()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_uses_fccs_trust_rules_and_plain_http_loads_no_trust_store(tmp_path: Path):
    """The trust store is httpx's (here: one that trusts a test certificate, which the default
    would refuse), loaded on the first HTTPS request; plain HTTP never loads one."""
    import ssl

    cert, key = self_signed(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusted = ssl.create_default_context(cafile=str(cert))

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            await read_request(reader)
            writer.write(sse("secure"))
            await writer.drain()
        writer.close()

    tls_server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=served)
    tls_port = tls_server.sockets[0].getsockname()[1]
    transport = H1Transport(LIMITS, verify=trusted)
    async with tls_server, raw_server(answer) as (url, _), httpx.AsyncClient(transport=transport) as client:
        plain = await client.post(url + "/v1/chat/completions", content=b"{}")
        assert b"hello" in plain.content
        assert transport._ssl is None  # no trust store for a plain HTTP upstream
        secure = await client.post(f"https://127.0.0.1:{tls_port}/v1/chat/completions", content=b"{}")
        assert b"secure" in secure.content
        assert transport._ssl is trusted
    async with httpx.AsyncClient(transport=H1Transport(LIMITS)) as client:  # the default trust
        with pytest.raises(httpx.ConnectError):
            await client.post(f"https://127.0.0.1:{tls_port}/v1/chat/completions", content=b"{}")


def pieces_of(body: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(points)]


@pytest.mark.parametrize("upstream", ["httptools", "httpx"])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_text_cut_anywhere_across_reads_arrives_whole(
    upstream: str, encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The upstream's reads end inside a character (2, 3 and 4 bytes) and carry a byte no
    UTF-8 has: the client gets the text whole, the bad byte as U+FFFD, whether the stream is
    sent as it is (read raw) or gzip-compressed (decoded by httpx)."""
    monkeypatch.setenv("FCC_UPSTREAM", upstream)
    text = "ä 你好 🎉 done"
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    sse_body = f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
    bad = b'data: {"choices":[{"index":0,"delta":{"content":"[\xff]"},"finish_reason":null}]}\n\n'
    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    body = sse_body + bad + f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode()
    start = sse_body.index("ä".encode())
    cuts = [start + 1, start + 5, start + 9, start + 15, len(sse_body) + bad.index(b"\xff") + 1]
    if encoding == "gzip":
        body = gzip.compress(body)
        cuts = [len(body) // 3, 2 * len(body) // 3]
    head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    head += "content-encoding: gzip\r\n" if encoding == "gzip" else ""

    async def in_pieces(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(head.encode() + b"\r\n")
        for piece in pieces_of(body, cuts):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.05)  # each piece is a read of its own
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return False

    with (
        threaded(in_pieces) as (url, _),
        serve(create_app(load_settings(fcc_config(tmp_path, url)), KeyStore(environ={}))) as fcc,
        anthropic.Anthropic(base_url=fcc, api_key="x", max_retries=0) as sdk,
        sdk.messages.stream(model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as s,
    ):
        answer = s.get_final_message()
    assert "".join(b.text for b in answer.content if b.type == "text") == text + "[\ufffd]"
