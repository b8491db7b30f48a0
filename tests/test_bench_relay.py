"""bench/relay.py, the zero-work TCP relay the bench runs as its `relay` contender: bytes arrive
byte for byte both ways over a kept-alive connection, a 1 MB body each way goes through its flow
control, what the client sends before the upstream is connected is not lost, a close on either
side closes the other; and RESULTS.md's "One more hop" section, from made-up results."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from bench import procs, relay
from bench.plan import QUICK
from bench.run import Results
from tests.support.bench_results import phase, section

LOOPS = ["asyncio", "uvloop"]
SMALL_BUFFER = 16 * 1024  # the kernel's socket buffers of the origin and the client, so the relay's fill


class Origin:
    """A loopback HTTP/1.1 server: each request (with content-length) is answered 200 with its
    body reversed; it keeps every request's raw bytes and counts connections opened and ended."""

    def __init__(self, read_delay: float = 0.0) -> None:
        self.read_delay = read_delay  # before reading each body: the relay's buffer toward it fills
        self.received: list[bytes] = []
        self.opened = 0
        self.ended = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                found = re.search(rb"content-length: (\d+)", head.lower())
                assert found, head
                await asyncio.sleep(self.read_delay)
                body = await reader.readexactly(int(found.group(1)))
                self.received.append(head + body)
                writer.write(answer(body))
                await writer.drain()
                if b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the relay closed the connection: what the test waits for
        finally:
            self.ended.set()
            writer.close()


def request(body: bytes, close: bool = False) -> bytes:
    extra = b"connection: close\r\n" if close else b""
    return b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n%scontent-length: %d\r\n\r\n%s" % (
        extra,
        len(body),
        body,
    )


def answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body[::-1])


def run(loop: str, main: Callable[[], Awaitable[None]]) -> None:
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(main(), 20))


def _listener(small: bool) -> socket.socket:
    sock = socket.socket()
    if small:  # inherited by the accepted sockets
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    sock.bind(("127.0.0.1", 0))
    return sock


async def origin_and_relay(origin: Origin, small: bool = False) -> tuple[asyncio.Server, asyncio.Server]:
    up = await asyncio.start_server(origin.handle, sock=_listener(small), limit=SMALL_BUFFER)
    front = await relay.listen(0, up.sockets[0].getsockname()[1])
    return up, front


async def connect(
    server: asyncio.Server | int, small: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = server if isinstance(server, int) else server.sockets[0].getsockname()[1]
    sock = socket.socket()
    if small:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=SMALL_BUFFER)


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sent: bytes) -> bytes:
    writer.write(sent)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    found = re.search(rb"content-length: (\d+)", head)
    assert found, head
    return head + await reader.readexactly(int(found.group(1)))


async def two_requests_on_one_connection(origin: Origin, port: int) -> None:
    reader, writer = await connect(port)
    bodies = [b'{"model":"tokens-5","stream":true}', random.Random(1).randbytes(70_000)]
    for body in bodies:
        assert await exchange(reader, writer, request(body)) == answer(body)
    assert origin.received == [request(b) for b in bodies], "the upstream got the bytes as sent"
    assert origin.opened == 1, "one upstream connection per client connection, kept alive"
    writer.close()
    await asyncio.wait_for(origin.ended.wait(), 5)


