"""bench/awake.py, c=1 with the proxy's core kept from idling: the spinner is a SCHED_IDLE busy
loop pinned to the proxy's core, running exactly while the "kept awake" batches run and gone
after; the two states alternate round by round; and RESULTS.md's section, from made-up results."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench import awake, procs
from bench.plan import QUICK
from bench.run import Contender, Results, keep_awake
from bench.stats import Phase
from tests.support.bench_results import phase, section

needs_idle = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux only: SCHED_IDLE")


def _spinners() -> list[int]:
    """This process's children that run the spin loop."""
    found = []
    for pid in procs.descendants(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # gone already
        if awake.SPIN.encode() in cmdline:
            found.append(pid)
    return found


@needs_idle
def test_the_spinner_is_an_idle_busy_loop_on_the_cores_asked_and_stops_after(tmp_path: Path) -> None:
    core = min(os.sched_getaffinity(0))
    with awake.spinning({core}, tmp_path / "spin.log") as pids:
        assert len(pids) == 1 and _spinners() == pids
        (pid,) = pids
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        assert os.sched_getaffinity(pid) == {core}
        before = procs.cpu_seconds(pid)
        deadline = time.monotonic() + 5  # an idle task may wait while the core is busy elsewhere
        while procs.cpu_seconds(pid) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert procs.cpu_seconds(pid) > before, "the spinner does not spin"
    assert _spinners() == []


@needs_idle
def test_the_two_states_alternate_and_only_the_awake_batches_have_a_spinner(tmp_path: Path) -> None:
    seen: list[tuple[str, Phase, bool]] = []  # (contender, the phase it ran into, a spinner ran)
    core = min(os.sched_getaffinity(0))

    def batch(name: str, phase: Phase) -> None:
        seen.append((name, phase, bool(_spinners())))
        phase.records.append((True, 0.0, 0.05, 0.1, 5))

    out = awake.run(batch, [("direct", "direct"), ("fcc", "fcc")], {core}, 3, 5, tmp_path / "s.log")
    kept = {id(p) for p in out.awake.values()}
    order = [(name, "awake" if id(phase) in kept else "idle", spun) for name, phase, spun in seen]
    assert order == [
        ("direct", "idle", False),
        ("fcc", "idle", False),
        ("direct", "awake", True),
        ("fcc", "awake", True),
        # the next round: the awake state first, the contenders rotated
        ("fcc", "awake", True),
        ("direct", "awake", True),
        ("fcc", "idle", False),
        ("direct", "idle", False),
        ("direct", "idle", False),
        ("fcc", "idle", False),
        ("direct", "awake", True),
        ("fcc", "awake", True),
    ]
    assert all(name == phase.contender for name, phase, _ in seen)
    assert all(len(p.records) == 3 for p in (*out.idle.values(), *out.awake.values()))
    assert _spinners() == []


def test_without_a_core_of_its_own_the_phase_says_why_it_did_not_run() -> None:
    assert "no core of its own" in awake.unavailable(None)
    assert awake.unavailable({0}) == ("" if hasattr(os, "SCHED_IDLE") else "this platform has no SCHED_IDLE")


def _phase(name: str, ttft: float) -> Phase:
    return phase(name, 1, ttft)


def _section(tmp_path: Path, results: Results) -> str:
    return section(tmp_path, results, "One stream with the proxy's core kept awake")


def test_the_section_gives_what_the_idle_core_costs_each_contender(tmp_path: Path) -> None:
    results = Results(QUICK, True, "raw", contenders=["direct", "relay", "fcc"])
    results.phases = [_phase(n, 0.05) for n in ("direct", "relay", "fcc")]
    found = awake.Awake(cores=[0])
    # idle: direct 50 ms, relay +0.4, fcc +1.6; awake: direct 50.1, relay +0.2, fcc +1.3
    for name, idle, kept in (("direct", 0.0, 0.0001), ("relay", 0.0004, 0.0003), ("fcc", 0.0016, 0.0014)):
        found.idle[name] = _phase(name, 0.05 + idle)
        found.awake[name] = _phase(name, 0.05 + kept)
    results.core_awake = found
    section = _section(tmp_path, results)
    assert "pinned to core 0" in section
    assert f"20 requests per contender and state, {QUICK.tokens}-token answers" in section
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()]
    rows = [r for r in rows if r[0] in ("relay", "fcc")]
    assert rows == [
        ["relay", "0.40", "0.20", "0.20", "0.40", "0.20"],
        ["fcc", "1.60", "1.30", "0.30", "1.60", "1.30"],
    ]
    targets = (tmp_path / "RESULTS.md").read_text(encoding="utf-8").split("## Issue 16 targets", 1)[1]
    assert (
        "| added TTFT p50 at c=1 | ≤ 1.5 ms | 0.00 ms; 1.30 with fcc's core kept awake (see below) |"
        in targets
    )


def test_results_without_the_phase_say_so(tmp_path: Path) -> None:
    results = Results(QUICK, True, "raw", contenders=["direct", "fcc"])
    results.phases = [_phase(n, 0.05) for n in ("direct", "fcc")]
    assert _section(tmp_path, results).strip() == (
        "Not measured in this run (these results are from before bench/awake.py)."
    )
    results.core_awake = awake.Awake(problem="the proxy has no core of its own")
    assert (
        _section(tmp_path, results).strip() == "Not measured in this run: the proxy has no core of its own."
    )


class _Client:
    """The load client's batch, answered at once: 50 ms to the first token."""

    def batch(self, contender: object, concurrency: int, requests: int, tokens: int) -> dict[str, object]:
        return {"wall": 0.1, "records": [[True, 0.0, 0.05, 0.1, tokens]] * requests}


def test_a_platform_that_refuses_sched_idle_ends_the_phase_not_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "SCHED_IDLE", 5, raising=False)
    monkeypatch.setattr(os, "sched_setscheduler", refused)
    direct = Contender("direct", "http://127.0.0.1:9/", "openai", None)
    core = min(os.sched_getaffinity(0))
    found = keep_awake(_Client(), [direct], QUICK, {core}, tmp_path)  # type: ignore[arg-type]
    assert found.problem == "the spinner could not be set up ([Errno 1] Operation not permitted)"
    assert _spinners() == []  # the one started was stopped
