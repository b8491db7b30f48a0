"""The state store's behaviour, the same suite on every backend: memory, SQLite, and a real
redis-server on loopback. Admission (windows, leases, quotas, circuits), records and their
aggregates, counters, small values; then what only a shared store can do: survive a
restart, and hold one limit across two processes' connections."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fcc.engine.catalog.providers import Limits, ModelInfo, Provider
from fcc.engine.state.admission import CircuitPolicy
from fcc.engine.state.memory import MemoryBackend
from fcc.engine.state.metrics import render
from fcc.engine.state.redis import RedisBackend
from fcc.engine.state.service import StateService
from fcc.engine.state.sqlite import SqliteBackend
from fcc.engine.state.store import Backend
from tests.support import redis_server
from tests.support.records import record

pytestmark = pytest.mark.anyio
T0 = 1_764_590_400.0  # 2025-12-01 12:00:00 UTC: mid-day, so a day's quota has hours on both sides
BACKENDS = ["memory", "sqlite", "redis"]


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def redis() -> Iterator[redis_server.RedisServer]:
    with redis_server.running() as server:
        yield server


def make_backend(kind: str, tmp: Path, redis_url: Callable[[], str], prefix: str) -> Backend:
    if kind == "memory":
        return MemoryBackend()
    if kind == "sqlite":
        return SqliteBackend(tmp / "state" / "fcc.db")
    return RedisBackend(redis_url(), prefix)


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def factory(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], Backend]:
    """Backends of this test's one store (the same file, the same Redis prefix)."""
    prefix = "t" + secrets.token_hex(4)

    def url() -> str:
        return str(request.getfixturevalue("redis").url)

    return lambda: make_backend(kind, tmp_path, url, prefix)


def provider(pid: str = "groq", limits: Limits | None = None, models: tuple[ModelInfo, ...] = ()) -> Provider:
    return Provider(
        id=pid,
        display_name=pid,
        transport="openai_chat",
        base_url="http://127.0.0.1:9/v1",
        auth="none",
        limits=limits or Limits(),
        models=models,
    )


@pytest.fixture
async def service(factory: Callable[[], Backend]) -> AsyncIterator[Callable[..., StateService]]:
    started: list[StateService] = []

    async def start(providers: dict[str, Provider], clock: Clock | None = None) -> StateService:
        svc = StateService(factory(), providers, clock=clock or Clock(), policy=CircuitPolicy(cooldown=30))
        await svc.start()
        started.append(svc)
        return svc

    yield start  # type: ignore[misc]
    for svc in started:
        await svc.stop()


async def flushed(svc: StateService) -> None:
    await svc._flush_now()


# -- admission ---------------------------------------------------------------------------------


async def test_requests_per_minute_hold_and_say_when(service):
    clock = Clock()
    groq = provider(limits=Limits(requests_per_minute=2))
    svc = await service({"groq": groq}, clock)
    for _ in range(2):
        assert (await svc.admit(groq, "m")).wait == 0
    clock.now += 10
    refused = await svc.admit(groq, "m")
    assert refused.wait == pytest.approx(50) and "2 requests a minute" in (refused.reason or "")
    clock.now += 50.01
    assert (await svc.admit(groq, "m")).wait == 0


async def test_concurrent_streams_are_leases(service):
    local = provider("local", Limits(concurrent_streams=1))
    svc = await service({"local": local})
    first = await svc.admit(local, "m")
    assert first.wait == 0 and first.lease is not None and first.lease.keys == ("local",)
    busy = await svc.admit(local, "m")
    assert busy.wait > 0 and "1 concurrent streams" in (busy.reason or "")
    await svc.release(first.lease)
    assert (await svc.admit(local, "m")).wait == 0


async def test_circuit_opens_half_opens_and_closes(service):
    clock = Clock()
    p = provider()
    svc = await service({"groq": p}, clock)
    for _ in range(2):
        await svc.failure("groq/m", "500 api_error")
    assert (await svc.admit(p, "m")).wait == 0
    await svc.failure("groq/m", "500 api_error")
    closed = await svc.admit(p, "m")
    assert closed.wait == pytest.approx(30) and "circuit open (500 api_error)" in (closed.reason or "")
    assert (await svc.circuits())["groq/m"]["state"] == "open"
    clock.now += 30
    trial = await svc.admit(p, "m")  # half-open: one trial at a time
    assert trial.wait == 0 and trial.lease is not None and trial.lease.trial == "groq/m"
    assert (await svc.admit(p, "m")).wait > 0
    await svc.failure("groq/m", "500 api_error")  # the trial failed: open again, for longer
    assert (await svc.admit(p, "m")).wait == pytest.approx(60)
    clock.now += 60
    trial = await svc.admit(p, "m")
    svc.success("groq/m", trial.lease)
    await asyncio.sleep(0.05)  # the close is written off the streaming path
    assert await svc.circuits() == {}


