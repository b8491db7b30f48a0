"""fcc's own HTTP/1.1 upstream leg: asyncio's transports and httptools' parser (llhttp, the
C parser uvicorn already runs on), behind httpx's transport interface.

fcc talks to upstreams through `httpx.AsyncClient`: its timeouts, limits, no-redirect rule,
content decoding and errors are what the transport loop is written against. Under it, a
streamed answer needs very little: one POST, a status line, headers and body bytes handed on
as they arrive. httpx's own pool (httpcore over anyio) and aiohttp both do much more per read:
anyio's stream layers, aiohttp's StreamReader, payload and timer objects, and a fifth of a
second of imports. Here a read is one `data_received` call into the C parser, whose body
callback appends the bytes and wakes the one reader; the reader takes everything that came
since its last turn as one piece, so an SSE event never waits for company.

The wire events map to the httpx exceptions httpcore raises for them, so the transport
loop's decisions (retry a stale keep-alive once, "cannot reach", "connection lost
mid-answer") do not depend on which leg runs (tests/test_upstream_transport.py runs the same
wire events through each):

- nobody listening, no route, a name that does not resolve, a TLS handshake refused:
  ConnectError; the connect timeout: ConnectTimeout; no free connection within the pool
  timeout: PoolTimeout;
- the connection closed before a status line (a kept-alive connection the server had
  already dropped): RemoteProtocolError; reset: ReadError;
- bytes that are not HTTP/1.1: RemoteProtocolError;
- a body cut short of its content-length or last chunk: RemoteProtocolError; reset: ReadError;
- no bytes within the read timeout: ReadTimeout; a write that cannot drain in time: WriteTimeout.

A connection goes back to the pool only when its answer was read to the end and the server
keeps it alive; anything else (a body left unread, a cancelled request, an error) closes it.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import threading
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any

import httptools
import httpx

Key = tuple[str, str, int]  # scheme, host, port

# Body bytes buffered before the socket's reading pauses: a reader that falls behind (a slow
# client downstream) holds the upstream back instead of fcc's memory growing.
_HIGH_WATER = 256 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Connection(asyncio.Protocol):
    """One upstream connection and the answer being read on it."""

    def __init__(self, key: Key, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.busy = True  # a request owns it (False: idle in the pool)
        self.lost = False
        self.lost_exc: BaseException | None = None
        self.broken: str | None = None  # what the parser refused
        self.waiter: asyncio.Future[None] | None = None
        self.writable = True
        self.drained: asyncio.Future[None] | None = None
        self.idle_since = 0.0
        self.begin(head=False)

    def begin(self, head: bool) -> None:
        """State for the next answer on this connection."""
        self.head = head  # a HEAD request's answer has headers only
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.until_eof = False  # the body ends when the connection does
        self.body: list[bytes] = []
        self.buffered = 0
        self.paused = False

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # a server has nothing to say on an idle connection: unusable
            self._close()
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self.broken = str(exc) or type(exc).__name__
            self._close()
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.lost_exc = exc
        if self.headers_done and not self.complete and self.until_eof and exc is None:
            self.complete = True  # a body delimited by the connection's end has ended
        self._wake()
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    # ---- httptools' callbacks ----

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # an interim answer: the real one follows
            self.reason = b""
            self.headers = []
            return
        self.status = status
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive() and not self.head
        if self.head:
            self.complete = True  # the parser does not know a HEAD answer has no body
        elif status not in (204, 304):
            framed = False
            for name, value in self.headers:
                lowered = name.lower()
                if lowered == b"content-length" or (
                    lowered == b"transfer-encoding" and b"chunked" in value.lower()
                ):
                    framed = True
            self.until_eof = not framed
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered >= _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers_done:  # not the end of an interim answer
            self.complete = True
            self._wake()

    # ---- the reader's side ----

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def news(self, timeout: float | None, request: httpx.Request) -> None:
        """Until the parser or the socket has news (headers, body bytes, the end); the httpx
        error if the connection broke, or ReadTimeout after `timeout` seconds of silence."""
        if self.lost or self.broken is not None:
            raise self.failure(request)
        waiter = self.waiter = self.loop.create_future()
        expiry = self.loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        except TimeoutError:
            raise httpx.ReadTimeout(
                "the upstream sent nothing within the read timeout", request=request
            ) from None
        finally:
            self.waiter = None
            if expiry is not None:
                expiry.cancel()

    def take(self) -> bytes:
        """Every body byte that came since the last take, as one piece."""
        body = self.body
        chunk = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        if self.paused:
            self.paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        return chunk

    def failure(self, request: httpx.Request) -> httpx.TransportError:
        """The httpx error for a connection that broke before its answer was whole."""
        if self.broken is not None:
            return httpx.RemoteProtocolError(
                f"the upstream's answer is not HTTP/1.1: {self.broken}", request=request
            )
        if self.lost_exc is not None:
            return httpx.ReadError(str(self.lost_exc) or type(self.lost_exc).__name__, request=request)
        if not self.headers_done:
            return httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body", request=request
        )

    def usable(self, now: float, expiry: float | None) -> bool:
        return (
            not self.lost
            and self.transport is not None
            and not self.transport.is_closing()
            and (expiry is None or now - self.idle_since < expiry)
        )

    async def drain(self, timeout: float | None, request: httpx.Request) -> None:
        while not self.writable and not self.lost:
            self.drained = self.loop.create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self.drained
            except TimeoutError:
                raise httpx.WriteTimeout(
                    "the upstream did not take the request in time", request=request
                ) from None
            finally:
                self.drained = None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _head(request: httpx.Request) -> bytes:
    """The request line and headers, as httpx built them (Host, Content-Length and the rest)."""
    url = request.url
    raw = request.headers.raw
    lines = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in raw:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    head = b"".join(lines)
    # Each line ends in the one CRLF put there above: a name or value carrying a line break
    # of its own would smuggle a header (or a request) past the upstream.
    if head.count(b"\n") != len(raw) + 2 or head.count(b"\r") != len(raw) + 2:
        raise httpx.LocalProtocolError("a request header carries a line break", request=request)
    return head


class _Body(httpx.AsyncByteStream):
    def __init__(
        self, pool: H1Transport, conn: _Connection, request: httpx.Request, timeout: float | None
    ) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._request = request
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        while True:
            if conn.body:
                yield conn.take()
            elif conn.complete:
                self._conn = None
                self._pool.release(conn)
                return
            else:
                try:
                    await conn.news(self._timeout, self._request)
                except httpx.TransportError:  # broken or silent: nobody can reuse it
                    self._conn = None
                    self._pool.discard(conn)
                    raise

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Read to its end (nothing left over), the connection can serve again; a body not
            # read to its end leaves a connection nobody can reuse.
            if conn.complete and not conn.body:
                self._pool.release(conn)
            else:
                self._pool.discard(conn)


class _Answer:
    """The head of the answer to a request already written to `conn`."""

    def __init__(
        self, pool: H1Transport, conn: _Connection, request: httpx.Request, timeout: dict[str, Any]
    ) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._request = request
        self._timeout = timeout

    def __await__(self) -> Generator[Any, None, httpx.Response]:
        conn, self._conn = self._conn, None
        assert conn is not None, "awaited twice"
        return self._pool._answer(conn, self._request, self._timeout).__await__()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:  # written, never read: nobody can reuse it
            self._pool.discard(conn)


class H1Transport(httpx.AsyncBaseTransport):
    """A pool of HTTP/1.1 connections per (scheme, host, port) for every upstream: idle ones
    are reused last-in first-out, at most `limits.max_connections` are open at once (a request
    past that waits up to the pool timeout), at most `limits.max_keepalive_connections` are
    kept idle, each for `limits.keepalive_expiry` seconds.

    The trust store (httpx's, for HTTPS upstreams only) is loaded on first use or by `prepare`,
    which the server runs in a thread once it is listening."""

    def __init__(self, limits: httpx.Limits, verify: ssl.SSLContext | str | bool = True) -> None:
        self._max = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._idle: dict[Key, list[_Connection]] = {}
        self._idle_count = 0
        self._open = 0  # connections open or opening, idle ones included
        self._slots: collections.deque[asyncio.Future[None]] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop its connections live in

    def prepare(self) -> None:
        """Loads the trust store ahead of the first HTTPS request (a few hundredths of a second)."""
        self._tls()

    def _tls(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl is None:
                if isinstance(self._verify, ssl.SSLContext):
                    self._ssl = self._verify
                else:
                    self._ssl = httpx.create_ssl_context(verify=self._verify)  # httpx's trust store
            return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key, timeout = self._target(request)
        head = _head(request)
        conn = await self._acquire(key, timeout, request)
        conn.begin(head=request.method == "HEAD")
        try:
            await self._send(conn, head, request, timeout.get("write"))
        except BaseException:
            self.discard(conn)
            raise
        return await self._answer(conn, request, timeout)

    def send_now(self, request: httpx.Request) -> _Answer | Coroutine[Any, Any, httpx.Response]:
        """`handle_async_request(request)`, with the request written before this returns when
        a kept-alive connection is at hand and the body is bytes (as fcc's always are): what
        is left to await is the answer's head. Otherwise it is that coroutine, and everything
        happens when it is awaited. Either way, `close()` what is never awaited: a written
        request's connection is given up."""
        try:
            content = request.content
            key, timeout = self._target(request)
            head = _head(request)
        except (httpx.RequestNotRead, httpx.UnsupportedProtocol, httpx.LocalProtocolError):
            return self.handle_async_request(request)  # which raises the same when awaited
        conn = self._take_idle(key)
        if conn is None:
            return self.handle_async_request(request)
        conn.begin(head=request.method == "HEAD")
        assert conn.transport is not None
        conn.transport.writelines((head, content))
        return _Answer(self, conn, request, timeout)

    def _target(self, request: httpx.Request) -> tuple[Key, dict[str, Any]]:
        url = request.url
        scheme = url.scheme
        port = url.port or _DEFAULT_PORTS.get(scheme)
        if port is None:
            raise httpx.UnsupportedProtocol(
                f"fcc speaks http and https upstreams, not {scheme}", request=request
            )
        return (scheme, url.raw_host.decode("ascii"), port), request.extensions.get("timeout", {})

    async def _answer(
        self, conn: _Connection, request: httpx.Request, timeout: dict[str, Any]
    ) -> httpx.Response:
        """The answer's head, once the request has been handed to the connection."""
        try:
            await conn.drain(timeout.get("write"), request)
            while not conn.headers_done:
                await conn.news(timeout.get("read"), request)
        except BaseException:
            self.discard(conn)
            raise
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if conn.reason:
            extensions["reason_phrase"] = conn.reason
        return httpx.Response(
            conn.status,
            headers=conn.headers,
            stream=_Body(self, conn, request, timeout.get("read")),
            request=request,
            extensions=extensions,
        )

    async def _send(
        self, conn: _Connection, head: bytes, request: httpx.Request, timeout: float | None
    ) -> None:
        transport = conn.transport
        assert transport is not None
        try:
            content: bytes | None = request.content
        except httpx.RequestNotRead:
            content = None
        if content:
            transport.writelines((head, content))
        elif content is not None:
            transport.write(head)
        else:
            chunked = b"chunked" in request.headers.get("transfer-encoding", "").encode().lower()
            transport.write(head)
            async for piece in request.stream:  # type: ignore[union-attr]
                if conn.lost:
                    break
                if piece:
                    transport.writelines((b"%x\r\n" % len(piece), piece, b"\r\n") if chunked else (piece,))
                    await conn.drain(timeout, request)
            if chunked and not conn.lost:
                transport.write(b"0\r\n\r\n")

    # ---- the pool ----

    async def _acquire(self, key: Key, timeout: dict[str, Any], request: httpx.Request) -> _Connection:
        loop = self._loop
        if loop is None:  # looked up once: on Python 3.11 each lookup is a getpid() system call
            loop = self._loop = asyncio.get_running_loop()
        while True:
            conn = self._take_idle(key)
            if conn is not None:
                return conn
            if self._max is None or self._open < self._max:
                break
            if self._idle_count:  # idle connections to other upstreams give way
                self._drop(self._oldest_idle())
                continue
            slot = loop.create_future()
            self._slots.append(slot)
            try:
                async with asyncio.timeout(timeout.get("pool")):
                    await slot
            except TimeoutError:
                raise httpx.PoolTimeout("no upstream connection came free in time", request=request) from None
            except BaseException:
                if slot.done() and not slot.cancelled():
                    self._free_slot()  # woken, but going: the next in line takes the turn
                raise
            finally:
                if not slot.done():
                    slot.cancel()  # _free_slot passes over it
            # woken: a connection went idle or closed; look again
        self._open += 1
        try:
            return await self._connect(key, timeout.get("connect"), loop, request)
        except BaseException:
            self._open -= 1
            self._free_slot()
            raise

    def _take_idle(self, key: Key) -> _Connection | None:
        """The most recently used idle connection to `key` still fit to serve, now busy."""
        idle = self._idle.get(key)
        if not idle:
            return None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            if conn.usable(now, self._expiry):
                conn.busy = True
                return conn
            self._drop(conn)
        return None

    async def _connect(
        self, key: Key, timeout: float | None, loop: asyncio.AbstractEventLoop, request: httpx.Request
    ) -> _Connection:
        scheme, host, port = key
        context = self._tls() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(key, loop),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except OSError as exc:  # refused, no route, DNS, a refused TLS handshake (ssl.SSLError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return conn

    def release(self, conn: _Connection) -> None:
        """An answer read to its end: the connection goes idle if it can serve again."""
        conn.busy = False
        reusable = (
            conn.keep_alive
            and not self._closed
            and conn.usable(0.0, None)
            and (self._max_idle is None or self._idle_count < self._max_idle)
        )
        if not reusable:
            self._drop(conn)
            return
        conn.begin(head=False)
        conn.idle_since = conn.loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        self._idle_count += 1
        self._free_slot()
        if self._sweeper is None and self._expiry is not None:
            self._sweeper = conn.loop.call_later(self._expiry, self._sweep)

    def discard(self, conn: _Connection) -> None:
        """A connection whose answer was not read to its end, or that broke: closed."""
        conn.busy = False
        self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        conn._close()
        self._open -= 1
        self._free_slot()

    def _free_slot(self) -> None:
        while self._slots:
            slot = self._slots.popleft()
            if not slot.done():
                slot.set_result(None)
                return

    def _oldest_idle(self) -> _Connection:
        conns = min((c for c in self._idle.values() if c), key=lambda c: c[0].idle_since)
        self._idle_count -= 1
        return conns.pop(0)

    def _sweep(self) -> None:
        """Idle connections past their keep-alive expiry are closed, a few times an expiry."""
        self._sweeper = None
        loop: asyncio.AbstractEventLoop | None = None
        for key, conns in list(self._idle.items()):
            for conn in list(conns):
                loop = conn.loop
                if not conn.usable(loop.time(), self._expiry):
                    conns.remove(conn)
                    self._idle_count -= 1
                    self._drop(conn)
            if not conns:
                del self._idle[key]
        if self._idle_count and loop is not None and self._expiry is not None:
            self._sweeper = loop.call_later(self._expiry / 4, self._sweep)

    async def aclose(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in self._idle.values():
            for conn in conns:
                self._idle_count -= 1
                self._drop(conn)
        self._idle.clear()
