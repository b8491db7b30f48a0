"""The running server's use of its store: admission per attempt, circuit changes, records
written in batches off the streaming path, and what the dashboard, /health, /metrics and
fcc usage read back.

A finished request's record is queued in memory (no await) and a flusher task writes the
queue in one transaction as soon as the previous write is done: one write per request when
idle, many per write under load. If the store fails (Redis away, a full disk), requests are
never failed for it: admission falls back to this process's own limits, records wait in a
bounded queue, a warning is logged and shown on the dashboard, and everything returns to the
shared store once it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import msgspec

from fcc.engine.catalog.providers import Provider
from fcc.engine.ids import hex_id
from fcc.engine.state.admission import (
    LEASE_TTL,
    Admission,
    Check,
    CircuitPolicy,
    CircuitState,
    Lease,
    Scope,
    Usage,
    blocked,
    buckets,
    check_for,
    failed,
)
from fcc.engine.state.memory import MemoryBackend
from fcc.engine.state.records import JsonLines, RequestRecord
from fcc.engine.state.store import Backend, Row, StoreError
from fcc.engine.state.tally import Increments, add, day_of, minute_of, quota_tokens

T = TypeVar("T")
log = logging.getLogger("fcc.state")
MAX_QUEUED = 20_000  # records kept while the store is away; older ones are dropped (and counted)
RECOVERY_EVERY = 2.0
REFRESH_EVERY = 300.0
PRUNE_EVERY = 3600.0


class Health(msgspec.Struct, frozen=True):
    backend: str
    degraded: bool
    message: str | None
    dropped: int


class StateService:
    def __init__(
        self,
        backend: Backend,
        providers: Mapping[str, Provider],
        *,
        retention_days: int = 30,
        policy: CircuitPolicy | None = None,
        clock: Callable[[], float] = time.time,
        request_log: JsonLines | None = None,
    ) -> None:
        self.backend = backend
        self.providers = providers
        self.policy = policy or CircuitPolicy()
        self.retention = retention_days * 86_400
        self.clock = clock
        self.started = clock()
        self._local = MemoryBackend()  # limits and circuits while the shared store is away
        self._degraded: str | None = None
        self._pending = Increments()
        self._dropped = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._leases: dict[str, Lease] = {}
        self._failing: set[str] = set()  # candidates this process saw fail (their circuit may exist)
        self._file = request_log
        self._unlogged: list[RequestRecord] = []  # queued for the request log, not yet written
        self._closing = False
        self._flushing: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Opens the store (StoreError says what to fix) and starts the background work."""
        await self.backend.open()
        self._flushing = asyncio.create_task(self._flusher())
        self._tasks += [asyncio.create_task(self._refresher()), asyncio.create_task(self._pruner())]

    async def stop(self) -> None:
        """Writes what is queued, then closes the store."""
        self._closing = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        if self._flushing is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._flushing, timeout=10)
        await self._flush_now()
        with contextlib.suppress(Exception):
            await self.backend.close()

    def health(self) -> Health:
        return Health(self.backend.name, self._degraded is not None, self._degraded, self._dropped)

    # -- admission -------------------------------------------------------------------------

    def check_for(self, provider: Provider, model: str) -> Check:
        info = provider.model(model)
        return check_for(provider.id, model, provider.limits, info.limits if info is not None else None)

    async def admit(self, provider: Provider, model: str) -> Admission:
        check = self.check_for(provider, model)
        lease_id = hex_id("", 8)
        now = self.clock()
        if self._degraded is None:
            try:
                admission = await self.backend.admit(check, lease_id, now, self.policy)
            except StoreError as exc:
                self._go_local(exc)
            else:
                if admission.lease is not None and admission.lease.keys:
                    self._leases[lease_id] = admission.lease
                return admission
        admission = await self._local.admit(check, lease_id, now, self.policy)
        if admission.lease is not None:
            admission = Admission(
                0.0, None, Lease(admission.lease.keys, lease_id, admission.lease.trial, True)
            )
        return admission

    async def release(self, lease: Lease | None) -> None:
        if lease is None:
            return
        self._leases.pop(lease.id, None)
        if lease.local:
            await self._local.release(lease)
            return
        try:
            await self.backend.release(lease)
        except StoreError as exc:
            self._go_local(exc)  # the lease expires on its own (LEASE_TTL)

    async def failure(self, label: str, error: str) -> None:
        self._failing.add(label)
        await self._circuit(label, lambda s: failed(s, self.clock(), error, self.policy))

    async def block(self, label: str, seconds: float, error: str) -> None:
        self._failing.add(label)
        await self._circuit(label, lambda s: blocked(s, self.clock(), seconds, error))

    def success(self, label: str, lease: Lease | None) -> None:
        """A candidate answered: its circuit (if this process knows of one) closes. Off the
        path of the first token: the write runs as a task of its own."""
        if label in self._failing or (lease is not None and lease.trial):
            self._failing.discard(label)
            task = asyncio.create_task(self._circuit(label, lambda s: None))
            self._tasks.append(task)
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def _circuit(self, label: str, change: Callable[[CircuitState], CircuitState | None]) -> None:
        if self._degraded is None:
            try:
                await self.backend.update_circuit(label, change)
                return
            except StoreError as exc:
                self._go_local(exc)
        await self._local.update_circuit(label, change)

    async def circuits(self) -> dict[str, dict[str, object]]:
        now = self.clock()
        states = await self._read(self.backend.circuits, self._local.circuits)
        return {k: v.wire(now, self.policy) for k, v in sorted(states.items())}

    def scopes(self) -> list[Scope]:
        out = []
        for p in self.providers.values():
            if p.limits.any:
                out.append(Scope(p.id, p.limits))
            for m in p.models:
                if m.limits is not None and m.limits.any:
                    out.append(Scope(f"{p.id}/{m.id}", m.limits))
        return out

    async def usage_now(self) -> list[Usage]:
        scopes, now = self.scopes(), self.clock()
        return await self._read(
            lambda: self.backend.usage_now(scopes, now), lambda: self._local.usage_now(scopes, now)
        )

    # -- records ---------------------------------------------------------------------------

    def add(self, record: RequestRecord) -> None:
        """Queue a finished request's record: no I/O here, the flusher writes it."""
        add(self._pending, record)
        if self._file is not None:
            self._unlogged.append(record)
        quota_tokens(self._pending, self._token_scopes(record), record)
        if len(self._pending.records) > MAX_QUEUED:
            self._pending.records.pop(0)
            self._dropped += 1
        self._wake.set()

    def _token_scopes(self, r: RequestRecord) -> list[tuple[str, str]]:
        source = r.source
        if r.probe or not source or "/" not in source:
            return []
        pid, model = source.split("/", 1)
        provider = self.providers.get(pid)
        if provider is None:
            return []
        info = provider.model(model)
        out = []
        for key, limits in ((pid, provider.limits), (source, info.limits if info else None)):
            if limits is not None and limits.tokens_per_day is not None:
                out.append((key, buckets(limits.day_reset, r.time)[-1]))
        return out

    async def _flusher(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self._flush_now()

    async def _flush_now(self) -> None:
        if not self._pending:
            return
        if self._file is not None:
            # Each record once, whatever becomes of its batch: one the store cannot take now
            # is written to the store later, not to the log again.
            unlogged, self._unlogged = self._unlogged, []
            for r in unlogged:
                self._file.write(r.wire())
        if self._degraded is not None:
            return  # the store is away: the batch waits; _recover wakes the flusher
        batch, self._pending = self._pending, Increments()
        try:
            await self.backend.write(batch)
        except StoreError as exc:
            self._go_local(exc)
            self._requeue(batch)
        except Exception:
            # Not the store being away but a write it refused: keep serving, say so, drop it.
            log.exception("state store: could not write %d records; they are dropped", len(batch.records))
            self._dropped += len(batch.records)

    def _requeue(self, batch: Increments) -> None:
        # Put the unwritten batch back in front of what came since (both are sums).
        later, self._pending = self._pending, batch
        for r in later.records:
            add(self._pending, r)
            quota_tokens(self._pending, self._token_scopes(r), r)
        overflow = len(self._pending.records) - MAX_QUEUED
        if overflow > 0:
            del self._pending.records[:overflow]
            self._dropped += overflow

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            leases = list(self._leases.values())  # only the shared store's are kept there
            if leases and self._degraded is None:
                with contextlib.suppress(StoreError):
                    await self.backend.refresh(leases, self.clock() + LEASE_TTL)

    async def _pruner(self) -> None:
        while True:
            now = self.clock()
            with contextlib.suppress(StoreError):
                await self.backend.prune(now - self.retention, now)
            await self._local.prune(now - self.retention, now)
            await asyncio.sleep(PRUNE_EVERY)

    # -- the store away and back --------------------------------------------------------------

    def _go_local(self, exc: Exception) -> None:
        if self._degraded is not None:
            return
        self._degraded = f"{exc}; limits and circuits now hold per process until it answers again"
        log.warning("state store: %s", self._degraded)
        task = asyncio.create_task(self._recover())
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    async def _recover(self) -> None:
        while not self._closing:
            await asyncio.sleep(RECOVERY_EVERY)
            try:
                await self.backend.circuits()
            except StoreError:
                continue
            self._degraded = None
            log.warning("state store: %s answers again; back to shared limits", self.backend.name)
            self._wake.set()
            return

    async def _read(self, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        if self._degraded is None:
            try:
                return await shared()
            except StoreError as exc:
                self._go_local(exc)
        return await local()

    # -- small values ----------------------------------------------------------------------

    def keep(self, ns: str, items: dict[str, str], ttl: float) -> None:
        """put(), as a task of its own: nothing on the streaming path waits for it."""
        task = asyncio.create_task(self.put(ns, items, ttl))
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    async def put(self, ns: str, items: dict[str, str], ttl: float) -> None:
        try:
            await self.backend.put(ns, items, ttl)
        except StoreError as exc:
            self._go_local(exc)
            await self._local.put(ns, items, ttl)

    async def get(self, ns: str, keys: list[str] | None = None) -> dict[str, str]:
        return await self._read(lambda: self.backend.get(ns, keys), lambda: self._local.get(ns, keys))

    def today(self) -> str:
        return day_of(self.clock())

    # -- what the dashboard, /metrics and fcc usage read -------------------------------------

    async def days(self, first: str, last: str, dims: list[str]) -> list[Row]:
        return await self._read(
            lambda: self.backend.days(first, last, dims), lambda: self._local.days(first, last, dims)
        )

    async def minutes(self, first: int) -> list[Row]:
        """The minute buckets from `first` to this one (by the service's clock)."""
        last = minute_of(self.clock())
        return await self._read(
            lambda: self.backend.minutes(first, last), lambda: self._local.minutes(first, last)
        )

    async def recent(self, limit: int) -> list[RequestRecord]:
        return await self._read(lambda: self.backend.recent(limit), lambda: self._local.recent(limit))

    async def counters(self) -> dict[tuple[str, str], float]:
        return await self._read(self.backend.counters, self._local.counters)

    async def last(self, session: str) -> RequestRecord | None:
        return await self._read(lambda: self.backend.last(session), lambda: self._local.last(session))
