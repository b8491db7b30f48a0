"""JSON on Claude Code's request bodies: `python -m bench.json_micro [--reps N] [--markdown]`.

Parse (bytes → dict) and dump (dict → bytes) of every recorded request body in
../shared/fixtures/claude-code/*.json, with the standard library's json, orjson and msgspec
(optional: `pip install orjson msgspec` into the venv for this measurement; they are not
fcc dependencies, and a missing one is reported and skipped). Every call is timed alone,
the variants interleaved call by call so drift lands on all of them; median and p90 per body.

The stdlib variants include the ones fcc runs today:
- parse as `read_json` in fcc/engine/server/state.py does it: `raw.decode("utf-8")`, then
  `json.loads(text, parse_float=_finite, parse_constant=_no_constants)`; the same without
  the two hooks, to see what they cost; and the hooks on one JSONDecoder built once (json.loads
  with keywords builds a new decoder per call);
- dump as httpx does for `json=` (how fcc sends the upstream body): `json.dumps(obj,
  ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")`.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import percentile, rotated
from bench.workload import FIXTURES


def _hooks() -> tuple[Callable[[str], Any], Callable[[str], Any], str]:
    """fcc's own parse_float / parse_constant hooks, or faithful copies if they moved."""
    try:
        from fcc.engine.server.state import _finite, _no_constants

        return _finite, _no_constants, "fcc.engine.server.state"
    except Exception as exc:  # moved, or fcc does not import at all: measure the same code anyway
        why = f"copies (fcc.engine.server.state could not be imported: {type(exc).__name__}: {exc})"

        def finite(text: str) -> float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value

        def no_constants(name: str) -> Any:
            raise ValueError(name)

        return finite, no_constants, why


@dataclass(frozen=True, slots=True)
class Body:
    name: str
    raw: bytes  # as a client sends it: compact, UTF-8 (JavaScript's JSON.stringify)
    obj: dict[str, Any]
    floats: int


