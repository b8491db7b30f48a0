"""RESULTS.md's "Issue 16 targets" and "Several workers beside one process" from made-up
results (no load run): every cell comes from the measured data, and what was not measured says so."""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.plan import FULL, QUICK
from bench.run import Results
from bench.stats import Phase

REPO = Path(__file__).resolve().parents[1]
WORKERS = "fcc ×2 workers"  # noqa: RUF001


def _phase(name: str, c: int, ttft: float, *, wall: float = 1.0, tokens: int = 100, n: int = 20) -> Phase:
    # TTFTs spread over 2 ms: p50 = ttft + 1 ms, p99 = ttft + 1.98 ms.
    records = [(True, 0.0, ttft + i * 0.002 / (n - 1), ttft + 0.5, tokens) for i in range(n)]
    return Phase(name, c, tokens, records=records, wall=wall, cpu=0.2, rss_peak_kb=80 * 1024)


def _results(with_litellm: bool, with_workers: bool) -> Results:
    names = ["direct", "fcc", *([WORKERS] if with_workers else []), *(["litellm"] if with_litellm else [])]
    results = Results(FULL, True, "raw", contenders=names)
    for c in (1, 16, 64, 256):
        # direct's p50 = 51 ms; fcc adds 1 ms at c=1 and 10 ms elsewhere; LiteLLM 30x that.
        extra = 0.001 if c == 1 else 0.010
        results.phases += [_phase("direct", c, 0.050), _phase("fcc", c, 0.050 + extra, wall=c / 10)]
        if with_litellm:
            results.phases.append(_phase("litellm", c, 0.050 + 30 * extra))
        if with_workers and c in FULL.workers_levels:
            results.phases.append(_phase(WORKERS, c, 0.050 + extra / 2, wall=c / 20))
    results.fcc_long = _phase("fcc", 16, 0.06, tokens=FULL.long_tokens)
    results.fcc_long.cpu = 0.2 + 20 * 900 * 50e-6  # 50 µs per extra token
    results.fcc_rss_hwm_kb = 90 * 1024
    results.cold_start, results.first_answer = [0.30, 0.20, 0.40], [0.45, 0.42, 0.60]
    if with_workers:
        results.workers_name, results.workers_note = WORKERS, f"`{WORKERS}`: a note."
        results.workers_rss_hwm_kb = 180 * 1024
    else:
        results.workers_skipped = "`fcc serve --workers 2` did not start: boom"
    return results


def _sections(tmp_path: Path, results: Results) -> tuple[dict[str, list[str]], str]:
    report.write(results, tmp_path / "RESULTS.md", tmp_path / "latency.png", REPO)
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    issue = text.split("## Issue 16 targets\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in issue.splitlines():
        if line.startswith("| ") and not line.startswith("| figure"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].split(" (")[0]] = cells[1:]
    return rows, text


def test_every_target_row_comes_from_the_run(tmp_path: Path) -> None:
    rows, text = _sections(tmp_path, _results(with_litellm=True, with_workers=True))
    assert rows["added TTFT p50 at c=1"] == ["≤ 1.5 ms", "1.00 ms", "yes"]
    assert rows["added TTFT p99 at c=1"] == ["≤ 4 ms", "1.00 ms", "yes"]
    assert rows["fcc CPU per streamed token, marginal"] == ["≤ 60 µs", "50.0 µs", "yes"]
    # 20 answers of 100 tokens in c/10 s: 20,000 tokens/s at c=1, the best.
    assert rows["tokens/s one fcc process sustains"] == ["≥ 15,000", "20,000 at c=1", "yes"]
    assert rows["added TTFT p99 at c=64, one process"] == ["≤ 100 ms", "10.00 ms", "yes"]
    assert rows["fcc RSS at 256 streams"] == ["≤ 100 MB", "90.0 MB", "yes"]
    assert rows["`fcc serve` start → first request answered"] == [
        "≤ 0.5 s",
        "0.450 s (min 0.420); /health answers after 0.300 s (min 0.200)",
        "yes",
    ]
    litellm = rows["advantage over LiteLLM, added TTFT p50, at every concurrency"]
    assert litellm == ["≥ 20×", "c=1: 30.0×, c=16: 30.0×, c=64: 30.0×, c=256: 30.0×", "yes"]  # noqa: RUF001
    # 2,000 tokens in c/20 s: 2,500 tokens/s at c=16, the best; one process in c/10 s: 1,250.
    assert rows[f"tokens/s, {WORKERS}"] == [
        "beside one process",
        "2,500 at c=16; one process 1,250 at c=16 (× 2.00)",  # noqa: RUF001
        "-",
    ]
    assert rows[f"added TTFT p99 at c=64, {WORKERS}"] == [
        "beside one process",
        "5.0 ms; one process 10.0 ms",
        "-",
    ]
    beside = text.split("## Several workers beside one process\n", 1)[1].split("\n## ", 1)[0]
    assert "| 256 | one process (memory) | 78 |" in beside and f"| 256 | {WORKERS} | 156 |" in beside
    assert "Peak RSS (VmHWM) of its process tree over the load run: 180.0 MB." in beside
    first = next(line for line in text.splitlines() if line.startswith("| start → first POST"))
    assert first.endswith("| 0.450 s (min 0.420, max 0.600) |")


def test_the_header_gives_when_the_run_ended_not_when_it_was_rendered(tmp_path: Path) -> None:
    results = _results(with_litellm=False, with_workers=False)
    results.finished = "2026-01-02 03:04"
    _, text = _sections(tmp_path, results)
    assert text.splitlines()[2].startswith("Run `full` on 2026-01-02 03:04, ")


def test_a_missed_target_and_what_was_not_run(tmp_path: Path) -> None:
    results = _results(with_litellm=False, with_workers=False)
    results.first_answer = [0.9, 1.1]
    results.fcc_rss_hwm_kb = 120 * 1024
    rows, text = _sections(tmp_path, results)
    assert rows["`fcc serve` start → first request answered"][2] == "no"
    assert rows["fcc RSS at 256 streams"] == ["≤ 100 MB", "120.0 MB", "no"]
    assert rows["advantage over LiteLLM, added TTFT p50, at every concurrency"][1:] == [
        "n/a (LiteLLM not run)",
        "n/a",
    ]
    assert rows["several workers"][1:] == ["n/a (`fcc serve --workers 2` did not start: boom)", "-"]
    beside = text.split("## Several workers beside one process\n", 1)[1].split("\n## ", 1)[0]
    assert beside.strip() == "Not measured in this run: `fcc serve --workers 2` did not start: boom."


def test_the_quick_plan_says_what_it_does_not_measure(tmp_path: Path) -> None:
    results = Results(QUICK, True, "raw", contenders=["direct", "fcc"])
    results.phases = [_phase("direct", c, 0.05, tokens=QUICK.tokens) for c in (1, 16)]
    results.phases += [_phase("fcc", c, 0.055, tokens=QUICK.tokens) for c in (1, 16)]
    rows, _ = _sections(tmp_path, results)
    assert rows["added TTFT p99 at c=64, one process"][1:] == ["n/a (no c=64 in this run)", "n/a"]
    assert rows["fcc RSS at 256 streams"][1:] == ["n/a (no c=256 in this run)", "n/a"]
    assert rows["`fcc serve` start → first request answered"][1:] == ["-", "n/a"]
    assert rows["fcc CPU per streamed token, marginal"][1:] == ["- µs", "n/a"]
