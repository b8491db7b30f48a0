"""CI smoke test of the benchmark harness: `python -m bench --quick --stores` runs, every contender
answers (fcc on each state store: memory, sqlite, and redis when redis-server is installed;
`fcc serve --workers 2` at the quick plan's one workers level; the zero-work relay), and RESULTS.md
comes out with its tables filled in. It never judges the numbers themselves (a shared
CI machine makes them noisy); it proves the harness measures something."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import relay, stores
from bench.plan import QUICK

REPO = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


def _number(cell: str) -> float:
    assert NUMBER.match(cell), f"not a number: {cell!r}"
    return float(cell.replace(",", ""))


def section(text: str, heading: str) -> str:
    """The text under `## heading`, up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"RESULTS.md has no section {heading!r}"
    return match.group(1)


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in `text`, each as one dict per row keyed by the header cells."""
    found: list[list[str]] = []
    previous = False
    for line in text.splitlines():
        if line.startswith("|"):
            if not previous:
                found.append([])
            found[-1].append(line)
        previous = line.startswith("|")
    out = []
    for lines in found:
        assert len(lines) >= 3, f"a table without rows:\n{lines}"
        split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
        header, rows = split[0], split[2:]
        out.append([dict(zip(header, row, strict=True)) for row in rows])
    assert out, f"no table in:\n{text}"
    return out


def table(text: str) -> list[dict[str, str]]:
    """The first Markdown table in `text`."""
    return tables(text)[0]


@pytest.mark.slow
def test_quick_bench_runs_and_reports(tmp_path: Path) -> None:
    committed = (REPO / "bench" / "RESULTS.md").read_bytes()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-litellm", "--stores", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    spent = time.monotonic() - started
    assert done.returncode == 0, f"bench failed:\n{done.stdout}\n{done.stderr}"
    assert (REPO / "bench" / "RESULTS.md").read_bytes() == committed, "--out must leave bench/ alone"
    results = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert (tmp_path / "run" / "results.pickle").exists()
    assert (tmp_path / "latency.png").exists() or "No plot: matplotlib is not installed" in results

    # Every contender answered every measured request at every concurrency, with the right tokens.
    rows = table(section(results, "Latency and throughput (ms unless stated)"))
    seen = {(int(r["c"]), r["contender"]) for r in rows}
    levels = {level.concurrency: level.per_contender for level in QUICK.levels}
    redis_missing = stores.redis_missing()
    fccs = ["fcc", stores.SQLITE] + ([] if redis_missing else [stores.REDIS])
    workers = f"fcc ×{QUICK.workers} workers"  # noqa: RUF001
    assert QUICK.workers > 1 and set(QUICK.workers_levels) <= set(levels), "the quick run must run workers"
    assert seen == {(c, name) for c in levels for name in ("direct", relay.CONTENDER, *fccs)} | {
        (c, workers) for c in QUICK.workers_levels
    }
    for row in rows:
        assert int(row["n"]) == levels[int(row["c"])], row
        assert row["failed"] == "0", row
        for column in ("TTFT p50", "TTFT p99", "total p50", "req/s", "tokens/s"):
            assert _number(row[column]) > 0, (column, row)
        if row["contender"] in (*fccs, workers):
            for column in ("added TTFT p50", "added total p50"):
                _number(row[column])
            for column in ("proxy CPU ms/req", "proxy RSS MB"):
                assert _number(row[column]) > 0, (column, row)
        if row["contender"] == relay.CONTENDER:  # its CPU can be under one 10 ms tick over a batch
            for column in ("added TTFT p50", "added total p50", "proxy CPU ms/req"):
                _number(row[column])
            assert _number(row["proxy RSS MB"]) > 0, row
        # The upstream takes 50 ms to the first token: nobody can answer sooner.
        assert _number(row["TTFT p50"]) >= QUICK.ttft_ms, row

    # Issue 16's targets: every figure the quick plan measures is a number with a yes/no verdict.
    issue = {r["figure"].split(" (")[0]: r for r in table(section(results, "Issue 16 targets"))}
    for figure in (
        "added TTFT p50 at c=1",
        "added TTFT p99 at c=1",
        "fcc CPU per streamed token, marginal",
        "tokens/s one fcc process sustains",
        "`fcc serve` start → first request answered",
    ):
        row = issue[figure]
        assert row["met"] in ("yes", "no"), row
        assert _number(row["this run"].split(" ")[0]) > 0 or "TTFT" in figure, row
    for figure in ("added TTFT p99 at c=64, one process", "fcc RSS at 256 streams"):
        assert issue[figure]["met"] == "n/a" and "n/a (no c=" in issue[figure]["this run"], issue[figure]
    assert issue["advantage over LiteLLM, added TTFT p50, at every concurrency"]["this run"] == (
        "n/a (LiteLLM not run)"
    )
    tps = issue[f"tokens/s, {workers}"]
    assert _number(tps["this run"].split(" ")[0]) > 0 and tps["met"] == "-", tps
    for c in (64, 256):
        assert issue[f"added TTFT p99 at c={c}, {workers}"]["this run"] == f"n/a (not run at c={c})"
    # The workers beside one process, at the levels they ran.
    beside = table(section(results, "Several workers beside one process"))
    assert {r["contender"] for r in beside} == {"one process (memory)", "one process (sqlite)", workers}
    for row in beside:
        assert int(row["c"]) in QUICK.workers_levels, row
        for column in ("tokens/s", "req/s", "CPU ms/req", "RSS MB"):
            assert _number(row[column]) > 0, (column, row)

    # One more hop: the relay's added TTFT beside fcc's, and fcc beyond it, at every level.
    hop = table(section(results, "One more hop: a zero-work relay"))
    assert [int(r["c"]) for r in hop] == sorted(levels)
    for row in hop:
        for column, cell in row.items():
            if column == "95% CI of it":
                low, high = (_number(x) for x in cell.split(" to "))
                assert low <= high, row
            else:
                _number(cell)
        assert _number(row["fcc CPU ms/req"]) > 0, row
        beyond = _number(row["fcc added TTFT p50"]) - _number(row["relay added TTFT p50"])
        assert abs(_number(row["fcc beyond the relay p50"]) - beyond) <= 0.011, row

    # c=1 again with fcc's core kept awake: what the idle core costs the relay and fcc.
    kept = section(results, "One stream with the proxy's core kept awake")
    if (os.cpu_count() or 1) >= 2:
        n, tokens = QUICK.awake.per_contender, QUICK.awake_tokens
        assert f"{n} requests per contender and state, {tokens}-token answers" in kept
        rows = table(kept)
        assert [r["contender"] for r in rows] == [relay.CONTENDER, "fcc"]
        for row in rows:
            for column, cell in row.items():
                if column != "contender":
                    _number(cell)
        assert "with fcc's core kept awake (see below)" in issue["added TTFT p50 at c=1"]["this run"]
    else:
        assert "Not measured in this run: the proxy has no core of its own" in kept

    targets = {r["target"]: r for r in table(section(results, "Targets"))}
    assert targets["added TTFT p50 ≤ 1 ms at c=1"]["verdict"] in ("**met**", "**missed**")
    assert targets["`fcc serve` cold start ≤ 1 s"]["verdict"] in ("**met**", "**missed**")

    # The store section: latency and CPU per store against memory, per-token cost, the verdicts.
    store = section(results, "State store: cost against memory")
    latency, per_token, verdicts, admissions = tables(store)[:4]
    others = fccs[1:]
    for row in latency:
        assert int(row["n"]) == levels[int(row["c"])], row
        for column in ("added TTFT p50", "added TTFT p99", "fcc CPU ms/req"):
            _number(row[column])
        if row["store"] in others:
            for column in ("Δ TTFT p50 vs memory", "Δ TTFT p99 vs memory", "Δ CPU ms/req vs memory"):
                _number(row[column])
            low, high = (_number(x) for x in row["95% CI of Δ p50"].split(" to "))
            assert low <= high, row
    assert {(int(r["c"]), r["store"]) for r in latency} == {
        (c, name) for c in levels for name in ("fcc (memory)", *others)
    }
    if not redis_missing:
        assert all(_number(r["redis-server CPU ms/req"]) >= 0 for r in latency if r["store"] == stores.REDIS)
    assert [r["store"] for r in per_token] == ["fcc (memory)", *others]
    for row in per_token:
        assert _number(row["marginal µs/token"]) > 0, row
        if row["store"] in others:
            assert _number(row["ratio to memory"]) > 0, row
            assert _number(row["± (µs)"]) > 0, row
    judged = {r["backend"]: r for r in verdicts}
    for name in others:
        assert judged[name]["≤ 0.2 ms"] in ("**met**", "**missed**"), judged[name]
        assert judged[name]["no measurable per-token cost"] in ("**met**", "**missed**"), judged[name]
        _number(judged[name]["Δ TTFT p50 at c=1"].split(" ms")[0])
    # One admission in-process per store: p50 / p90 in µs for each scenario.
    assert [r["store"] for r in admissions] == ["memory", *(n.split("(")[1].rstrip(")") for n in others)]
    for row in admissions:
        for column, cell in row.items():
            if column != "store":
                p50, p90 = (_number(x) for x in cell.split(" (")[0].split(" / "))
                assert 0 < p50 <= p90, row
    if redis_missing:
        assert f"`{stores.REDIS}`: **skipped**: {redis_missing}." in store
        assert judged[stores.REDIS]["≤ 0.2 ms"] == "not measured"

    figures = {r["figure"]: r["value"] for r in table(section(results, "fcc process"))}
    cold = next(v for k, v in figures.items() if k.startswith("cold start"))
    assert _number(cold.split(" s ")[0]) > 0
    first = next(v for k, v in figures.items() if k.startswith("start → first POST /v1/messages answered"))
    assert _number(first.split(" s ")[0]) > 0, first
    floor = next(v for k, v in figures.items() if k.startswith("the same on the libraries alone"))
    assert _number(floor.split(" s ")[0]) > 0, floor  # bench/floor.py answered through the upstream
    assert "fcc's own start beyond it:" in floor and not floor.endswith(": - s"), floor
    check = next(v for k, v in figures.items() if k.startswith("`fcc check`"))
    assert _number(check.removesuffix(" s")) > 0
    assert any(k.startswith("`fcc check`") and "exit 0" in k for k in figures), figures

    micro = table(section(results, "Translators in-process"))
    assert len(micro) >= 5 and any("ten rules" in row["in-process benchmark"] for row in micro)
    for row in micro:
        assert _number(row["per item"].removesuffix(" µs")) > 0, row

    assert "No profile in this run: the `quick` run does not profile." in results
    assert "LiteLLM: not run" in results
    # Runs of different days are compared by the libraries that ran and the machine's speed.
    assert re.search(r"Python [\d.]+ \(uvicorn [\d.]+, .*httptools [\d.]+", results)
    speed = re.search(r"additions on one core \(ms, best of 5\): (\d+) before the run, (\d+) after", results)
    assert speed and int(speed[1]) > 0 and int(speed[2]) > 0, results
    assert spent < 120, f"the quick bench took {spent:.0f} s; CI wants it under a minute"


def test_the_start_floor_runs_none_of_fccs_code() -> None:
    """bench/floor.py is the start on the libraries alone: it may not import fcc (the quick run
    above proves it answers through the upstream)."""
    code = "import sys, bench.floor; print(sorted(m for m in sys.modules if m.split('.')[0] == 'fcc'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