async def test_retry_after_blocks_one_model_only(service):
    p = provider("gemini")
    svc = await service({"gemini": p})
    await svc.block("gemini/flash", 7, "429 rate_limit_error")
    blocked = await svc.admit(p, "flash")
    assert blocked.wait == pytest.approx(7) and (blocked.reason or "").startswith("retry-after")
    assert not blocked.quota  # a cooldown passes: retrying later helps
    assert (await svc.admit(p, "pro")).wait == 0
    assert (await svc.circuits())["gemini/flash"]["cooldown_left"] == 7


async def test_daily_requests_quota_resets_at_utc_midnight(service):
    clock = Clock()
    p = provider("or", Limits(requests_per_day=3))
    svc = await service({"or": p}, clock)
    for _ in range(3):
        assert (await svc.admit(p, "m")).wait == 0
    refused = await svc.admit(p, "m")
    assert refused.wait == pytest.approx(12 * 3600)  # T0 is noon UTC
    assert "daily quota requests_per_day 3 spent (resets 00:00 UTC)" in (refused.reason or "")
    assert refused.quota  # no retry helps before midnight: the 429 says so (x-should-retry: false)
    (usage,) = await svc.usage_now()
    assert (usage.requests, usage.requests_per_day) == (3, 3)
    clock.now += 12 * 3600
    assert (await svc.admit(p, "m")).wait == 0


async def test_rolling_quota_frees_up_as_old_requests_age(service):
    clock = Clock()
    p = provider("or", Limits(requests_per_day=2, day_reset="rolling_24h"))
    svc = await service({"or": p}, clock)
    assert (await svc.admit(p, "m")).wait == 0
    clock.now += 5 * 3600
    assert (await svc.admit(p, "m")).wait == 0
    refused = await svc.admit(p, "m")
    # The first request's hour leaves the 24 hours one hour-bucket after it was made.
    assert 18 * 3600 < refused.wait <= 20 * 3600, refused
    clock.now += refused.wait + 1
    assert (await svc.admit(p, "m")).wait == 0


async def test_daily_token_quota_counts_what_requests_spent(service):
    p = provider("groq", Limits(tokens_per_day=300))
    svc = await service({"groq": p})
    assert (await svc.admit(p, "openai/gpt-oss-120b")).wait == 0
    svc.add(record(T0))  # 100 in + 20 out + 50 cached = 170
    svc.add(record(T0))
    await flushed(svc)
    refused = await svc.admit(p, "openai/gpt-oss-120b")
    assert refused.wait > 0 and "tokens_per_day 300 spent" in (refused.reason or "")


async def test_tokens_of_a_bucket_no_admission_opened_are_pruned_too(tmp_path: Path):
    import sqlite3
    import time

    p = provider("groq", Limits(tokens_per_day=300))
    svc = StateService(SqliteBackend(tmp_path / "fcc.db"), {"groq": p}, clock=Clock())
    await svc.start()
    svc.add(record(T0))  # tokens spent, with no admission of its own in this bucket
    await flushed(svc)
    later = time.time() + 3 * 86_400
    await svc.backend.prune(later - 30 * 86_400, later)
    await svc.stop()
    with sqlite3.connect(tmp_path / "fcc.db") as db:
        assert db.execute("SELECT COUNT(*) FROM quota").fetchone() == (0,)


async def test_a_model_may_have_limits_of_its_own(service):
    flash = ModelInfo("flash", limits=Limits(requests_per_day=1))
    p = provider("gemini", Limits(requests_per_minute=100), (flash,))
    svc = await service({"gemini": p})
    assert (await svc.admit(p, "flash")).wait == 0
    refused = await svc.admit(p, "flash")
    assert "gemini/flash: daily quota requests_per_day 1 spent" in (refused.reason or "")
    assert (await svc.admit(p, "pro")).wait == 0  # the provider's own limit still has room


# -- records, aggregates, counters -------------------------------------------------------------


