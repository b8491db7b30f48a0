"""The state store in Redis: several fcc processes, on one machine or many behind a load
balancer, share every limit, quota, circuit, record and aggregate.

Admission is one Lua script (admit.lua, the rules of admission.py) per attempt: one round
trip. Circuit changes are optimistic transactions (WATCH/MULTI), rare and off the stream.
Every key starts with the configured prefix. A connection that fails raises
StoreUnavailable, which the service turns into per-process limits until Redis is back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from fcc.engine.catalog.config import without_password
from fcc.engine.state.admission import (
    BUSY_RETRY,
    DAY,
    LEASE_TTL,
    QUOTA_TTL,
    WINDOW,
    Admission,
    Check,
    CircuitPolicy,
    CircuitState,
    Lease,
    Scope,
    Usage,
    Wait,
    buckets,
    circuit_from_json,
    circuit_json,
    circuit_wait,
    quota_wait,
    refusal,
    rpm_wait,
    streams_wait,
    usage,
)
from fcc.engine.state.records import RequestRecord, record_from_wire
from fcc.engine.state.store import Row, StoreError, StoreUnavailable
from fcc.engine.state.tally import Increments

_SEP = "\x1f"


def _errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def _limit(value: int | None) -> str:
    return "" if value is None else str(value)


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, prefix: str = "fcc", retention_days: int = 30) -> None:
        self.url = url
        self.p = prefix
        self.retention = retention_days * DAY
        self._client: Any = None
        self._admit: Any = None

    def _key(self, *parts: str) -> str:
        return ":".join((self.p, *parts))

    async def open(self) -> None:
        try:
            import redis.asyncio
        except ImportError:
            raise StoreError(
                "state: {backend: redis} needs the redis package: pip install 'fcc[redis]'"
            ) from None

        self._client = redis.asyncio.from_url(
            self.url, socket_connect_timeout=2, socket_timeout=2, decode_responses=True
        )
        try:
            await self._client.ping()
        except _errors() as exc:
            await self._client.aclose()
            raise StoreError(
                f"cannot reach Redis at {without_password(self.url)} ({exc}): start it, fix state.url in "
                "config.yaml, or use state: {backend: sqlite} for one machine"
            ) from None
        self._admit = self._client.register_script(
            Path(__file__).with_name("admit.lua").read_text(encoding="utf-8")
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _scan(self, match: str) -> list[str]:
        return [k async for k in self._client.scan_iter(match=match, count=500)]

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except _errors() as exc:
            raise StoreUnavailable(
                f"Redis at {without_password(self.url)} is not answering ({type(exc).__name__})"
            ) from None

    # -- admission -----------------------------------------------------------------------

    async def admit(self, check: Check, lease_id: str, now: float, policy: CircuitPolicy) -> Admission:
        args: list[Any] = [self.p, repr(now), lease_id, check.candidate, policy.trial_ttl]
        args += [LEASE_TTL, int(QUOTA_TTL), len(check.scopes)]
        for scope in check.scopes:
            lim = scope.limits
            quota = lim.requests_per_day is not None or lim.tokens_per_day is not None
            bks = buckets(lim.day_reset, now) if quota else []
            args += [scope.key, _limit(lim.requests_per_minute), _limit(lim.concurrent_streams)]
            args += [_limit(lim.requests_per_day), _limit(lim.tokens_per_day), len(bks), *bks]
        out = await self._call(self._admit(args=args))
        if out[0] == "ok":
            trial = check.candidate if out[1] == "1" else None
            return Admission(0.0, None, Lease(tuple(out[2:]), lease_id, trial))
        waits: list[Wait] = []
        for entry in out[1:]:
            kind, _, payload = entry.partition("|")
            if kind == "circuit":  # the script refused on the stored circuit: Python says why
                found = circuit_wait(circuit_from_json(payload), now, policy)
                waits.append(found or Wait(BUSY_RETRY, "circuit open"))
                continue
            rest = payload.split("|")
            scope = check.scopes[int(rest[0]) - 1]
            if kind == "rpm":
                waits.append(rpm_wait(scope, float(rest[1]), now))
            elif kind == "quota":
                what: Literal["requests", "tokens"] = "requests" if rest[1] == "requests" else "tokens"
                waits.append(quota_wait(scope, what, [int(float(n)) for n in rest[2].split(",")], now))
            else:
                waits.append(streams_wait(scope))
        return refusal(waits)

    async def release(self, lease: Lease) -> None:
        if not lease.keys:
            return
        pipe = self._client.pipeline(transaction=False)
        for key in lease.keys:
            pipe.zrem(self._key("lease", key), lease.id)
        await self._call(pipe.execute())

    async def refresh(self, leases: Iterable[Lease], expires: float) -> None:
        pipe = self._client.pipeline(transaction=False)
        n = 0
        for lease in leases:
            for key in lease.keys:
                pipe.zadd(self._key("lease", key), {lease.id: expires}, xx=True)
                n += 1
        if n:
            await self._call(pipe.execute())

    async def update_circuit(self, key: str, change: Callable[[CircuitState], CircuitState | None]) -> None:
        import redis.exceptions

        name = self._key("circuit", key)
        for _ in range(20):
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    await self._call(pipe.watch(name))
                    raw = await self._call(pipe.get(name))
                    new = change(circuit_from_json(raw) if raw else CircuitState())
                    pipe.multi()
                    if new is None:
                        pipe.delete(name)
                        pipe.srem(self._key("circuits"), key)
                    else:
                        pipe.set(name, circuit_json(new), ex=int(7 * DAY))
                        pipe.sadd(self._key("circuits"), key)
                    await self._call(pipe.execute())
                    return
                except redis.exceptions.WatchError:
                    continue  # another process changed it: read again

    async def circuits(self) -> dict[str, CircuitState]:
        keys = sorted(await self._call(self._client.smembers(self._key("circuits"))))
        if not keys:
            return {}
        values = await self._call(self._client.mget([self._key("circuit", k) for k in keys]))
        return {k: circuit_from_json(v) for k, v in zip(keys, values, strict=True) if v}

    async def usage_now(self, scopes: Iterable[Scope], now: float) -> list[Usage]:
        """Every scope in one round trip, and only reads (live leases are counted, not pruned)."""
        wanted = [(scope, buckets(scope.limits.day_reset, now)) for scope in scopes]
        if not wanted:
            return []
        pipe = self._client.pipeline(transaction=False)
        for scope, names in wanted:
            pipe.zcount(self._key("lease", scope.key), f"({now!r}", "+inf")
            pipe.zcount(self._key("win", scope.key), f"({now - WINDOW!r}", "+inf")
            for bucket in names:
                pipe.hmget(self._key("quota", scope.key, bucket), "requests", "tokens")
        got = iter(await self._call(pipe.execute()))
        out = []
        for scope, names in wanted:
            active, last_minute = int(next(got)), int(next(got))
            quota = [next(got) for _ in names]
            requests = sum(int(r or 0) for r, _ in quota)
            tokens = sum(int(t or 0) for _, t in quota)
            out.append(usage(scope, requests, tokens, active, last_minute))
        return out

    # -- records, aggregates, counters -----------------------------------------------------

    async def write(self, batch: Increments) -> None:
        pipe = self._client.pipeline(transaction=False)
        touched: set[str] = set()
        for (bucket, dim, key), fields in batch.days.items():
            name = self._key("days", bucket)
            touched.add(name)
            for field, n in fields.items():
                pipe.hincrbyfloat(name, _SEP.join((dim, key, field)), n)
        for (bucket, dim, key), seen in batch.last_seen.items():
            pipe.hset(self._key("days", bucket), _SEP.join((dim, key, "last_seen")), seen)
        for (minute, dim, key), fields in batch.minutes.items():
            name = self._key("minutes", minute)
            for field, n in fields.items():
                pipe.hincrbyfloat(name, _SEP.join((dim, key, field)), n)
            pipe.expire(name, 3 * 3600)
        for (counter, labels), amount in batch.counters.items():
            pipe.hincrbyfloat(self._key("counters"), _SEP.join((counter, labels)), amount)
        for (scope, bucket), tokens in batch.tokens.items():
            q = self._key("quota", scope, bucket)
            pipe.hincrby(q, "tokens", tokens)
            pipe.expire(q, int(QUOTA_TTL))
        for r in batch.records:
            data = json.dumps(r.wire(), separators=(",", ":"))
            # Redis numbers the entries (several writers may add at once); the record carries its time.
            pipe.xadd(self._key("records"), {"d": data})
            if r.session:
                pipe.set(self._key("last", r.session), data, ex=int(2 * DAY))
        for name in touched:
            pipe.expire(name, int(self.retention + 2 * DAY))
        await self._call(pipe.execute())

    async def days(self, first: str, last: str, dims: Iterable[str]) -> list[Row]:
        wanted = set(dims)
        names: list[str] = []
        day, end = date.fromisoformat(first), date.fromisoformat(last)
        while day <= end:
            names.append(day.isoformat())
            day += timedelta(days=1)
        pipe = self._client.pipeline(transaction=False)
        for d in names:
            pipe.hgetall(self._key("days", d))
        found: dict[tuple[str, str, str], dict[str, float]] = {}
        for d, values in zip(names, await self._call(pipe.execute()), strict=True):
            for packed, value in values.items():
                dim, key, field = packed.split(_SEP)
                if dim in wanted:
                    found.setdefault((d, dim, key), {})[field] = float(value)
        return [Row(b, d, k, f) for (b, d, k), f in found.items()]

    async def minutes(self, first: int, last: int) -> list[Row]:
        pipe = self._client.pipeline(transaction=False)
        minutes = list(range(first, last + 1))
        for m in minutes:
            pipe.hgetall(self._key("minutes", str(m)))
        found: dict[tuple[str, str, str], dict[str, float]] = {}
        for m, values in zip(minutes, await self._call(pipe.execute()), strict=True):
            for packed, value in values.items():
                dim, key, field = packed.split(_SEP)
                found.setdefault((str(m), dim, key), {})[field] = float(value)
        return [Row(b, d, k, f) for (b, d, k), f in found.items()]

    async def recent(self, limit: int) -> list[RequestRecord]:
        rows = await self._call(self._client.xrevrange(self._key("records"), count=limit))
        return [record_from_wire(json.loads(fields["d"])) for _, fields in rows]

    async def last(self, session: str) -> RequestRecord | None:
        data = await self._call(self._client.get(self._key("last", session)))
        return record_from_wire(json.loads(data)) if data else None

    async def counters(self) -> dict[tuple[str, str], float]:
        values = await self._call(self._client.hgetall(self._key("counters")))
        out = {}
        for packed, value in values.items():
            name, labels = packed.split(_SEP, 1)
            out[(name, labels)] = float(value)
        return out

    async def prune(self, before: float, now: float) -> None:
        await self._call(
            self._client.xtrim(self._key("records"), minid=f"{int(before * 1000)}-0", approximate=True)
        )

    # -- small values ----------------------------------------------------------------------

    async def put(self, ns: str, items: dict[str, str], ttl: float) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(self._key("kv", ns, key), value, ex=max(1, int(ttl)))
        await self._call(pipe.execute())

    async def get(self, ns: str, keys: Iterable[str] | None = None) -> dict[str, str]:
        if keys is None:
            names = await self._call(self._scan(self._key("kv", ns, "*")))
            prefix = len(self._key("kv", ns, ""))
            keys = [n[prefix:] for n in names]
        wanted = list(keys)
        if not wanted:
            return {}
        values = await self._call(self._client.mget([self._key("kv", ns, k) for k in wanted]))
        return {k: v for k, v in zip(wanted, values, strict=True) if v is not None}
