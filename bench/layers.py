"""Where fcc's CPU per streamed token goes, layer by layer: `python -m bench.layers [--rounds 3]`.

Four servers take the same load in turn (Claude Code's recorded turns, 16 streams, answers of
100 and of 1,000 tokens from the bench's upstream), each pinned to the proxy's core like fcc in
the full run, and each one layer more than the one before:

- `aiohttp`: uvicorn (on the loop and HTTP parser fcc would choose) and one aiohttp session,
  forwarding the upstream's bytes untouched: the upstream leg fcc ran on before its own, for
  reference (aiohttp comes with the bench extras, not with fcc);
- `stack`: the same on fcc's own HTTP/1.1 leg (transports/h1.py: asyncio's transport and
  httptools' parser), its body stream read directly: what the libraries fcc runs on cost,
  with the least code of fcc's own that reaches an upstream;
- `+ httpx`: the same through `httpx.AsyncClient` over that leg (aiter_raw), as fcc's
  transport loop reads the upstream;
- `+ translation`: each read through fcc's SSE decoder, the OpenAI → Anthropic stream
  translator and the event encoder, written as Anthropic events;
- `fcc`: `fcc serve` itself, adding routing, admission, fallback and the streaming response's
  pings and disconnect watch.

Each layer forwards the client's own body (Claude Code's 50-90 KB turn, whose model names the
token count) to the upstream, so every layer moves the bytes fcc moves.

The first figure is the marginal CPU per token: (CPU per request with 1,000-token answers minus CPU per
request with 100-token answers) ÷ 900, so what a request costs besides its tokens cancels out.
The second is the time each layer adds to the first token at one stream: its TTFT p50 over
`--ttft-requests` requests minus the upstream's own, asked directly in the same round. At one
stream every request reaches a process that has idled between tokens, which is where fcc's
c=1 figure is made (bench/MISSED.md). It prints the median over the rounds of each layer
(interleaved, so the machine's slow minutes fall on all of them) and the step from the layer
before.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import procs
from bench.workload import BENCH_LIMITS, fcc_config, write_workload

LAYERS = {
    "aiohttp": "uvicorn + aiohttp (fcc's upstream leg before h1.py), the bytes forwarded untouched",
    "stack": "uvicorn + fcc's HTTP/1.1 leg (asyncio + httptools), the bytes forwarded untouched",
    "+ httpx": "the same read through httpx.AsyncClient over that leg",
    "+ translation": "each read SSE-decoded, translated to Anthropic events and encoded (fcc's code)",
    "fcc": "fcc serve: routing, admission, fallback, pings and the disconnect watch on top",
}
SHORT, LONG = 100, 1000


def layers() -> list[str]:
    """The layers this run measures: the aiohttp reference row only where aiohttp is installed
    (`pip install -e '.[bench]'`)."""
    import importlib.util

    return [layer for layer in LAYERS if layer != "aiohttp" or importlib.util.find_spec("aiohttp")]


def app(layer: str, upstream: str) -> Callable[..., Any]:
    """The ASGI application of one of the layers before `fcc`, talking to `upstream` (…/v1)."""
    import httpx

    from fcc.engine.catalog.providers import Quirks
    from fcc.engine.translate.events import encode
    from fcc.engine.translate.openai_stream import OpenAIStreamTranslator, StreamOptions
    from fcc.engine.translate.sse import SSEDecoder
    from fcc.engine.transports.h1 import H1Transport
    from fcc.engine.transports.openai_chat import _Lines

    url = upstream.rstrip("/") + "/chat/completions"
    options = StreamOptions(
        message_id="msg_layers", model="claude-layers", quirks=Quirks(), input_estimate=100
    )
    clients: dict[str, Any] = {}

    async def body_of(receive: Any) -> bytes:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                return body

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        sent = await body_of(receive)  # forwarded as it came: the upstream reads tokens-N in it
        headers = {"content-type": "application/json"}
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }

        async def write(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
        if layer == "aiohttp":
            import aiohttp

            if "aiohttp" not in clients:
                clients["aiohttp"] = aiohttp.ClientSession(auto_decompress=False)
            async with clients["aiohttp"].post(url, data=sent, headers=headers) as response:
                await send(start)
                async for chunk in response.content.iter_any():
                    await write(chunk)
        elif layer == "stack":
            if "h1" not in clients:
                clients["h1"] = H1Transport(limits)
            request = httpx.Request("POST", url, content=sent, headers=headers)
            raw = await clients["h1"].handle_async_request(request)
            await send(start)
            async for chunk in raw.stream:
                await write(chunk)
            await raw.aclose()
        else:
            if "httpx" not in clients:
                clients["httpx"] = httpx.AsyncClient(transport=H1Transport(limits), timeout=None)
            client: httpx.AsyncClient = clients["httpx"]
            response = await client.send(
                client.build_request("POST", url, content=sent, headers=headers), stream=True
            )
            await send(start)
            if layer == "+ httpx":
                async for chunk in response.aiter_raw():
                    await write(chunk)
            else:
                decoder, translator = SSEDecoder(), _Lines(OpenAIStreamTranslator(options))
                await write(b"".join(encode(e) for e in translator.start()))
                async for chunk in response.aiter_raw():
                    events = []
                    for message in decoder.feed_bytes(chunk):
                        events += translator.feed(message)
                    if events:
                        await write(b"".join(encode(e) for e in events))
                events = [e for message in decoder.flush() for e in translator.feed(message)]
                await write(b"".join(encode(e) for e in events + translator.finish()))
            await response.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return application


def serve(layer: str, port: int, upstream: str) -> None:
    import uvicorn

    from fcc.engine.transports import speed

    uvicorn.run(
        app(layer, upstream),
        host="127.0.0.1",
        port=port,
        loop=speed.loop(),
        http=speed.http(),
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


def measure(
    rounds: int, short_requests: int, long_requests: int, ttft_requests: int, work: Path
) -> dict[str, dict[str, list[float]]]:
    """Per layer, of each round: "cpu", the marginal CPU µs per token; "ttft", the ms it adds to
    the first token at one stream."""
    from bench.run import LOAD_CORES, PROXY_CORES, Client, Contender, fcc_argv

    pinned = len(os.sched_getaffinity(0)) >= 2
    proxy, load = (PROXY_CORES, LOAD_CORES) if pinned else (None, None)
    up_port = procs.free_port()
    config = work / "fcc.yaml"
    config.write_text(fcc_config(up_port, SHORT, {"backend": "memory"}, BENCH_LIMITS), encoding="utf-8")
    workload = work / "workload.json"
    write_workload(workload, config, SHORT, LONG)
    env = {"XDG_CONFIG_HOME": str(work), "XDG_STATE_HOME": str(work / "state")}
    upstream = f"http://127.0.0.1:{up_port}/v1"
    out: dict[str, list[float]] = {layer: [] for layer in layers()}
    added: dict[str, list[float]] = {layer: [] for layer in out}
    up_argv = procs.python_module("bench.upstream", f"--port={up_port}")
    with procs.running(
        up_argv, work / "upstream.log", f"http://127.0.0.1:{up_port}/health", cores=load, timeout=30
    ):
        servers: dict[str, Contender] = {}
        with contextlib.ExitStack() as stack:
            for i, layer in enumerate(out):
                port = procs.free_port()
                if layer == "fcc":
                    argv = fcc_argv(config, port)
                else:
                    argv = procs.python_module("bench.layers", "--serve", layer, str(port), upstream)
                health = f"http://127.0.0.1:{port}/health"
                log = work / f"layer{i}.log"
                proc = stack.enter_context(procs.running(argv, log, health, cores=proxy, timeout=60, env=env))
                servers[layer] = Contender(
                    layer, f"http://127.0.0.1:{port}/v1/messages", "anthropic", proc.pid
                )
            direct = Contender("direct", f"{upstream}/chat/completions", "openai", None)
            client = Client(workload, work / "client.log", load, "raw")
            try:
                for contender in servers.values():  # connections opened, code paths warm
                    _cpu_per_request(client, contender, 4, SHORT)
                for _ in range(rounds):
                    floor = _ttft_p50(client, direct, ttft_requests)
                    for layer, contender in servers.items():
                        short = _cpu_per_request(client, contender, short_requests, SHORT)
                        long = _cpu_per_request(client, contender, long_requests, LONG)
                        out[layer].append((long - short) / (LONG - SHORT) * 1e6)
                        added[layer].append(_ttft_p50(client, contender, ttft_requests) - floor)
            finally:
                client.close()
    return {"cpu": out, "ttft": added}


def _ttft_p50(client: Any, contender: Any, requests: int) -> float:
    """The median time to the first token, ms, of `requests` asked one at a time."""
    records = _answered(contender, client.batch(contender, 1, requests, SHORT)["records"], SHORT)
    return statistics.median(r[2] for r in records) * 1000


def _cpu_per_request(client: Any, contender: Any, requests: int, tokens: int) -> float:
    before = procs.cpu_seconds(contender.pid)
    answered = client.batch(contender, 16, requests, tokens)
    spent = procs.cpu_seconds(contender.pid) - before
    return spent / len(_answered(contender, answered["records"], tokens))


def _answered(contender: Any, records: list[Any], tokens: int) -> list[Any]:
    bad = [r for r in records if not r[0] or r[4] != tokens]
    if bad:
        raise RuntimeError(f"{contender.name}: {len(bad)} of {len(records)} answers failed or were cut short")
    return records


def report(data: dict[str, dict[str, list[float]]], show: Callable[[str], None] = print) -> None:
    cpu, ttft = data["cpu"], data["ttft"]
    rounds = len(next(iter(cpu.values())))
    show(f"Median of {rounds} interleaved rounds: the marginal CPU per streamed token at 16 streams (µs),")
    show("and the time added to the first token at one stream (ms; TTFT p50 minus the upstream's, asked")
    show("directly in the same round):")
    show("")
    show("| layer | µs per token | rounds | step | added TTFT p50 at c=1, ms | rounds | step | what it is |")
    show("|---|---|---|---|---|---|---|---|")
    before: tuple[float, float] | None = None
    for layer, values in cpu.items():
        median, added = statistics.median(values), statistics.median(ttft[layer])
        steps = ("", "") if before is None else (f"{median - before[0]:+.1f}", f"{added - before[1]:+.2f}")
        spreads = (
            f"{min(values):.1f} to {max(values):.1f}",
            f"{min(ttft[layer]):.2f} to {max(ttft[layer]):.2f}",
        )
        show(
            f"| {layer} | {median:.1f} | {spreads[0]} | {steps[0]} "
            f"| {added:.2f} | {spreads[1]} | {steps[1]} | {LAYERS[layer]} |"
        )
        before = (median, added)


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        layer, port, upstream = sys.argv[2:5]
        serve(layer, int(port), upstream)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--requests", type=int, default=64, help="100-token requests per round (default 64)")
    parser.add_argument(
        "--long-requests", type=int, default=32, help="1,000-token requests per round (default 32)"
    )
    parser.add_argument(
        "--ttft-requests",
        type=int,
        default=16,
        help="requests at one stream per round, for TTFT (default 16)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead")
    args = parser.parse_args()
    work = functools.partial(measure, args.rounds, args.requests, args.long_requests, args.ttft_requests)
    procs.run_tool("fcc-layers-", args.json, work, report)


if __name__ == "__main__":
    main()
