"""Where one request's time goes inside fcc: `python -m bench.timeline [--requests 60] [--json]`.

`fcc serve` runs with a timestamp taken at each step of a request, from the first byte uvicorn
parses to the first write of the answer to the client, and the time of the steps the handler
calls in turn (validation, features, routing, admission, translation, encoding, httpx's
request). The load is the full run's: the bench's upstream (50 ms to the first token) and
Claude Code's recorded turns, one stream at a time, fcc pinned to core 0 and the client and the
upstream to core 1 when there are two. It prints the median of each step over the requests
after the first 10 (warm-up). The timestamps cost a few µs each, so the absolute times are a
little high; what it is for is where the time goes. It times fcc's default fast paths
(httptools, fcc's own upstream leg): with FCC_HTTP=h11 or FCC_UPSTREAM=httpx some steps are not seen.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import procs
from bench.workload import BENCH_LIMITS, fcc_config, write_workload

# The request's steps in the order they happen (µs since its first byte), and what each means.
STEPS = {
    "headers": "uvicorn has parsed the request's headers",
    "body in": "the whole body has been received",
    "handler": "fcc's route handler starts reading the body",
    "parsed": "the body is parsed (msgspec)",
    "built": "the upstream request is built and encoded",
    "sent": "fcc's upstream transport (transports/h1.py) has written it to a kept-alive connection",
    "response": "the streaming response is set up; it waits for the upstream in this task",
    "upstream headers": "the upstream's status line and headers are in",
    "first chunk": "the upstream's first chunk (50 ms later: its time to first token)",
    "written": "the first events (and, just before, the response's head) are written",
}
WARM_UP = 10
OUT_ENV = "FCC_TIMELINE_OUT"


def _hooks(out: Path) -> None:
    """Wrap the functions whose start or end marks a step; the timeline goes to `out` at exit."""
    import uvicorn.protocols.http.httptools_impl as httptools_impl

    import fcc.engine.server.edge as edge
    import fcc.engine.server.messages as messages
    import fcc.engine.state.service as service
    import fcc.engine.transports.h1 as h1
    import fcc.engine.transports.http as transport_loop
    import fcc.engine.transports.openai_chat as openai_chat

    now = time.perf_counter
    current: dict[str, float] = {}
    done: list[dict[str, float]] = []
    spent: dict[str, list[float]] = collections.defaultdict(list)

    def mark(name: str) -> None:
        current.setdefault(name, now())

    def at(owner: Any, attr: str, start: str | None, end: str | None = None) -> None:
        """A plain function's call marks `start` as it begins, `end` as it returns."""
        f = getattr(owner, attr)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if start:
                mark(start)
            result = f(*args, **kwargs)
            if end:
                mark(end)
            return result

        setattr(owner, attr, wrapped)

    def around(owner: Any, attr: str, start: str | None, end: str | None) -> None:
        f = getattr(owner, attr)

        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            if start:
                mark(start)
            result = await f(*args, **kwargs)
            if end:
                mark(end)
            return result

        setattr(owner, attr, wrapped)

    def timed(owner: Any, attr: str, is_async: bool = False) -> None:
        f = getattr(owner, attr)
        label = f"{getattr(owner, '__name__', '?').rsplit('.', 1)[-1]}.{attr}"

        def record(began: float) -> None:
            spent[label].append((now() - began) * 1e6)

        if is_async:

            async def awaited(*args: Any, **kwargs: Any) -> Any:
                began = now()
                try:
                    return await f(*args, **kwargs)
                finally:
                    record(began)

            setattr(owner, attr, awaited)
        else:

            def called(*args: Any, **kwargs: Any) -> Any:
                began = now()
                try:
                    return f(*args, **kwargs)
                finally:
                    record(began)

            setattr(owner, attr, called)

    protocol = httptools_impl.HttpToolsProtocol
    begin = protocol.on_message_begin

    def on_message_begin(self: Any) -> None:
        current.clear()
        current["start"] = now()
        begin(self)

    protocol.on_message_begin = on_message_begin  # type: ignore[method-assign]
    at(protocol, "on_headers_complete", "headers")
    at(protocol, "on_message_complete", "body in")
    around(messages, "read_body", "handler", "parsed")
    at(transport_loop.Sender, "start", "built")
    at(h1.H1Transport, "send_now", None, "sent")
    around(h1.H1Transport, "_answer", None, "upstream headers")
    around(edge.EventStream, "__call__", "response", None)
    chunks = h1._Body.__aiter__

    async def first_chunk(self: Any) -> Any:
        async for chunk in chunks(self):
            mark("first chunk")
            yield chunk

    h1._Body.__aiter__ = first_chunk  # type: ignore[method-assign]
    write = edge.EventStream._write

    async def written(self: Any, send: Any, body: bytes, more: bool = True) -> None:
        first = bool(body) and "written" not in current
        await write(self, send, body, more)
        if first:
            mark("written")
            done.append(dict(current))

    edge.EventStream._write = written  # type: ignore[method-assign]
    for attr in ("check_request", "features_of", "find_probe", "decide", "plan_for"):
        timed(messages, attr)
    timed(service.StateService, "admit", is_async=True)
    timed(openai_chat, "to_openai")
    timed(transport_loop.toollist, "encode_body")
    timed(transport_loop.Sender, "request")

    def save() -> None:
        rows = [{k: (v - r["start"]) * 1e6 for k, v in r.items() if k != "start"} for r in done]
        out.write_text(json.dumps({"requests": rows, "calls": spent}), encoding="utf-8")

    atexit.register(save)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def serve(argv: list[str]) -> None:
    """`fcc serve ARGV` in this process, with the hooks; the timeline goes to $FCC_TIMELINE_OUT."""
    _hooks(Path(os.environ[OUT_ENV]))
    from fcc.cli import main as cli

    sys.argv = ["fcc", "serve", *argv]
    cli()


