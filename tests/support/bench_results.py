"""Made-up bench results for the tests of RESULTS.md's sections."""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.plan import QUICK
from bench.run import Results
from bench.stats import Phase

REPO = Path(__file__).resolve().parents[2]


def phase(name: str, c: int, ttft: float, cpu: float | None = None) -> Phase:
    """20 good records whose TTFTs spread over 2 ms: p50 = ttft + 1 ms, p99 = ttft + 1.98 ms."""
    records = [(True, 0.0, ttft + i * 0.002 / 19, ttft + 0.5, QUICK.tokens) for i in range(20)]
    return Phase(name, c, QUICK.tokens, records=records, wall=1.0, cpu=cpu, rss_peak_kb=20 * 1024)


def section(tmp_path: Path, results: Results, heading: str) -> str:
    """RESULTS.md written from `results` into tmp_path: the text under `## heading`."""
    report.write(results, tmp_path / "RESULTS.md", tmp_path / "latency.png", REPO)
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
