"""The state store in this process's memory: for tests, for a user who wants nothing on
disk, and as the stand-in while a shared store (Redis) is away. Nothing survives a
restart, and nothing is shared with another process."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from fcc.engine.state.admission import (
    HOUR,
    QUOTA_TTL,
    Admission,
    Check,
    CircuitPolicy,
    CircuitState,
    Lease,
    Scope,
    Usage,
    admit,
    usage_of,
)
from fcc.engine.state.records import RequestRecord
from fcc.engine.state.store import Row
from fcc.engine.state.tally import Increments, day_of, minute_of

RECENT = 500  # records kept in memory (the disk backends keep all, within retention)


class _View:
    """admission.View over this backend's dictionaries (one process: already atomic)."""

    def __init__(self, b: MemoryBackend) -> None:
        self.b = b

    def circuit(self, key: str) -> CircuitState | None:
        return self.b._circuits.get(key)

    def set_circuit(self, key: str, state: CircuitState) -> None:
        self.b._circuits[key] = state

    def window(self, key: str, since: float) -> int:
        times = self.b._windows[key]
        while times and times[0] <= since:
            times.popleft()
        return len(times)

    def newest(self, key: str, since: float, n: int) -> float:
        self.window(key, since)
        return self.b._windows[key][-n]

    def add_to_window(self, key: str, t: float) -> None:
        self.b._windows[key].append(t)

    def leases(self, key: str, now: float) -> int:
        held = self.b._leases[key]
        for lease, expires in list(held.items()):
            if expires <= now:
                del held[lease]
        return len(held)

    def add_lease(self, key: str, lease: str, expires: float) -> None:
        self.b._leases[key][lease] = expires

    def quota(self, key: str, buckets: list[str]) -> tuple[list[int], list[int]]:
        slots = [self.b._quota.get((key, b), (0, 0)) for b in buckets]
        return [r for r, _ in slots], [t for _, t in slots]

    def add_request(self, key: str, bucket: str, expires: float) -> None:
        r, t = self.b._quota.get((key, bucket), (0, 0))
        self.b._quota[(key, bucket)] = (r + 1, t)


class MemoryBackend:
    name = "memory"

    def __init__(self) -> None:
        self._circuits: dict[str, CircuitState] = {}
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._leases: dict[str, dict[str, float]] = defaultdict(dict)
        self._quota: dict[tuple[str, str], tuple[int, int]] = {}
        self._days: dict[tuple[str, str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._minutes: dict[tuple[str, str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._recent: deque[RequestRecord] = deque(maxlen=RECENT)
        self._last: dict[str, RequestRecord] = {}
        self._counters: dict[tuple[str, str], float] = defaultdict(float)
        self._kv: dict[str, dict[str, tuple[str, float]]] = defaultdict(dict)
        self._view = _View(self)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def admit(self, check: Check, lease_id: str, now: float, policy: CircuitPolicy) -> Admission:
        return admit(self._view, check, lease_id, now, policy)

    async def release(self, lease: Lease) -> None:
        for key in lease.keys:
            self._leases[key].pop(lease.id, None)

    async def refresh(self, leases: Iterable[Lease], expires: float) -> None:
        for lease in leases:
            for key in lease.keys:
                if lease.id in self._leases[key]:
                    self._leases[key][lease.id] = expires

    async def update_circuit(self, key: str, change: Callable[[CircuitState], CircuitState | None]) -> None:
        new = change(self._circuits.get(key, CircuitState()))
        if new is None:
            self._circuits.pop(key, None)
        else:
            self._circuits[key] = new

    async def circuits(self) -> dict[str, CircuitState]:
        return dict(self._circuits)

    async def usage_now(self, scopes: Iterable[Scope], now: float) -> list[Usage]:
        return [usage_of(self._view, scope, now) for scope in scopes]

    async def write(self, batch: Increments) -> None:
        for key, fields in batch.days.items():
            slot = self._days[key]
            for name, n in fields.items():
                slot[name] += n
        for key, seen in batch.last_seen.items():
            slot = self._days[key]
            slot["last_seen"] = max(slot.get("last_seen", 0.0), seen)
        for key, fields in batch.minutes.items():
            slot = self._minutes[key]
            for name, n in fields.items():
                slot[name] += n
        for ckey, amount in batch.counters.items():
            self._counters[ckey] += amount
        for (scope, bucket), tokens in batch.tokens.items():
            r, t = self._quota.get((scope, bucket), (0, 0))
            self._quota[(scope, bucket)] = (r, t + tokens)
        self._recent.extend(batch.records)
        for record in batch.records:
            sid = record.session
            if sid and (sid not in self._last or self._last[sid].time <= record.time):
                self._last[sid] = record

    async def days(self, first: str, last: str, dims: Iterable[str]) -> list[Row]:
        wanted = set(dims)
        return [
            Row(day, dim, key, dict(fields))
            for (day, dim, key), fields in self._days.items()
            if first <= day <= last and dim in wanted
        ]

    async def minutes(self, first: int, last: int) -> list[Row]:
        return [
            Row(minute, dim, key, dict(fields))
            for (minute, dim, key), fields in self._minutes.items()
            if first <= int(minute) <= last
        ]

    async def recent(self, limit: int) -> list[RequestRecord]:
        return list(reversed(self._recent))[:limit]

    async def counters(self) -> dict[tuple[str, str], float]:
        return dict(self._counters)

    async def last(self, session: str) -> RequestRecord | None:
        return self._last.get(session)

    async def prune(self, before: float, now: float) -> None:
        cutoff = day_of(before)
        for key in [k for k in self._days if k[0] < cutoff]:
            del self._days[key]
        for session in [s for s, r in self._last.items() if r.time < before]:
            del self._last[session]
        minute = minute_of(now) - 120
        for key in [k for k in self._minutes if int(k[0]) < minute]:
            del self._minutes[key]
        for stale in [k for k in self._quota if _stale_bucket(k[1], now)]:
            del self._quota[stale]

    async def put(self, ns: str, items: dict[str, str], ttl: float) -> None:
        expires = time.time() + ttl
        self._kv[ns].update({k: (v, expires) for k, v in items.items()})

    async def get(self, ns: str, keys: Iterable[str] | None = None) -> dict[str, str]:
        now = time.time()
        space = self._kv.get(ns, {})
        names = space.keys() if keys is None else keys
        return {k: space[k][0] for k in names if k in space and space[k][1] > now}


def _stale_bucket(bucket: str, now: float) -> bool:
    """Quota buckets (d:YYYY-MM-DD or h:EPOCH_HOUR) are kept QUOTA_TTL, whatever the retention."""
    if bucket.startswith("h:"):
        return int(bucket[2:]) * HOUR < now - QUOTA_TTL
    return bucket[2:] < day_of(now - QUOTA_TTL)