async def test_aggregates_by_day_dimension(service):
    svc = await service({})
    svc.add(record(T0))
    svc.add(
        record(
            t=T0 + 1,
            session="s2",
            route="probe:title",
            probe="title",
            input_tokens=10,
            output_tokens=3,
            cached_tokens=0,
        )
    )
    svc.add(
        record(
            t=T0 + 2,
            status=429,
            error_type="rate_limit_error",
            input_tokens=0,
            output_tokens=0,
            cached_tokens=0,
        )
    )
    svc.add(record(t=T0 + 3, attempts=("a/x", "groq/openai/gpt-oss-120b"), skipped=("big/one: vision: no",)))
    await flushed(svc)
    day = "2025-12-01"
    dims = ["total", "provider", "model", "session", "probe", "skipped"]
    rows = {(r.dim, r.key): r.fields for r in await svc.days(day, day, dims)}
    total = rows[("total", "")]
    assert (total["requests"], total["errors"], total["probe_answers"], total["fallbacks"]) == (4, 1, 1, 1)
    assert rows[("session", "s1")]["requests"] == 3 and rows[("session", "s2")]["probe_answers"] == 1
    assert rows[("session", "s1")]["last_seen"] == T0 + 3
    assert rows[("provider", "groq")]["input_tokens"] == 200 and rows[("provider", "probe")]["requests"] == 1
    assert rows[("model", "groq/openai/gpt-oss-120b")]["requests"] == 3
    assert rows[("probe", "title")]["requests"] == 1 and rows[("skipped", "big/one")]["requests"] == 1
    recent = await svc.recent(10)
    assert [r.time for r in recent] == [T0 + 3, T0 + 2, T0 + 1, T0]  # newest first
    assert recent[0].attempts == ("a/x", "groq/openai/gpt-oss-120b") and recent[0].skipped == (
        "big/one: vision: no",
    )
    assert recent[1].error_type == "rate_limit_error" and recent[2].probe == "title"


async def test_minutes_and_counters(service):
    svc = await service({})
    svc.add(record(t=T0 - 120))
    svc.add(record(t=T0))
    svc.add(record(t=T0, probe="warmup", route="probe:warmup", rule=None))
    await flushed(svc)
    rows = {(int(r.bucket), r.dim, r.key): r.fields for r in await svc.minutes(int(T0 // 60) - 5)}
    now = int(T0 // 60)
    assert rows[(now, "total", "")]["requests"] == 2 and rows[(now, "total", "")]["probe_answers"] == 1
    assert rows[(now - 2, "provider", "groq")]["requests"] == 1
    text = render(await svc.counters(), await svc.circuits(), await svc.usage_now())
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {tuple(sorted(s.labels.items())): s.value for s in families["fcc_requests"].samples}
    assert requests[(("provider", "groq"), ("status", "200"), ("tier", "opus"))] == 2
    counts = [s for s in families["fcc_request_duration_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in counts) == 3


async def test_small_values_expire(service):
    svc = await service({})
    await svc.put("sig", {"toolu_1": "sig-a", "toolu_2": "sig-b"}, ttl=60)
    assert await svc.get("sig", ["toolu_1", "toolu_9"]) == {"toolu_1": "sig-a"}
    await svc.put("doctor", {"groq/x": "{}"}, ttl=0.001)
    await asyncio.sleep(1.1)
    assert await svc.get("doctor") == {}


# -- shared stores: restarts and several processes --------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "redis"], indirect=True)
async def test_everything_survives_a_restart(service, kind):
    clock = Clock()
    p = provider("or", Limits(requests_per_day=2))
    first = await service({"or": p}, clock)
    assert (await first.admit(p, "m")).wait == 0
    await first.failure("or/m", "500 api_error")
    await first.block("or/other", 100, "429 rate_limit_error")
    first.add(record(T0))
    await first.put("sig", {"toolu_1": "sig-a"}, ttl=3600)
    await first.stop()
    again = await service({"or": p}, clock)
    assert (await again.admit(p, "m")).wait == 0
    assert (await again.admit(p, "m")).wait > 0  # two a day: the quota held across the restart
    assert (await again.admit(p, "other")).wait == pytest.approx(100)
    assert (await again.circuits())["or/m"]["recent_failures"] == 1
    assert [r.session for r in await again.recent(5)] == ["s1"]
    assert await again.get("sig", ["toolu_1"]) == {"toolu_1": "sig-a"}


@pytest.mark.parametrize("kind", ["sqlite", "redis"], indirect=True)
async def test_one_limit_holds_across_two_processes(service):
    p = provider("groq", Limits(requests_per_minute=10))
    a, b = await service({"groq": p}), await service({"groq": p})  # two connections, one store
    admitted = 0
    for _ in range(15):
        for svc in (a, b):
            admitted += (await svc.admit(p, "m")).wait == 0
    assert admitted == 10


async def test_every_redis_read_says_store_unavailable_when_redis_goes():
    from fcc.engine.state.store import StoreError

    with redis_server.running() as server:
        backend = RedisBackend(server.url, "gone")
        await backend.open()
        await backend.put("doctor", {"a/b": "{}"}, 60)
        assert await backend.get("doctor") == {"a/b": "{}"}
        server.kill()
        for read in (lambda: backend.get("doctor"), lambda: backend.get("doctor", ["a/b"])):
            with pytest.raises(StoreError):
                await read()
        await backend.close()