def _count_floats(value: Any) -> int:
    if isinstance(value, float):
        return 1
    if isinstance(value, dict):
        return sum(_count_floats(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_floats(v) for v in value)
    return 0


def load_bodies(folder: Path = FIXTURES) -> list[Body]:
    out = []
    for path in sorted(folder.glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8")).get("body")
        if not isinstance(body, dict):
            continue
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        out.append(Body(path.stem, raw, body, _count_floats(body)))
    if not out:
        raise SystemExit(f"no request bodies found in {folder}")
    return sorted(out, key=lambda b: len(b.raw))


Op = Callable[[Any], Any]


def parsers() -> tuple[dict[str, Op], list[str]]:
    finite, no_constants, source = _hooks()
    decoder = json.JSONDecoder(parse_float=finite, parse_constant=no_constants)
    ops: dict[str, Op] = {
        "stdlib loads(bytes)": json.loads,
        "stdlib, fcc hooks": lambda raw: json.loads(
            raw.decode("utf-8"), parse_float=finite, parse_constant=no_constants
        ),
        "stdlib, no hooks": lambda raw: json.loads(raw.decode("utf-8")),
        # json.loads with any keyword builds a new JSONDecoder (and its scanner) per call:
        "stdlib, fcc hooks, one decoder": lambda raw: decoder.decode(raw.decode("utf-8")),
    }
    notes = [f"fcc hooks: `_finite` / `_no_constants` from {source}."]
    try:
        import orjson

        ops["orjson"] = orjson.loads
        notes.append(f"orjson {orjson.__version__}.")
    except ImportError:
        notes.append("orjson: not installed, skipped (`pip install orjson`).")
    try:
        import msgspec

        ops["msgspec"] = msgspec.json.Decoder().decode
        notes.append(f"msgspec {msgspec.__version__}.")
    except ImportError:
        notes.append("msgspec: not installed, skipped (`pip install msgspec`).")
    return ops, notes


def dumpers() -> dict[str, Op]:
    ops: dict[str, Op] = {
        "stdlib dumps().encode()": lambda obj: json.dumps(obj).encode(),
        "stdlib, as httpx json=": lambda obj: json.dumps(
            obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8"),
        # The same compact JSON with non-ASCII escaped: a one-byte-per-character str to encode.
        "stdlib, compact, ensure_ascii": lambda obj: json.dumps(
            obj, separators=(",", ":"), allow_nan=False
        ).encode(),
    }
    try:
        import orjson

        ops["orjson"] = orjson.dumps
    except ImportError:
        pass
    try:
        import msgspec

        ops["msgspec"] = msgspec.json.Encoder().encode
    except ImportError:
        pass
    return ops


def check(bodies: list[Body], parse: dict[str, Op], dump: dict[str, Op]) -> None:
    """Every variant gives the same dict, and every dump parses back to it."""
    for body in bodies:
        for name, op in parse.items():
            if op(body.raw) != body.obj:
                raise SystemExit(f"{name} parsed {body.name} differently")
        for name, op in dump.items():
            if json.loads(op(body.obj)) != body.obj:
                raise SystemExit(f"{name} dumped {body.name} to something else")


def measure(arg: Any, ops: dict[str, Op], reps: int) -> dict[str, list[float]]:
    """µs per call of each op on `arg`, `reps` times each, interleaved call by call."""
    times: dict[str, list[float]] = {name: [] for name in ops}
    items = list(ops.items())
    for op in ops.values():  # warm up
        op(arg)
    gc.collect()
    clock = time.perf_counter_ns
    for r in range(reps):
        for name, op in rotated(items, r):
            start = clock()
            op(arg)
            times[name].append((clock() - start) / 1000)
    return times


def _cell(values: list[float]) -> str:
    return f"{percentile(values, 50):,.0f} / {percentile(values, 90):,.0f}"


def table(
    kind: str, bodies: list[Body], results: list[dict[str, list[float]]], names: list[str]
) -> list[str]:
    head = f"| {kind}: body | KB | floats | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (3 + len(names))]
    for body, times in zip(bodies, results, strict=True):
        cells = [body.name, f"{len(body.raw) / 1024:.1f}", str(body.floats)]
        cells += [_cell(times[n]) for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary(
    bodies: list[Body],
    parsed: list[dict[str, list[float]]],
    dumped: list[dict[str, list[float]]],
    parse_base: str,
    dump_base: str,
) -> list[str]:
    """Over the main turns (the bodies ≥ 40 KB): each variant against the stdlib one fcc uses."""
    big = [i for i, b in enumerate(bodies) if len(b.raw) >= 40 * 1024]
    if not big:
        return []
    kb = statistics.fmean(len(bodies[i].raw) / 1024 for i in big)
    lines = [
        f"Over the {len(big)} bodies of 40 KB and more (mean {kb:.0f} KB): median µs per call, and "
        "how many times faster than the stdlib variant fcc runs today (geometric mean over the bodies).",
        "",
        "| step | variant | median µs (mean over bodies) | MB/s | speed-up vs fcc's today |",
        "|---|---|---|---|---|",
    ]
    for step, results, base in (("parse", parsed, parse_base), ("dump", dumped, dump_base)):
        for name in results[0]:
            medians = [percentile(results[i][name], 50) for i in big]
            base_medians = [percentile(results[i][base], 50) for i in big]
            speedup = math.exp(
                statistics.fmean(math.log(b / m) for b, m in zip(base_medians, medians, strict=True))
            )
            mbps = statistics.fmean(len(bodies[i].raw) / m for i, m in zip(big, medians, strict=True))
            mark = " (fcc today)" if name == base else ""
            lines.append(
                f"| {step} | {name}{mark} | {statistics.fmean(medians):,.0f} | {mbps:,.0f} | {speedup:.2f} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.json_micro", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--reps", type=int, default=400, help="timed calls per variant and body (default 400)"
    )
    parser.add_argument("--fixtures", type=Path, default=FIXTURES, help="folder of recorded requests")
    args = parser.parse_args(argv)
    bodies = load_bodies(args.fixtures)
    parse, notes = parsers()
    dump = dumpers()
    check(bodies, parse, dump)
    began = time.perf_counter()
    parsed, dumped = [], []
    for body in bodies:
        parsed.append(measure(body.raw, parse, args.reps))
        dumped.append(measure(body.obj, dump, args.reps))
        print(f"  {body.name}: done", file=sys.stderr, flush=True)
    out = [
        f"# JSON on Claude Code's request bodies ({args.reps} timed calls per variant and body, "
        f"Python {sys.version.split()[0]}, {time.perf_counter() - began:.0f} s)",
        "",
        "Cells: median / p90 µs per call. Parse is bytes → dict (the stdlib variants decode UTF-8 "
        "first, as fcc's read_json does); dump is dict → bytes. The garbage collector stays on, "
        "as in the server. " + " ".join(notes),
        "",
        *table("parse", bodies, parsed, list(parse)),
        "",
        *table("dump", bodies, dumped, list(dump)),
        "",
        *summary(bodies, parsed, dumped, "stdlib, fcc hooks", "stdlib, as httpx json="),
    ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
