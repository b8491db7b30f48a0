"""In-process micro-benchmarks of fcc's two translators (no network, no event loop)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.upstream import stream_events, tail_events
from bench.workload import load_fixtures
from fcc.engine.translate.events import encode
from fcc.engine.translate.openai_request import Target, thinking_requested, to_openai
from fcc.engine.translate.openai_stream import OpenAIStreamTranslator, StreamOptions
from fcc.engine.translate.sse import SSEDecoder
from fcc.engine.transports.openai_chat import _Lines

try:
    from fcc.engine.catalog.providers import Quirks
except ImportError:  # a --baseline ref from before the engine's modules moved into packages
    from fcc.engine.catalog import Quirks  # type: ignore[no-redef]


@dataclass(frozen=True, slots=True)
class Rate:
    name: str
    per_second: float
    unit: str

    @property
    def micros(self) -> float:
        return 1e6 / self.per_second


def _rate(name: str, unit: str, items: int, work: Callable[[], None], budget: float) -> Rate:
    work()  # warm
    best = float("inf")
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return Rate(name, items / best, unit)


def stream_rates(tokens: int = 1000, budget: float = 1.0) -> list[Rate]:
    raw = b"".join(stream_events("tokens", tokens)) + tail_events("tokens", tokens)
    text = raw.decode()
    chunks = [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: {")]
    options = StreamOptions(
        message_id="msg_bench", model="claude-opus-5-5", quirks=Quirks(), input_estimate=100
    )

    def translate_only() -> None:
        t = OpenAIStreamTranslator(options)
        t.start()
        for chunk in chunks:
            t.feed(chunk)
        t.finish(True)

    reads = [*stream_events("tokens", tokens), tail_events("tokens", tokens)]  # one per event

    def whole_pipe() -> None:
        # What fcc does per upstream read: SSE decode → JSON → translate → encode to bytes.
        decoder = SSEDecoder()
        t = _Lines(OpenAIStreamTranslator(options))
        out = [encode(e) for e in t.start()]
        for read in reads:
            for message in decoder.feed_bytes(read):
                out += [encode(e) for e in t.feed(message)]
        out += [encode(e) for e in t.finish()]

    n = len(chunks)
    return [
        _rate("OpenAIStreamTranslator.feed (parsed chunks)", "chunks", n, translate_only, budget),
        _rate("SSE decode + json.loads + translate + encode", "chunks", n, whole_pipe, budget),
    ]


def request_rates(budget: float = 1.0) -> list[Rate]:
    fixtures = load_fixtures()
    raws = [json.dumps(f.body) for f in fixtures]
    target = Target(model="tokens-100", quirks=Quirks(), thinking=True)

    def to_openai_only() -> None:
        for f in fixtures:
            to_openai(f.body, target)

    def round_trip() -> None:
        # What fcc does per request before the upstream sees a byte: parse, translate, serialize.
        for raw in raws:
            body = json.loads(raw)
            json.dumps(to_openai(body, Target("tokens-100", Quirks(), thinking=thinking_requested(body))))

    n = len(fixtures)
    return [
        _rate("to_openai on the recorded requests", "requests", n, to_openai_only, budget),
        _rate("json.loads + to_openai + json.dumps", "requests", n, round_trip, budget),
    ]


_TEN_RULES = (
    "routes:\n"
    + "".join(
        # Each rule's cheap conditions hold and its wording does not: every rule is read through.
        f"  - name: rule{i}\n"
        f"    when: {{family: opus, system: {{contains: 'not there {i}'}}}}\n    use: opus\n"
        for i in range(9)
    )
    + "  - name: last\n    when: {input_tokens_over: 1000000}\n    use: opus\n"
)


def routing_rates(budget: float = 1.0) -> list[Rate]:
    """Deciding a route: features at the door, ten rules, the capability checks."""
    import tempfile
    from pathlib import Path

    try:
        from fcc.engine.catalog.config import load_settings
        from fcc.engine.request.features import features_of
        from fcc.engine.routing.candidates import plan
        from fcc.engine.routing.router import decide
        from fcc.engine.translate.tokens import ToolSizes
    except ImportError:  # a --baseline ref from before routing rules
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(_TEN_RULES, encoding="utf-8")
        settings = load_settings(path)
    big = max(load_fixtures(), key=lambda f: len(json.dumps(f.body)))
    raw = json.dumps(big.body)
    bodies = [json.loads(raw) for _ in range(64)]  # fresh objects, as each request brings
    sizes = ToolSizes()
    headers: dict[str, str] = {}
    state = {"i": 0}

    def route_one() -> None:
        body = bodies[state["i"] % len(bodies)]
        state["i"] += 1
        features = features_of(body, headers, wanted_headers=settings.header_names, sizes=sizes)
        plan(decide(features, body, settings), features)

    name = f"route a {len(raw) // 1024} KB request through ten rules (features, rules, checks)"
    return [_rate(name, "requests", 1, route_one, budget)]


def run(budget: float = 1.0) -> list[Rate]:
    return stream_rates(budget=budget) + request_rates(budget=budget) + routing_rates(budget=budget)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per micro-benchmark")
    parser.add_argument("--json", action="store_true", help="one JSON line (what --baseline reads)")
    args = parser.parse_args(argv)
    rates = run(args.budget)
    if args.json:
        print(json.dumps([{"name": r.name, "per_second": r.per_second, "unit": r.unit} for r in rates]))
        return
    for rate in rates:
        print(f"{rate.name}: {rate.per_second:,.0f} {rate.unit}/s ({rate.micros:.1f} µs each)")


if __name__ == "__main__":
    main()
