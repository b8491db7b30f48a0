"""A minimal HTTP/1.1 streaming client on asyncio.Protocol: the load client's default engine.

It only needs what the benchmark measures: when the first token arrives, how many arrive, and
when the response ends. It counts the upstream's token marker in the raw bytes and recognises
the end of a chunked body (or a Content-Length body) without decoding anything, so that the
client's own CPU stays small next to what it measures (httpx costs several times more per
chunk; on two cores that would saturate the client's core and inflate the floor).
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

MARKER = b"~q"
_CHUNKED_END = b"\r\n0\r\n\r\n"


class _Exchange(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._done: asyncio.Future[bool] | None = None
        self._reset()

    def _reset(self) -> None:
        self._head = b""
        self._in_body = False
        self._chunked = False
        self._remaining = 0
        self._tail = b""
        self.status = 0
        self.first = -1.0
        self.tokens = 0
        self.received = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            self._done.set_result(False)

    def send(self, payload: bytes) -> asyncio.Future[bool]:
        self._reset()
        self._done = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(payload)
        return self._done

    def data_received(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            return
        self.received = True
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end].lower(), self._head[end + 4 :]
            self.status = int(head[9:12])
            self._in_body = True
            self._chunked = b"transfer-encoding: chunked" in head
            if not self._chunked:
                at = head.find(b"content-length:")
                self._remaining = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        found = (self._tail + data).count(MARKER) - self._tail.count(MARKER)
        if found:
            if self.first < 0:
                self.first = time.perf_counter()
            self.tokens += found
        self._tail = (self._tail + data)[-len(_CHUNKED_END) :]
        if self._chunked:
            if self._tail == _CHUNKED_END:
                self._done.set_result(True)
        else:
            self._remaining -= len(data)
            if self._remaining <= 0:
                self._done.set_result(True)


class Endpoint:
    """One URL; one kept-alive connection per worker slot, reopened when the server closed it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self._slots: dict[int, _Exchange] = {}

    def _head(self, headers: dict[str, str], length: int) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"host: {self.host}:{self.port}", f"content-length: {length}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _connection(self, slot: int) -> _Exchange:
        conn = self._slots.get(slot)
        if conn is None or conn.closed:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(_Exchange, self.host, self.port)
            self._slots[slot] = conn
        return conn

    async def request(
        self, slot: int, body: bytes, headers: dict[str, str]
    ) -> tuple[bool, float, float, int]:
        """(ok, seconds to first token or -1, seconds in all, tokens seen)."""
        payload = self._head(headers, len(body)) + body
        for attempt in range(2):
            start = time.perf_counter()
            try:
                conn = await self._connection(slot)
                ok = await conn.send(payload)
            except OSError:
                return False, -1.0, time.perf_counter() - start, 0
            # A kept-alive connection the server closed while idle: retry once on a fresh one.
            if ok or conn.received or attempt:
                end = time.perf_counter()
                first = conn.first - start if conn.first >= 0 else -1.0
                return ok and conn.status == 200, first, end - start, conn.tokens
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self._slots.values():
            if conn.transport is not None:
                conn.transport.close()