def run_two_requests(loop: str) -> None:
    async def main() -> None:
        origin = Origin()
        up, front = await origin_and_relay(origin)
        async with up, front:
            await two_requests_on_one_connection(origin, front.sockets[0].getsockname()[1])

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_two_requests_over_one_kept_alive_connection(loop: str) -> None:
    run_two_requests(loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_megabyte_each_way_goes_through_flow_control(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    paused: list[str] = []  # the end whose write buffer went over its high-water mark
    resumed: list[str] = []
    made, pause, resume = relay._End.connection_made, relay._End.pause_writing, relay._End.resume_writing

    def small_send_buffer(self: relay._End, transport: asyncio.BaseTransport) -> None:
        # The kernel's send buffer would grow to hold the whole megabyte; kept small, the bytes
        # pile up in the relay's own write buffer, past its high-water mark.
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        made(self, transport)

    def pausing(self: relay._End) -> None:
        paused.append(type(self).__name__)
        pause(self)
        assert self.peer is not None and self.peer.transport is not None
        assert not self.peer.transport.is_reading(), "the other side stops reading"

    def resuming(self: relay._End) -> None:
        resumed.append(type(self).__name__)
        resume(self)
        assert self.peer is not None and self.peer.transport is not None
        assert self.peer.transport.is_reading() or self.peer.transport.is_closing()

    monkeypatch.setattr(relay._End, "connection_made", small_send_buffer)
    monkeypatch.setattr(relay._End, "pause_writing", pausing)
    monkeypatch.setattr(relay._End, "resume_writing", resuming)

    async def main() -> None:
        origin = Origin(read_delay=0.3)
        up, front = await origin_and_relay(origin, small=True)
        async with up, front:
            reader, writer = await connect(front, small=True)
            body = random.Random(2).randbytes(1 << 20)
            writer.write(request(body))
            await writer.drain()
            await asyncio.sleep(0.3)  # the answer piles up in the relay meanwhile
            head = await reader.readuntil(b"\r\n\r\n")
            got = head + await reader.readexactly(1 << 20)
            assert got == answer(body)
            assert origin.received == [request(body)]
            writer.close()
            await asyncio.wait_for(origin.ended.wait(), 5)

    run(loop, main)
    # Both ways: the upstream's buffer filled (the client was paused) and the client's did.
    assert {"_Upstream", "_Client"} <= set(paused), paused
    assert sorted(paused) == sorted(resumed), (paused, resumed)


@pytest.mark.parametrize("loop", LOOPS)
def test_what_the_client_sends_before_the_upstream_is_up_is_kept(
    loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dial = relay._Client._dial

    async def late(self: relay._Client, upstream: relay._Upstream) -> None:
        await asyncio.sleep(0.2)  # the request is read by the relay long before this
        await dial(self, upstream)

    monkeypatch.setattr(relay._Client, "_dial", late)

    run_two_requests(loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_an_upstream_close_closes_the_client_after_its_answer(loop: str) -> None:
    async def main() -> None:
        origin = Origin()
        up, front = await origin_and_relay(origin)
        async with up, front:
            reader, writer = await connect(front)
            assert await exchange(reader, writer, request(b"bye", close=True)) == answer(b"bye")
            assert await asyncio.wait_for(reader.read(), 5) == b"", "then EOF"
            writer.close()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_nothing_listening_upstream_closes_the_client(loop: str) -> None:
    async def main() -> None:
        front = await relay.listen(0, procs.free_port())
        async with front:
            reader, writer = await connect(front)
            writer.write(request(b"x"))
            # EOF, or a reset when the relay closed with the request still unread in its socket
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    run(loop, main)


@pytest.fixture
def relay_process(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """`python -m bench.relay` as the bench runs it: (its port, the upstream port it relays to)."""
    port, upstream = procs.free_port(), procs.free_port()
    argv = procs.python_module("bench.relay", f"--port={port}", f"--upstream-port={upstream}")
    proc = procs.spawn(argv, tmp_path / "relay.log")
    try:
        yield port, upstream
    finally:
        procs.stop(proc)
    assert (tmp_path / "relay.log").read_text() == "", "nothing on stderr"


def test_python_m_bench_relay(relay_process: tuple[int, int]) -> None:
    port, upstream = relay_process

    async def main() -> None:
        origin = Origin()
        async with await asyncio.start_server(origin.handle, "127.0.0.1", upstream):
            for _ in range(500):  # until the relay listens
                try:
                    _, writer = await connect(port)
                except OSError:
                    await asyncio.sleep(0.01)
                    continue
                writer.close()
                break
            await asyncio.wait_for(origin.ended.wait(), 5)  # the probe's upstream leg closed too
            origin.ended.clear()
            origin.opened = 0
            await two_requests_on_one_connection(origin, port)

    run("asyncio", main)


def _section(tmp_path: Path, results: Results) -> str:
    return section(tmp_path, results, "One more hop: a zero-work relay")


def test_the_relay_section_splits_fcc_into_the_hop_and_its_own_work(tmp_path: Path) -> None:
    results = Results(QUICK, True, "raw", contenders=["direct", "relay", "fcc"])
    for c, hop in ((1, 0.0002), (16, 0.0005)):
        results.phases += [
            phase("direct", c, 0.050, None),
            phase("relay", c, 0.050 + hop, 0.002),  # 0.1 ms CPU per request
            phase("fcc", c, 0.051 + hop, 0.02),  # 1 ms beyond the relay
        ]
    results.body_kb = {"anthropic": (48.1, 57.2, 85.1), "openai": (47.4, 56.9, 85.2)}
    section = _section(tmp_path, results)
    assert "the OpenAI request fcc would build (47-85 KB, 57 KB on average)" in section
    assert "Anthropic request (48-85 KB, 57 KB on average)" in section
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| 1")]
    assert [[cell.strip() for cell in row[:6] + row[7:]] for row in rows] == [
        ["1", "0.20", "0.20", "1.20", "1.20", "1.00", "1.00", "0.10", "1.00"],
        ["16", "0.50", "0.50", "1.50", "1.50", "1.00", "1.00", "0.10", "1.00"],
    ]
    for row in rows:  # a bootstrap interval around the 1 ms difference of p50s
        low, high = (float(x) for x in row[6].split(" to "))
        assert low <= 1.0 <= high, row
    latency = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "| 1 | relay | 20 | 0 |" in latency and "| 0.10 | 2.0 | 20.0 |" in latency


def test_results_from_before_the_relay_say_it_did_not_run(tmp_path: Path) -> None:
    results = Results(QUICK, True, "raw", contenders=["direct", "fcc"])
    results.phases = [phase(n, c, 0.05, 0.01) for n in ("direct", "fcc") for c in (1, 16)]
    assert _section(tmp_path, results).strip().startswith("Not measured in this run: the relay did not run")
