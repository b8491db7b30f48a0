"""A loopback OpenAI-compatible upstream that streams at a fixed pace, on raw asyncio.

`python -m bench.upstream --port P --ttft-ms 50 --interval-ms 5 --tokens 100`

The model name `tokens-N` (anywhere in the body's "model") overrides the token count. Each
content delta carries the marker `~q` once, so clients can count tokens without parsing JSON.
The first token waits for its own timer; the rest follow a schedule kept by one shared ticker: a
stream that falls behind (a busy core) sends every chunk already due in one write, as a real
server's buffer would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from dataclasses import dataclass

_MODEL = re.compile(rb'"model"\s*:\s*"[^"]*?tokens-(\d+)"')
_HEAD_END = b"\r\n\r\n"
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def tokens_asked(body: bytes) -> int | None:
    """The token count a request's body asks for (`tokens-N` in its model), if it names one."""
    found = _MODEL.search(body)
    return int(found.group(1)) if found else None


def _chunk(model: str, delta: dict[str, object], finish: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def stream_events(model: str, tokens: int) -> list[bytes]:
    """Event i (i ≥ 1) is token i-1; event 0 is the role chunk, sent with the first token."""
    out = [_chunk(model, {"role": "assistant", "content": ""})]
    out += [_chunk(model, {"content": f"~q{i} "}) for i in range(tokens)]
    return out


def tail_events(model: str, tokens: int) -> bytes:
    usage = {"prompt_tokens": 15_000, "completion_tokens": tokens, "total_tokens": 15_000 + tokens}
    done = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [],
        "usage": usage,
    }
    return (
        _chunk(model, {}, "stop")
        + b"data: "
        + json.dumps(done, separators=(",", ":")).encode()
        + b"\n\ndata: [DONE]\n\n"
    )


def _framed(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


@dataclass(eq=False, slots=True)
class _Live:
    writer: asyncio.StreamWriter
    events: list[bytes]
    tail: bytes
    start: float  # when event 0 and 1 were due
    done: asyncio.Future[None]
    sent: int = 0


class Upstream:
    def __init__(self, ttft: float, interval: float, tokens: int) -> None:
        self.ttft = ttft
        self.interval = interval
        self.tokens = tokens
        self._cache: dict[int, tuple[list[bytes], bytes]] = {}
        self._live: set[_Live] = set()
        self._ticker: asyncio.Task[None] | None = None

    def _events(self, tokens: int) -> tuple[list[bytes], bytes]:
        if tokens not in self._cache:
            model = f"tokens-{tokens}"
            self._cache[tokens] = (stream_events(model, tokens), tail_events(model, tokens))
        return self._cache[tokens]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(_HEAD_END)
                line, _, rest = head.partition(b"\r\n")
                headers = rest.lower()
                body = await _read_body(reader, headers)
                if line.startswith(b"POST") and b"/chat/completions" in line:
                    await self._stream(writer, body)
                else:
                    payload = b'{"status":"ok","data":[]}'
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                        % (len(payload), payload)
                    )
                await writer.drain()
                if b"connection: close" in headers:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter, body: bytes) -> None:
        asked = tokens_asked(body)
        events, tail = self._events(asked if asked is not None else self.tokens)
        writer.write(_STREAM_HEAD)
        start = time.perf_counter() + self.ttft
        await asyncio.sleep(self.ttft)  # the first token on its own timer: an exact TTFT
        live = _Live(writer, events, tail, start, asyncio.get_running_loop().create_future())
        if self._pump(live, time.perf_counter()):
            return
        # The rest on one shared ticker: one wake-up per interval for all streams, not one per
        # stream, so the upstream stays cheap at 256 streams.
        self._live.add(live)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())
        await live.done

    def _pump(self, live: _Live, now: float) -> bool:
        """Write every event due by `now`; True when the stream is complete (or the peer left)."""
        if live.writer.is_closing():
            return True
        total = len(live.events)
        ready = min(total, max(live.sent + 1, int((now - live.start) / self.interval) + 2))
        payload = _framed(b"".join(live.events[live.sent : ready]))
        live.sent = ready
        if ready < total:
            live.writer.write(payload)
            return False
        live.writer.write(payload + _framed(live.tail) + b"0\r\n\r\n")
        return True

    async def _tick(self) -> None:
        try:
            while self._live:
                await asyncio.sleep(self.interval)
                now = time.perf_counter()
                for live in list(self._live):
                    if self._pump(live, now):
                        self._live.discard(live)
                        live.done.set_result(None)
        finally:
            self._ticker = None


async def _read_body(reader: asyncio.StreamReader, headers: bytes) -> bytes:
    found = re.search(rb"content-length:\s*(\d+)", headers)
    if found:
        return await reader.readexactly(int(found.group(1)))
    if b"transfer-encoding: chunked" not in headers:
        return b""
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append(await reader.readexactly(size + 2))
        if size == 0:  # no trailers: the last CRLF was read with the empty chunk
            return b"".join(p[:-2] for p in parts)


async def serve(port: int, upstream: Upstream) -> None:
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    upstream = Upstream(args.ttft_ms / 1000, args.interval_ms / 1000, args.tokens)
    asyncio.run(serve(args.port, upstream))


if __name__ == "__main__":
    main()
