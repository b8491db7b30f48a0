"""A zero-work TCP relay: `python -m bench.relay --port P --upstream-port U`.

Listens on 127.0.0.1:P; each accepted connection gets one connection of its own to 127.0.0.1:U,
and the bytes are copied both ways, never parsed, until either side closes (then the other is
closed too, after what was already read for it is written). It is the bench's `relay` contender:
what one more process on the path costs (the extra loopback hop, socket buffers, cross-core
wake-ups) when it does no work at all, the floor under any proxy's added latency.

asyncio Protocols (no StreamReader/Writer), on uvloop when it is installed, TCP_NODELAY on both
sockets. Flow control: when one side's write buffer goes over its high-water mark the other side
stops reading until it drains. What the client sends before the upstream connection is up is
kept (one read's worth, the client is paused meanwhile) and written as soon as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
from collections.abc import Coroutine
from typing import Any, cast

HOST = "127.0.0.1"
CONTENDER = "relay"  # its name in the bench's contenders and RESULTS.md


class _End(asyncio.Protocol):
    """One socket of a relayed pair: what it reads is written to its peer's transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _End | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.peer.transport is not None
        self.peer.transport.write(data)

    def pause_writing(self) -> None:  # this side's write buffer is full: stop reading the other
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    # eof_received: the default (None) lets the transport close itself; connection_lost follows.

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()  # after its buffered writes are flushed


class _Upstream(_End):
    def __init__(self, client: _Client) -> None:
        super().__init__()
        self.peer = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        client = cast(_Client, self.peer)
        if client.lost:
            transport.close()
            return
        assert self.transport is not None and client.transport is not None
        # Resumed first: a write over the high-water mark may pause the client again at once
        # (pause_writing); a read resumed now is only served by the loop's next iteration.
        client.transport.resume_reading()
        if client.early:
            self.transport.write(b"".join(client.early))
            client.early.clear()


class _Client(_End):
    def __init__(self, upstream_port: int) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.early: list[bytes] = []  # read before the upstream connection was up
        self.dialing: asyncio.Task[None] | None = None  # a strong reference while it runs

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        upstream = _Upstream(self)
        self.peer = upstream
        self.dialing = asyncio.get_running_loop().create_task(self._dial(upstream))

    async def _dial(self, upstream: _Upstream) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: upstream, HOST, self.upstream_port)
        except OSError:
            if self.transport is not None:
                self.transport.close()
        finally:
            self.dialing = None

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.peer.transport is None:
            assert self.transport is not None
            self.early.append(data)
            self.transport.pause_reading()  # until _Upstream.connection_made resumes it
            return
        self.peer.transport.write(data)


async def listen(port: int, upstream_port: int) -> asyncio.Server:
    """The relay's listening server on 127.0.0.1:`port` (0: any free port), in the running loop."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Client(upstream_port), HOST, port, backlog=1024)


async def serve(port: int, upstream_port: int) -> None:
    server = await listen(port, upstream_port)
    async with server:
        await server.serve_forever()


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="where it listens, on 127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True, help="where it connects, on 127.0.0.1")
    args = parser.parse_args()
    _run(serve(args.port, args.upstream_port))


if __name__ == "__main__":
    main()
