"""A finished request as the increments the store keeps: per day and per minute aggregates
by dimension (total, provider, model, session, probe, rule, skipped), the counters /metrics
exports, and the tokens daily quotas count. Pure; the store adds them up in one write."""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections import defaultdict
from datetime import UTC, datetime

import msgspec

from fcc.engine.state.records import RequestRecord

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# What a day's aggregates are kept by; `fcc usage --by` reads total (as day), provider, model, session.
DIMENSIONS = ("total", "provider", "model", "session", "probe", "rule", "skipped")
Key = tuple[str, str, str]  # (bucket, dimension, key)


def day_of(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def minute_of(t: float) -> int:
    return int(t // 60)


def labels(**items: str) -> str:
    """A counter's labels as Prometheus writes them: k="v",k="v" (values escaped)."""
    return _labels(tuple(items.items()))


@functools.lru_cache(maxsize=4096)
def _labels(items: tuple[tuple[str, str], ...]) -> str:
    # Remembered: every request counts against the same few label sets (its tier, provider,
    # status, rule), and building them afresh was ~100 µs of each request's end.
    return ",".join(f'{k}="{_escape(v)}"' for k, v in items)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Increments(msgspec.Struct):
    days: dict[Key, dict[str, int]] = msgspec.field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    minutes: dict[Key, dict[str, int]] = msgspec.field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    last_seen: dict[Key, float] = msgspec.field(default_factory=dict)  # (day, "session", id) → time
    counters: dict[tuple[str, str], float] = msgspec.field(default_factory=lambda: defaultdict(float))
    tokens: dict[tuple[str, str], int] = msgspec.field(
        default_factory=lambda: defaultdict(int)
    )  # (scope, bucket)
    records: list[RequestRecord] = msgspec.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.records or self.tokens)


def _model_key(r: RequestRecord) -> tuple[str, str]:
    """(provider, PROVIDER/MODEL) that a record counts against: who answered, else the last
    candidate tried; a probe answer counts as provider "probe"."""
    if r.probe:
        return "probe", f"probe/{r.probe}"
    source = r.source
    if not source:
        return "none", "none"
    return source.split("/", 1)[0], source


def add(inc: Increments, r: RequestRecord) -> None:
    inc.records.append(r)
    day, minute = day_of(r.time), str(minute_of(r.time))
    provider, model = _model_key(r)
    values = {
        "requests": 1,
        "errors": int(r.status >= 400),
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cached_tokens": r.cached_tokens,
        "probe_answers": int(r.probe is not None),
        "fallbacks": int(len(r.attempts) > 1 and r.status < 400),
    }
    keys = [("total", ""), ("provider", provider), ("model", model)]
    if r.session:
        keys.append(("session", r.session))
        inc.last_seen[(day, "session", r.session)] = max(
            inc.last_seen.get((day, "session", r.session), 0.0), r.time
        )
    for dim, key in keys:
        slot = inc.days[(day, dim, key)]
        for name, n in values.items():
            if n:
                slot[name] += n
    if r.probe:
        inc.days[(day, "probe", r.probe)]["requests"] += 1
    elif r.rule:
        inc.days[(day, "rule", r.rule)]["requests"] += 1
    for skip in r.skipped:
        inc.days[(day, "skipped", skip.split(": ", 1)[0])]["requests"] += 1
    for dim, key in (("total", ""), ("provider", provider)):
        slot = inc.minutes[(minute, dim, key)]
        slot["requests"] += 1
        if dim == "total":
            slot["input_tokens"] += r.input_tokens
            slot["output_tokens"] += r.output_tokens
            slot["probe_answers"] += int(r.probe is not None)
    _count(inc, r, provider)


def _count(inc: Increments, r: RequestRecord, provider: str) -> None:
    c = inc.counters
    tier = r.tier or "direct"
    c[("fcc_requests_total", labels(tier=tier, provider=provider, status=str(r.status)))] += 1
    for kind, n in (("input", r.input_tokens), ("output", r.output_tokens), ("cached", r.cached_tokens)):
        if n:
            c[("fcc_tokens_total", labels(provider=provider, kind=kind))] += n
    if len(r.attempts) > 1:
        c[("fcc_fallbacks_total", labels(tier=tier))] += 1
    if r.probe:
        c[("fcc_probe_answers_total", labels(probe=r.probe))] += 1
    elif r.rule:
        c[("fcc_rule_decisions_total", labels(rule=r.rule))] += 1
    for skip in r.skipped:
        candidate, _, why = skip.partition(": ")
        c[("fcc_candidates_skipped_total", labels(candidate=candidate, reason=why.split(":", 1)[0]))] += 1
    _observe(c, _histogram("fcc_request_duration_seconds", tier, provider), r.duration_ms / 1000)
    if r.ttft_ms is not None:
        _observe(c, _histogram("fcc_time_to_first_token_seconds", tier, provider), r.ttft_ms / 1000)


Histogram = tuple[tuple[tuple[str, str], ...], tuple[str, str], tuple[str, str]]


@functools.lru_cache(maxsize=1024)
def _histogram(name: str, tier: str, provider: str) -> Histogram:
    """A histogram's counter keys for one label set: its buckets (+Inf last), sum and count."""
    base = {"tier": tier, "provider": provider}
    bounds = [*(repr(b) for b in BUCKETS), "+Inf"]
    buckets = tuple((f"{name}_bucket", labels(**base, le=le)) for le in bounds)
    return buckets, (f"{name}_sum", labels(**base)), (f"{name}_count", labels(**base))


def _observe(c: dict[tuple[str, str], float], histogram: Histogram, value: float) -> None:
    # Stored as cumulative bucket counts, so workers' counts simply add up.
    buckets, total, count = histogram
    for key in buckets[bisect_left(BUCKETS, value) :]:
        c[key] += 1
    c[total] += value
    c[count] += 1


def quota_tokens(inc: Increments, scopes: list[tuple[str, str]], r: RequestRecord) -> None:
    """Tokens a request spent, against each (scope, bucket) of a tokens_per_day quota."""
    n = r.input_tokens + r.output_tokens + r.cached_tokens
    if n:
        for scope in scopes:
            inc.tokens[scope] += n
