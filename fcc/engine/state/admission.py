"""Who may be asked now: circuits, rate-limit windows, concurrency leases and daily quotas,
as pure rules over a small view of the stored state.

Each backend runs `admit` atomically (memory: one process; SQLite: one IMMEDIATE
transaction; Redis: the same rules as one Lua script, state/admit.lua), so a limit
holds across every worker sharing the store. Circuit changes (a failure, a retry-after, a
success) are read-modify-writes of one CircuitState; they are rare and off the streaming
path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, Protocol

import msgspec
from msgspec.structs import asdict, replace

from fcc.engine.catalog.providers import DayReset, Limits
from fcc.engine.state.tally import day_of

CircuitName = Literal["closed", "open", "half_open"]
WINDOW = 60.0  # requests_per_minute
DAY = 86_400.0
HOUR = 3_600.0
LEASE_TTL = 900.0  # a stream's slot outlives a crashed worker by this much at most
QUOTA_TTL = 2 * DAY  # a daily quota's bucket, whatever the retention (a rolling day reads back 24 h)
BUSY_RETRY = 0.25  # a stream ends when it ends: look again soon


class CircuitPolicy(msgspec.Struct, frozen=True):
    window: float = 60.0  # failures counted over this many seconds
    threshold: int = 3  # this many open the circuit
    cooldown: float = 30.0  # for this long, growing on repeats up to ten times
    trial_ttl: float = 600.0  # a half-open trial that never reports back frees up after this


class CircuitState(msgspec.Struct, frozen=True):
    failures: tuple[float, ...] = ()
    open_until: float = 0.0
    trial_until: float = 0.0  # a half-open trial request is in flight until then
    opened: int = 0  # consecutive openings, for a growing cool-down
    last_error: str | None = None
    blocked: bool = False  # the open time came from the upstream's retry-after

    def name(self, now: float) -> CircuitName:
        if self.open_until == 0.0:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    def wait(self, now: float, policy: CircuitPolicy) -> float:
        """Seconds until this candidate may be tried; 0: now (closed, or a trial is free)."""
        if self.open_until == 0.0:
            return 0.0
        if now < self.open_until:
            return self.open_until - now
        return policy.cooldown if now < self.trial_until else 0.0

    def wire(self, now: float, policy: CircuitPolicy) -> dict[str, object]:
        return {
            "state": self.name(now),
            "recent_failures": sum(1 for t in self.failures if t >= now - policy.window),
            "cooldown_left": round(max(self.open_until - now, 0.0), 1),
            "last_error": self.last_error,
        }


def failed(state: CircuitState, now: float, error: str, policy: CircuitPolicy) -> CircuitState:
    failures = (*(t for t in state.failures if t >= now - policy.window), now)
    trial = state.open_until != 0.0 and now >= state.open_until
    if trial or len(failures) >= policy.threshold:
        opened = state.opened + 1
        until = now + policy.cooldown * min(2 ** (opened - 1), 10)
        return CircuitState(failures, until, 0.0, opened, error)
    return replace(state, failures=failures, last_error=error)


def blocked(state: CircuitState, now: float, seconds: float, error: str) -> CircuitState:
    """The upstream said when to come back (retry-after): not before then."""
    return replace(state, open_until=max(state.open_until, now + seconds), last_error=error, blocked=True)


# -- limits ------------------------------------------------------------------------------------


def circuit_json(state: CircuitState) -> str:
    """A circuit as the stores keep it."""
    return json.dumps(asdict(state))


def circuit_from_json(text: str | bytes) -> CircuitState:
    """A stored circuit. Tolerant: Redis's script re-encodes it with cjson, which writes an
    empty list as {}, and a newer fcc may have added fields."""
    data = json.loads(text)
    failures = data.get("failures") or ()
    data["failures"] = tuple(failures) if isinstance(failures, list) else ()
    return CircuitState(**{k: v for k, v in data.items() if k in CircuitState.__struct_fields__})


class Scope(msgspec.Struct, frozen=True):
    """Limits kept under one key: a provider's, or one model's of a provider."""

    key: str
    limits: Limits


class Check(msgspec.Struct, frozen=True):
    candidate: str  # PROVIDER/MODEL: its circuit
    scopes: tuple[Scope, ...]


def check_for(provider: str, model: str, provider_limits: Limits, model_limits: Limits | None) -> Check:
    scopes = [Scope(provider, provider_limits)] if provider_limits.any else []
    if model_limits is not None and model_limits.any:
        scopes.append(Scope(f"{provider}/{model}", model_limits))
    return Check(f"{provider}/{model}", tuple(scopes))


class Lease(msgspec.Struct, frozen=True):
    keys: tuple[str, ...]  # the scopes whose concurrency slot it holds
    id: str
    trial: str | None = None  # the candidate whose half-open trial it is
    local: bool = False  # taken while the shared store was away (resilient mode)


class Admission(msgspec.Struct, frozen=True):
    wait: float  # 0: admitted
    reason: str | None = None  # why not: for the 429 message and fcc route
    lease: Lease | None = None
    quota: bool = False  # a daily quota is spent: no retry helps before it resets


def day_bucket(now: float) -> str:
    return "d:" + day_of(now)


def hour_buckets(now: float) -> list[str]:
    """The 24 one-hour buckets a rolling day is counted in, oldest first."""
    hour = int(now // HOUR)
    return [f"h:{h}" for h in range(hour - 23, hour + 1)]


def buckets(reset: DayReset, now: float) -> list[str]:
    return [day_bucket(now)] if reset == "utc_midnight" else hour_buckets(now)


def _until_reset(reset: DayReset, now: float, used: list[int], limit: int) -> float:
    """Seconds until the quota has room again."""
    if reset == "utc_midnight":
        midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight + timedelta(days=1)).timestamp() - now
    # Rolling: the oldest hours leave the window one by one.
    hour = int(now // HOUR)
    total = sum(used)
    for i, n in enumerate(used):
        total -= n
        if total < limit:
            return (hour - 23 + i + 1) * HOUR + DAY - now
    return DAY


def _resets_at(reset: DayReset, wait: float, now: float) -> str:
    when = datetime.fromtimestamp(now + wait, UTC)
    return "00:00 UTC" if reset == "utc_midnight" else when.strftime("%H:%M UTC")


class View(Protocol):
    """The stored state admission reads and changes, inside one atomic step."""

    def circuit(self, key: str) -> CircuitState | None: ...
    def set_circuit(self, key: str, state: CircuitState) -> None: ...
    def window(self, key: str, since: float) -> int: ...  # requests after `since`
    def newest(self, key: str, since: float, n: int) -> float: ...  # the time of the n-th newest
    def add_to_window(self, key: str, t: float) -> None: ...
    def leases(self, key: str, now: float) -> int: ...  # live leases
    def add_lease(self, key: str, lease: str, expires: float) -> None: ...
    def quota(self, key: str, buckets: list[str]) -> tuple[list[int], list[int]]: ...  # requests, tokens
    def add_request(self, key: str, bucket: str, expires: float) -> None: ...


class Wait(NamedTuple):
    """Why a candidate cannot be asked now, and for how long (the longest wait decides)."""

    seconds: float
    why: str
    quota: bool = False  # a daily quota is spent: no retry helps before it resets


def circuit_wait(state: CircuitState, now: float, policy: CircuitPolicy) -> Wait | None:
    wait = state.wait(now, policy)
    if wait <= 0:
        return None
    why = "retry-after" if state.blocked and now < state.open_until else "circuit open"
    return Wait(wait, f"{why} ({state.last_error})" if state.last_error else why)


def rpm_wait(scope: Scope, oldest_needed: float, now: float) -> Wait:
    """The window is full: room again when the request `rpm` places back leaves it."""
    why = f"{scope.key}: {scope.limits.requests_per_minute} requests a minute"
    return Wait(oldest_needed + WINDOW - now, why)


def quota_wait(scope: Scope, kind: Literal["requests", "tokens"], used: list[int], now: float) -> Wait:
    lim = scope.limits
    limit = lim.requests_per_day if kind == "requests" else lim.tokens_per_day
    assert limit is not None
    wait = _until_reset(lim.day_reset, now, used, limit)
    resets = _resets_at(lim.day_reset, wait, now)
    return Wait(wait, f"{scope.key}: daily quota {kind}_per_day {limit} spent (resets {resets})", quota=True)


def streams_wait(scope: Scope) -> Wait:
    return Wait(BUSY_RETRY, f"{scope.key}: {scope.limits.concurrent_streams} concurrent streams")


def refusal(waits: list[Wait]) -> Admission:
    longest = max(waits)
    return Admission(max(longest.seconds, 0.001), longest.why, quota=longest.quota)


def admit(view: View, check: Check, lease_id: str, now: float, policy: CircuitPolicy) -> Admission:
    state = view.circuit(check.candidate)
    trial = False
    if state is not None:
        closed = circuit_wait(state, now, policy)
        if closed is not None:
            return refusal([closed])
        trial = state.open_until != 0.0
    waits: list[Wait] = []
    for scope in check.scopes:
        waits += _scope_waits(view, scope, now)
    if waits:
        return refusal(waits)
    if trial and state is not None:
        view.set_circuit(check.candidate, replace(state, trial_until=now + policy.trial_ttl))
    held = []
    for scope in check.scopes:
        lim = scope.limits
        if lim.requests_per_minute is not None:
            view.add_to_window(scope.key, now)
        if lim.requests_per_day is not None or lim.tokens_per_day is not None:
            bucket = buckets(lim.day_reset, now)[-1]
            view.add_request(scope.key, bucket, now + QUOTA_TTL)
        if lim.concurrent_streams is not None:
            view.add_lease(scope.key, lease_id, now + LEASE_TTL)
            held.append(scope.key)
    return Admission(0.0, None, Lease(tuple(held), lease_id, check.candidate if trial else None))


def _scope_waits(view: View, scope: Scope, now: float) -> list[Wait]:
    lim, out = scope.limits, []
    if lim.requests_per_minute is not None:
        since, rpm = now - WINDOW, lim.requests_per_minute
        if view.window(scope.key, since) >= rpm:
            out.append(rpm_wait(scope, view.newest(scope.key, since, rpm), now))
    if lim.requests_per_day is not None or lim.tokens_per_day is not None:
        requests, tokens = view.quota(scope.key, buckets(lim.day_reset, now))
        if lim.requests_per_day is not None and sum(requests) >= lim.requests_per_day:
            out.append(quota_wait(scope, "requests", requests, now))
        if lim.tokens_per_day is not None and sum(tokens) >= lim.tokens_per_day:
            out.append(quota_wait(scope, "tokens", tokens, now))
    if lim.concurrent_streams is not None and view.leases(scope.key, now) >= lim.concurrent_streams:
        out.append(streams_wait(scope))
    return out


class Usage(msgspec.Struct):
    """Today's use against one scope's daily quota (dashboard, /metrics)."""

    key: str
    requests: int = 0
    tokens: int = 0
    requests_per_day: int | None = None
    tokens_per_day: int | None = None
    day_reset: str = "utc_midnight"
    active_streams: int = 0
    requests_last_minute: int = 0
    requests_per_minute: int | None = None
    concurrent_streams: int | None = None


def usage_of(view: View, scope: Scope, now: float) -> Usage:
    requests, tokens = view.quota(scope.key, buckets(scope.limits.day_reset, now))
    active, last_minute = view.leases(scope.key, now), view.window(scope.key, now - WINDOW)
    return usage(scope, sum(requests), sum(tokens), active, last_minute)


def usage(scope: Scope, requests: int, tokens: int, active: int, last_minute: int) -> Usage:
    """A scope's use, its limits beside it."""
    lim = scope.limits
    return Usage(
        scope.key,
        requests,
        tokens,
        lim.requests_per_day,
        lim.tokens_per_day,
        lim.day_reset,
        active,
        last_minute,
        lim.requests_per_minute,
        lim.concurrent_streams,
    )
