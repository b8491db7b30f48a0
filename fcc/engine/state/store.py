"""The state store's interface: one Backend protocol, three implementations (memory.py,
sqlite.py, redis.py), chosen by config.yaml's `state:`.

Everything fcc must remember across restarts, or share between workers and machines, goes
through here: request records and their aggregates, rate-limit windows, concurrency
leases, daily quotas, circuits, thought signatures and doctor results. Records, aggregates
and counters are written in batches off the streaming path (service.py); admission is one
atomic call per attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import msgspec

from fcc.engine.errors import FccError
from fcc.engine.state.admission import Admission, Check, CircuitPolicy, CircuitState, Lease, Scope, Usage
from fcc.engine.state.records import RequestRecord
from fcc.engine.state.tally import Increments

Fields = dict[str, float]


class StoreError(FccError):
    """The store cannot be opened or reached: the message says what to fix."""


class StoreUnavailable(StoreError):
    """A shared store went away while serving (Redis): the caller may go on without it."""


class Row(msgspec.Struct, frozen=True):
    bucket: str  # a day (YYYY-MM-DD) or an epoch minute
    dim: str
    key: str
    fields: Fields


class Backend(Protocol):
    name: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # admission: one atomic step per attempt
    async def admit(self, check: Check, lease_id: str, now: float, policy: CircuitPolicy) -> Admission: ...
    async def release(self, lease: Lease) -> None: ...
    async def refresh(self, leases: Iterable[Lease], expires: float) -> None: ...
    async def update_circuit(
        self, key: str, change: Callable[[CircuitState], CircuitState | None]
    ) -> None: ...
    async def circuits(self) -> dict[str, CircuitState]: ...
    async def usage_now(self, scopes: Iterable[Scope], now: float) -> list[Usage]: ...

    # records, aggregates, counters: written in batches
    async def write(self, batch: Increments) -> None: ...
    async def days(self, first: str, last: str, dims: Iterable[str]) -> list[Row]: ...
    async def minutes(self, first: int, last: int) -> list[Row]: ...  # minute buckets, inclusive
    async def recent(self, limit: int) -> list[RequestRecord]: ...
    async def last(self, session: str) -> RequestRecord | None: ...  # a session's latest request
    async def counters(self) -> dict[tuple[str, str], float]: ...
    async def prune(self, before: float, now: float) -> None: ...  # records before `before`

    # small values that must outlive the process: thought signatures, doctor results
    async def put(self, ns: str, items: dict[str, str], ttl: float) -> None: ...
    async def get(self, ns: str, keys: Iterable[str] | None = None) -> dict[str, str]: ...
