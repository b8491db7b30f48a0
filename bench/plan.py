"""What a run does: the full run and the --quick smoke run differ only here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Level:
    concurrency: int
    rounds: int  # interleaved rounds; each contender runs one batch per round
    per_worker: int  # requests each of the `concurrency` workers sends per batch

    @property
    def per_contender(self) -> int:
        return self.concurrency * self.per_worker * self.rounds


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    levels: tuple[Level, ...]
    tokens: int = 100  # streamed tokens per answer
    long_tokens: int = 1000  # fcc only: long answers, for the marginal CPU per token
    long_rounds: int = 6  # interleaved rounds of long answers, every fcc build one batch per round
    long_requests: int = 16  # long answers per build and round, at c=16 (one wave)
    store_reps: int = 200  # --stores: admissions per store and scenario in bench/store_micro.py
    ttft_ms: float = 50.0  # the upstream's time to first token
    interval_ms: float = 5.0  # the upstream's time between tokens (200 tokens/s per stream)
    cold_starts: int = 5
    check_runs: int = 3
    micro_budget: float = 1.0  # seconds per micro-benchmark
    profile_seconds: int = 8  # py-spy on fcc at the profile concurrency (0: off)
    profile_concurrency: int = 64
    # `fcc serve --workers N` (on a shared sqlite store) as one more contender, at these levels only
    workers: int = 2
    workers_levels: tuple[int, ...] = (16, 64, 256)
    # c=1 again, with and without the proxy's core kept from idling (bench/awake.py): rounds,
    # requests per contender, state and round (0 rounds: not run). Its answers are short: the
    # phase times the first token only, so 150 requests take about the time 36 long ones did.
    awake: Level = Level(1, 3, 50)
    awake_tokens: int = 10


FULL = Plan(
    name="full",
    # Sized to finish in about 8 minutes on 2 cores; LiteLLM at 256 streams dominates.
    levels=(Level(1, 3, 16), Level(16, 3, 2), Level(64, 2, 1), Level(256, 1, 1)),
)
QUICK = Plan(
    name="quick",
    levels=(Level(1, 2, 5), Level(16, 2, 1)),
    tokens=50,
    long_tokens=200,
    long_rounds=2,
    store_reps=30,
    cold_starts=2,
    check_runs=1,
    micro_budget=0.2,
    profile_seconds=0,
    awake=Level(1, 1, 3),
    workers_levels=(16,),  # one level: the code path runs in CI, at the cost of one batch or two
)
