"""Client-side limits per provider: requests per minute and concurrent streams, as the
catalog declares them, so fcc does not send what it knows will be refused. Pure state with an
injectable clock, no I/O."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from fcc.engine.catalog.providers import Limits
from fcc.engine.routing.health import Clock


@dataclass(slots=True)
class _Gate:
    limits: Limits
    started: deque[float] = field(default_factory=deque)
    active: int = 0


class RateLimits:
    """Per-provider requests per minute and concurrent streams, as the catalog declares them."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._gates: dict[str, _Gate] = {}

    def _gate(self, provider: str, limits: Limits) -> _Gate:
        gate = self._gates.get(provider)
        if gate is None or gate.limits != limits:
            gate = self._gates[provider] = (
                _Gate(limits) if gate is None else _Gate(limits, gate.started, gate.active)
            )
        return gate

    def wait(self, provider: str, limits: Limits) -> float:
        """Seconds until `provider` can take one more request (0: now)."""
        now = self._clock()
        gate = self._gate(provider, limits)
        while gate.started and gate.started[0] <= now - 60.0:
            gate.started.popleft()
        waits = [0.0]
        rpm = limits.requests_per_minute
        if rpm is not None and len(gate.started) >= rpm:
            waits.append(gate.started[len(gate.started) - rpm] + 60.0 - now)
        if limits.concurrent_streams is not None and gate.active >= limits.concurrent_streams:
            waits.append(0.25)  # a stream ends when it ends: look again soon
        return max(waits)

    def acquire(self, provider: str, limits: Limits) -> None:
        gate = self._gate(provider, limits)
        gate.started.append(self._clock())
        gate.active += 1

    def release(self, provider: str) -> None:
        gate = self._gates.get(provider)
        if gate is not None and gate.active > 0:
            gate.active -= 1

    def active(self, provider: str) -> int:
        gate = self._gates.get(provider)
        return gate.active if gate is not None else 0

    def snapshot(self) -> dict[str, dict[str, object]]:
        now = self._clock()
        out: dict[str, dict[str, object]] = {}
        for provider, gate in sorted(self._gates.items()):
            recent = sum(1 for t in gate.started if t > now - 60.0)
            out[provider] = {
                "active_streams": gate.active,
                "requests_last_minute": recent,
                "requests_per_minute": gate.limits.requests_per_minute,
                "concurrent_streams": gate.limits.concurrent_streams,
            }
        return out
