"""Provider health: which candidates can be tried now, and if not, when.

Pure state with an injectable clock, no I/O. Health is kept per candidate (provider/model):
failures in a rolling window open its circuit for a cool-down, then one trial request
(half-open) decides; an upstream's retry-after closes it for as long as it says (rate limits
are usually per model).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Clock = Callable[[], float]
State = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class _Circuit:
    failures: deque[float] = field(default_factory=deque)
    open_until: float = 0.0
    trial: bool = False  # a half-open trial request is in flight
    opened: int = 0  # consecutive openings, for a growing cool-down
    last_error: str | None = None


class Health:
    def __init__(
        self,
        *,
        window: float = 60.0,
        threshold: int = 3,
        cooldown: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._window = window
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def state(self, key: str) -> State:
        c = self._circuits.get(key)
        if c is None or c.open_until == 0.0:
            return "closed"
        return "open" if self._clock() < c.open_until else "half_open"

    def wait(self, key: str) -> float:
        """Seconds until `key` may be tried; 0 means now (closed, or a half-open trial)."""
        c = self._circuits.get(key)
        if c is None or c.open_until == 0.0:
            return 0.0
        left = c.open_until - self._clock()
        if left > 0:
            return left
        return 0.0 if not c.trial else self._cooldown  # one trial at a time

    def begin(self, key: str) -> None:
        c = self._circuits.get(key)
        if c is not None and self.state(key) == "half_open":
            c.trial = True

    def success(self, key: str) -> None:
        self._circuits.pop(key, None)

    def failure(self, key: str, error: str) -> None:
        now = self._clock()
        c = self._circuits.setdefault(key, _Circuit())
        c.last_error = error
        c.failures.append(now)
        while c.failures and c.failures[0] < now - self._window:
            c.failures.popleft()
        if c.trial or len(c.failures) >= self._threshold:
            # Each reopening waits longer, up to ten cool-downs.
            c.opened += 1
            c.open_until = now + self._cooldown * min(2 ** (c.opened - 1), 10)
            c.trial = False

    def block(self, key: str, seconds: float, error: str) -> None:
        """The upstream said when to come back (retry-after): skip `key` until then."""
        c = self._circuits.setdefault(key, _Circuit())
        c.last_error = error
        c.open_until = max(c.open_until, self._clock() + seconds)

    def snapshot(self) -> dict[str, dict[str, object]]:
        now = self._clock()
        out: dict[str, dict[str, object]] = {}
        for key, c in sorted(self._circuits.items()):
            out[key] = {
                "state": self.state(key),
                "recent_failures": sum(1 for t in c.failures if t >= now - self._window),
                "cooldown_left": round(max(c.open_until - now, 0.0), 1),
                "last_error": c.last_error,
            }
        return out
