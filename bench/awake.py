"""One stream, with the proxy's core kept from going idle: what the machine's idle state costs.

At one stream the proxy's core is idle between a request's steps (the upstream thinks for
50 ms, and the next request comes after the answer). Waking an idle core is the machine's
cost, not the proxy's: on this VM a halted vCPU must be rescheduled by the host, and its caches
have meanwhile served whatever else ran there. To measure that cost, the same c=1 batches run
twice per round: once as in the load phases, once with a spinner on the proxy's core. The
spinner is a busy loop under SCHED_IDLE, the policy Linux runs only when nothing else on the
core wants it: the proxy preempts it the moment it wakes, and the core never halts.
The difference between the two, per contender, is what the idle core adds to each request.
The spinner is a measuring aid only; no proxy should burn a core to save it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench import procs
from bench.stats import Phase, rotated

SPIN = 'print("spinning", flush=True)\nwhile True: pass'  # says so once it is in the loop
C = TypeVar("C")


@dataclass
class Awake:
    """Per contender: its c=1 phase as usual (`idle`) and with its core kept awake (`awake`),
    interleaved round by round. `problem` says why the phase did not run ("" if it did)."""

    idle: dict[str, Phase] = field(default_factory=dict)
    awake: dict[str, Phase] = field(default_factory=dict)
    cores: list[int] = field(default_factory=list)
    problem: str = ""


def unavailable(cores: set[int] | None) -> str:
    """Why the phase cannot run here ("" if it can)."""
    if not cores:
        return "the proxy has no core of its own (fewer than two cores): nothing to keep awake"
    if not hasattr(os, "SCHED_IDLE"):
        return "this platform has no SCHED_IDLE"
    return ""


@contextlib.contextmanager
def spinning(cores: set[int], log: Path) -> Iterator[list[int]]:
    """A SCHED_IDLE busy loop pinned to each of `cores`, until the block ends; their pids."""
    spinners: list[subprocess.Popen[str]] = []
    try:
        for core in sorted(cores):
            proc = procs.spawn([sys.executable, "-c", SPIN], log, cores={core}, stdout=subprocess.PIPE)
            spinners.append(proc)
            os.sched_setscheduler(proc.pid, os.SCHED_IDLE, os.sched_param(0))
        for proc in spinners:  # measure only once every core is kept awake, not while Python starts
            assert proc.stdout is not None
            if proc.stdout.readline() != "spinning\n":
                raise OSError(f"the spinner on core(s) {sorted(cores)} exited before it spun (see {log})")
        yield [p.pid for p in spinners]
    finally:
        for proc in spinners:
            procs.stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()


def run(
    measured: Callable[[C, Phase], None],
    contenders: list[tuple[str, C]],
    cores: set[int],
    rounds: int,
    tokens: int,
    log: Path,
) -> Awake:
    """`rounds` rounds of one c=1 batch per contender and state (`measured` runs it into the
    phase), the state that goes first alternating round by round, the contenders rotating as
    in the load phases."""
    out = Awake(cores=sorted(cores))
    for name, _ in contenders:
        out.idle[name] = Phase(name, 1, tokens)
        out.awake[name] = Phase(name, 1, tokens)
    for r in range(rounds):
        order = rotated(contenders, r)
        for phases, spin in rotated([(out.idle, False), (out.awake, True)], r):
            with contextlib.ExitStack() as stack:
                if spin:
                    stack.enter_context(spinning(cores, log))
                for name, contender in order:
                    measured(contender, phases[name])
        print(f"  c=1, core kept awake or not: round {r + 1}/{rounds} done", flush=True)
    return out
