"""`python -m bench --stores`: the parts that need no load run (the redis-server it starts, the
sqlite contender without redis, the "State store: cost against memory" section)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from bench import report, stores
from bench.plan import QUICK
from bench.run import Results, store_contenders
from bench.stats import Phase
from bench.workload import BENCH_LIMITS, fcc_config

REPO = Path(__file__).resolve().parents[1]


def test_every_store_config_declares_its_backend_and_the_limits(tmp_path: Path) -> None:
    from fcc.engine.catalog.config import load_settings

    for state in (
        {"backend": "memory"},
        {"backend": "sqlite", "path": str(tmp_path / "a b.db")},
        {"backend": "redis", "url": "redis://127.0.0.1:6390/0"},
    ):
        config = tmp_path / "fcc.yaml"
        config.write_text(fcc_config(9, 100, state, BENCH_LIMITS), encoding="utf-8")
        settings = load_settings(config)
        assert settings.state.backend == state["backend"]
        limits = settings.providers["bench"].limits
        assert (limits.requests_per_minute, limits.concurrent_streams) == (1_000_000, 100_000)
    assert settings.state.url == "redis://127.0.0.1:6390/0"
    assert "state:" not in fcc_config(9, 100) and "limits:" not in fcc_config(9, 100)


def test_without_redis_server_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stores.shutil, "which", lambda name: None)
    assert stores.redis_missing() == "redis-server is not installed (no `redis-server` on PATH)"


@pytest.mark.skipif(stores.redis_missing() is not None, reason="redis-server is not installed")
def test_the_redis_server_answers_and_is_stopped_by_pid(tmp_path: Path) -> None:
    with stores.redis_server(tmp_path, None) as server:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        assert server.url.startswith("redis://127.0.0.1:") and stores.ping(port)
    assert server.proc.poll() is not None, "stopped when the run ends"
    assert not stores.ping(port, timeout=0.2)
    assert not list(tmp_path.glob("*.rdb")), "nothing saved"


def test_without_redis_the_sqlite_store_still_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stores.shutil, "which", lambda name: None)
    results = Results(QUICK, False, "raw")
    home = tmp_path / "home"
    home.mkdir()
    env = {"XDG_CONFIG_HOME": str(home), "XDG_STATE_HOME": str(home / "state")}
    with contextlib.ExitStack() as stack:
        started, url = store_contenders(stack, results, home, tmp_path, 9, None, env)
        assert url is None
        assert [c.name for c in started] == [stores.SQLITE] and started[0].pid
    assert results.stores == {stores.SQLITE: "sqlite"}
    assert results.store_skipped == {
        stores.REDIS: "redis-server is not installed (no `redis-server` on PATH)"
    }
    assert (home / "fcc-bench.db").exists(), "the sqlite store is a file in the run's temporary folder"
    assert 'backend: "sqlite"' in (tmp_path / "fcc-sqlite.yaml").read_text(encoding="utf-8")


def _phase(name: str, c: int, ttft: float, cpu: float, tokens: int = QUICK.tokens, n: int = 20) -> Phase:
    records = [(True, i * 0.1, ttft + (i % 5) * 1e-5, ttft + 0.25, tokens) for i in range(n)]
    return Phase(name, c, tokens, records=records, wall=1.0, cpu=cpu, rss_peak_kb=60 * 1024)


def _results(sqlite_ttft: float, sqlite_long_cpu: float) -> Results:
    results = Results(QUICK, True, "raw", contenders=["direct", "fcc", stores.SQLITE])
    results.stores_requested = True
    results.stores = {"fcc": "memory", stores.SQLITE: "sqlite"}
    results.store_skipped = {stores.REDIS: "redis-server is not installed (no `redis-server` on PATH)"}
    for c in (1, 16):
        results.phases += [
            _phase("direct", c, 0.050, 0),
            _phase("fcc", c, 0.054, 0.30),
            _phase(stores.SQLITE, c, sqlite_ttft, 0.32),
        ]
    results.fcc_long = _phase("fcc", 16, 0.054, 0.60, tokens=QUICK.long_tokens)
    results.store_long = {stores.SQLITE: _phase(stores.SQLITE, 16, 0.054, sqlite_long_cpu, QUICK.long_tokens)}
    results.long_rounds = {"fcc": [(0.60, 20)], stores.SQLITE: [(sqlite_long_cpu, 20)]}
    return results


def _store_rows(tmp_path: Path, results: Results) -> tuple[str, dict[str, str]]:
    report.write(results, tmp_path / "RESULTS.md", tmp_path / "latency.png", REPO)
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    section = text.split("## State store: cost against memory\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines() if line.startswith("| ")}
    return section, rows


def test_the_store_section_compares_with_memory_and_names_the_skipped_one(tmp_path: Path) -> None:
    # 0.1 ms more TTFT, and the same CPU per token (long minus short per request, per extra token).
    section, rows = _store_rows(tmp_path, _results(0.0541, 0.62))
    assert "`fcc (redis)`: **skipped**: redis-server is not installed (no `redis-server` on PATH)." in section
    lines = [line for line in section.splitlines() if line.startswith(f"| 1 | {stores.SQLITE} |")]
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[3:6] == ["4.10", "4.10", "0.10"], cells  # added p50, added p99, Δ p50 vs memory
    assert cells[8:10] == ["16.00", "1.00"], cells  # fcc CPU ms/req and Δ vs memory
    verdict = [line for line in section.splitlines() if line.startswith(f"| {stores.SQLITE} | 0.10 ms")]
    assert verdict and "| **met** |" in verdict[0] and verdict[0].endswith("| **met** |"), verdict
    assert f"| {stores.REDIS} | skipped | not measured | skipped | not measured |" in section
    assert rows["fcc (memory)"].split(" | ")[1] == "100.0"  # (0.030 - 0.015 s) ÷ 150 tokens


def test_the_in_process_admission_table_and_its_problem(tmp_path: Path) -> None:
    results = _results(0.0541, 0.62)
    results.store_micro = [
        {"store": store, "scenario": scenario, "n": 30, "p50_us": p50, "p90_us": p50 * 2}
        for store, base in (("memory", 20.0), ("sqlite", 300.0))
        for scenario, p50 in (("alone", base), ("right after a request ended", base * 3))
    ]
    section, _ = _store_rows(tmp_path, results)
    assert "| store | alone | right after a request ended |" in section
    assert "| sqlite | 300 / 600 (Δ +280) | 900 / 1,800 (Δ +840) |" in section
    results.store_micro, results.store_micro_problem = [], "exited with 1: ImportError: no StateService"
    section, _ = _store_rows(tmp_path, results)
    assert "could not be measured: exited with 1: ImportError: no StateService." in section


def test_a_store_over_the_bar_is_missed(tmp_path: Path) -> None:
    section, _ = _store_rows(tmp_path, _results(0.0545, 0.90))  # +0.5 ms, +100 µs per token
    verdict = next(line for line in section.splitlines() if line.startswith(f"| {stores.SQLITE} | 0.50 ms"))
    assert verdict.count("**missed**") == 2, verdict


def test_a_run_without_stores_says_so(tmp_path: Path) -> None:
    results = Results(QUICK, True, "raw", contenders=["direct", "fcc"])
    results.phases = [_phase("direct", 1, 0.05, 0), _phase("fcc", 1, 0.055, 0.3)]
    section, _ = _store_rows(tmp_path, results)
    assert section.strip().startswith("Not measured in this run: `--stores`")
