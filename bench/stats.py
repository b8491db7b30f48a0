"""Per-request records → the figures RESULTS.md reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

Record = tuple[bool, float, float, float, int]  # ok, start, ttft, total, tokens (see client.py)
T = TypeVar("T")


def rotated(items: Sequence[T], r: int) -> list[T]:
    """`items` in round `r`'s order: every round starts one further along, so the machine's
    drift lands on each in turn instead of on whichever always runs last."""
    shift = r % len(items)
    return [*items[shift:], *items[:shift]]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Phase:
    """Everything one contender did at one concurrency, summed over its interleaved rounds."""

    contender: str
    concurrency: int
    expected_tokens: int
    records: list[Record] = field(default_factory=list)
    wall: float = 0.0  # seconds spent in measured batches
    cpu: float | None = None  # proxy CPU seconds over the measured batches
    rss_peak_kb: int | None = None
    side_cpu: float | None = None  # CPU seconds of its helper (redis-server) over the same batches

    @property
    def good(self) -> list[Record]:
        return [r for r in self.records if r[0] and r[4] == self.expected_tokens and r[2] >= 0]

    @property
    def failed(self) -> int:
        return len(self.records) - len(self.good)

    def ttft(self, q: float) -> float:
        return percentile([r[2] for r in self.good], q) * 1000

    def total(self, q: float) -> float:
        return percentile([r[3] for r in self.good], q) * 1000

    @property
    def tokens(self) -> int:
        return sum(r[4] for r in self.records)

    @property
    def rps(self) -> float:
        return len(self.good) / self.wall if self.wall else float("nan")

    @property
    def tps(self) -> float:
        return self.tokens / self.wall if self.wall else float("nan")

    def cpu_per_request_ms(self) -> float | None:
        return None if self.cpu is None or not self.records else self.cpu / len(self.records) * 1000

    def cpu_per_ktok_ms(self) -> float | None:
        return None if self.cpu is None or not self.tokens else self.cpu / self.tokens * 1e6