def medians(data: dict[str, Any], warm_up: int = WARM_UP) -> tuple[list[tuple[str, float, float]], int]:
    """(step, median µs since the first byte, median µs since the step before) and the number
    of requests they are over; the first `warm_up` requests are left out."""
    rows = data["requests"][warm_up:]
    out, before = [], 0.0
    for step in STEPS:
        at = [r[step] for r in rows if step in r]
        if at:
            m = statistics.median(at)
            out.append((step, m, m - before))
            before = m
    return out, len(rows)


def measure(requests: int, work: Path) -> dict[str, Any]:
    from bench.run import LOAD_CORES, PROXY_CORES, Client, Contender

    pinned = len(os.sched_getaffinity(0)) >= 2  # as the full run pins
    proxy, load = (PROXY_CORES, LOAD_CORES) if pinned else (None, None)
    up_port, fcc_port = procs.free_port(), procs.free_port()
    config = work / "fcc.yaml"
    config.write_text(fcc_config(up_port, 100, {"backend": "memory"}, BENCH_LIMITS), encoding="utf-8")
    workload = work / "workload.json"
    write_workload(workload, config, 100, 100)
    out = work / "timeline.json"
    env = {OUT_ENV: str(out), "XDG_CONFIG_HOME": str(work), "XDG_STATE_HOME": str(work / "state")}
    upstream = procs.python_module("bench.upstream", f"--port={up_port}")
    fcc = procs.python_module("bench.timeline", "--serve", "--config", str(config), "--port", str(fcc_port))
    up_health, fcc_health = (f"http://127.0.0.1:{p}/health" for p in (up_port, fcc_port))
    with (
        procs.running(upstream, work / "upstream.log", up_health, cores=load, timeout=30),
        procs.running(fcc, work / "fcc.log", fcc_health, cores=proxy, timeout=60, env=env) as server,
    ):
        client = Client(workload, work / "client.log", load, "raw")
        try:
            contender = Contender("fcc", f"http://127.0.0.1:{fcc_port}/v1/messages", "anthropic", server.pid)
            answered = client.batch(contender, 1, requests, 100)
        finally:
            client.close()
    failed = sum(1 for r in answered["records"] if not r[0])
    if failed:
        raise RuntimeError(f"{failed} of {requests} requests failed (see {work}/fcc.log)")
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def report(data: dict[str, Any], show: Callable[[str], None] = print) -> None:
    rows, n = medians(data)
    show(f"One stream, {n} requests (after {WARM_UP} warm-up), median µs:")
    show("")
    show("| step | since the request's first byte | since the step before | what happened |")
    show("|---|---|---|---|")
    for step, at, delta in rows:
        show(f"| {step} | {at:,.0f} | {delta:,.0f} | {STEPS[step]} |")
    show("")
    show("| call (in the handler, in this order) | median µs |")
    show("|---|---|")
    for label, times in data["calls"].items():
        show(f"| `{label}` | {statistics.median(times[WARM_UP:] or times):,.1f} |")


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--requests", type=int, default=60, help="requests at one stream (default 60)")
    parser.add_argument("--json", action="store_true", help="print the raw timeline as JSON instead")
    args = parser.parse_args()
    if args.requests <= WARM_UP:
        parser.error(f"--requests must be over the {WARM_UP} warm-up requests")
    procs.run_tool("fcc-timeline-", args.json, lambda work: measure(args.requests, work), report)


if __name__ == "__main__":
    main()
