"""`python -m bench.store_micro --json --dir DIR [--redis URL]`: one admission per state store,
in-process through fcc's StateService, without HTTP, the upstream or the event loop's other work.

What a request waits for before fcc asks the upstream is one `admit` (at its end come one
`release` and its queued record's write, off the path of its own first token). Measured:

- `alone`: admit, release, admit, … back to back: the store's own cost per admission, while
  the provider's requests_per_minute window holds few requests (the first few hundred).
- `after 5 ms`: the same with 5 ms before each (a token's interval: caches, the thread, the
  socket go cold as they do between a stream's chunks).
- `right after a request ended`: the previous request's release and its record go to the store
  first, then the next admission at once: what a closed-loop client at c=1 does (Claude Code's
  next turn rarely comes this fast); the admission queues behind that work.
- `alone, 1,000 in the window`: `alone` once the window holds 1,000 requests of the last minute
  (the SQLite store reads the window's rows; Redis counts them).
- `release`: a stream's end gives its concurrency slot back (not on any first token's path).
- `record write`: one finished request's record and aggregates written as the flusher writes
  them when idle (one request per write), timed at the backend: off the streaming path, but at
  c=1 it runs while the next request arrives.

The full bench (`--stores`) runs it on the proxy's core while the load is stopped; RESULTS.md
shows it in "State store: cost against memory".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

SCENARIOS = (
    "alone",
    "after 5 ms",
    "right after a request ended",
    "alone, 1,000 in the window",
    "release",
    "record write",
)
FILLED = 1000


def _record(now: float) -> Any:
    from fcc.engine.state.records import RequestRecord

    return RequestRecord(
        time=now,
        session="bench-session",
        model="claude-sonnet-4-5",
        tier="sonnet",
        route="bench/tokens-100",
        attempts=("bench/tokens-100",),
        probe=None,
        status=200,
        ttft_ms=55.0,
        duration_ms=560.0,
        overhead_ms=4.0,
        input_tokens=20_000,
        output_tokens=100,
        cached_tokens=0,
        error_type=None,
        stream=True,
        rule="tier:sonnet",
    )


async def measure(backend_settings: Any, reps: int) -> dict[str, list[float]]:
    """Admission latencies (µs) per scenario; the whole run stays well inside one minute, so every
    admission made is still in the requests_per_minute window."""
    from bench.workload import BENCH_LIMITS
    from fcc.engine.catalog.providers import Limits
    from fcc.engine.state import backend_for
    from fcc.engine.state.service import StateService
    from fcc.engine.state.tally import Increments, add

    provider = _provider(Limits(**BENCH_LIMITS))
    service = StateService(backend_for(backend_settings), {provider.id: provider})
    await service.start()
    out: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    admitted = 0

    async def timed(scenario: str) -> None:
        nonlocal admitted
        start = time.perf_counter()
        admission = await service.admit(provider, "tokens-100")
        out[scenario].append((time.perf_counter() - start) * 1e6)
        admitted += 1
        start = time.perf_counter()
        await service.release(admission.lease)
        if scenario == "alone":
            out["release"].append((time.perf_counter() - start) * 1e6)
        await asyncio.sleep(0)  # a queued record's flusher starts its write now, as in fcc

    try:
        for _ in range(10):  # warm-up: the script loaded, the tables and the thread in use
            await service.release((await service.admit(provider, "tokens-100")).lease)
            admitted += 1
        for _ in range(reps):  # interleaved, like the bench's rounds
            await timed("alone")
            await asyncio.sleep(0.005)
            await timed("after 5 ms")
            previous = await service.admit(provider, "tokens-100")
            admitted += 1
            await asyncio.sleep(0.005)  # the stream's last chunk
            await service.release(previous.lease)
            service.add(_record(time.time()))
            await timed("right after a request ended")
        while admitted < FILLED:
            await service.release((await service.admit(provider, "tokens-100")).lease)
            admitted += 1
        for _ in range(reps):
            await timed("alone, 1,000 in the window")
        await asyncio.sleep(0.05)  # the flusher is idle again
        for _ in range(reps):
            batch = Increments()
            add(batch, _record(time.time()))
            start = time.perf_counter()
            await service.backend.write(batch)
            out["record write"].append((time.perf_counter() - start) * 1e6)
    finally:
        await service.stop()
    return out


def _provider(limits: Any) -> Any:
    """The bench's provider as fcc's config loader makes it (transport, base URL, the limits)."""
    import tempfile

    from bench.workload import BENCH_LIMITS, fcc_config
    from fcc.engine.catalog.config import load_settings

    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "fcc.yaml"
        config.write_text(fcc_config(9, 100, {"backend": "memory"}, BENCH_LIMITS), encoding="utf-8")
        provider = load_settings(config).providers["bench"]
    assert provider.limits == limits, (provider.limits, limits)
    return provider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_micro")
    parser.add_argument("--dir", type=Path, required=True, help="where the sqlite file goes")
    parser.add_argument("--redis", default=None, help="redis://127.0.0.1:PORT/0 (omit to skip redis)")
    parser.add_argument("--reps", type=int, default=200, help="admissions per store and scenario")
    parser.add_argument("--json", action="store_true", help="one JSON line on stdout")
    args = parser.parse_args(argv)
    from fcc.engine.catalog.config import StateSettings

    stores: list[tuple[str, Any]] = [
        ("memory", StateSettings(backend="memory")),
        ("sqlite", StateSettings(backend="sqlite", path=args.dir / "store-micro.db")),
    ]
    if args.redis:
        stores.append(("redis", StateSettings(backend="redis", url=args.redis, prefix="fcc-store-micro")))
    rows = []
    for name, settings in stores:
        samples = asyncio.run(measure(settings, args.reps))
        for scenario, values in samples.items():
            values.sort()
            n = len(values)
            rows.append(
                {
                    "store": name,
                    "scenario": scenario,
                    "n": n,
                    "p50_us": values[n // 2],
                    "p90_us": values[min(n - 1, int(n * 0.9))],
                }
            )
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['store']:7} {r['scenario']:28} p50 {r['p50_us']:8.1f} µs  p90 {r['p90_us']:8.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
