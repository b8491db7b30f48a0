"""What /health, /metrics and the dashboard show, read from the state store: the whole of
every worker sharing it, today (UTC) for totals, the last hour for the chart."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from msgspec.structs import asdict

from fcc import __version__
from fcc.commands.models import rule_rows, tier_rows
from fcc.engine.routing.evidence import Finding
from fcc.engine.server.state import AppState
from fcc.engine.state.admission import Usage
from fcc.engine.state.metrics import render
from fcc.engine.state.store import Row
from fcc.engine.state.tally import DIMENSIONS, minute_of
from fcc.engine.types import JSON

MINUTES = 60  # the chart's span
SESSIONS = 200  # sessions shown, most recently seen first
RECENT = 100
_TOTALS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens")


def _totals(fields: dict[str, float]) -> dict[str, int]:
    out = {k: int(fields.get(k, 0)) for k in _TOTALS}
    out["probes"] = int(fields.get("probe_answers", 0))
    out["fallbacks"] = int(fields.get("fallbacks", 0))
    return out


def limits_wire(usage: list[Usage]) -> dict[str, dict[str, object]]:
    """GET /health's per-provider view of its limits (and per provider/model where a model has
    its own): streams open and requests this minute across all workers, today's quota use."""
    out: dict[str, dict[str, object]] = {}
    for u in usage:
        entry: dict[str, object] = {
            "active_streams": u.active_streams,
            "requests_last_minute": u.requests_last_minute,
            "requests_per_minute": u.requests_per_minute,
            "concurrent_streams": u.concurrent_streams,
        }
        if u.requests_per_day is not None or u.tokens_per_day is not None:
            entry["today"] = {
                "requests": u.requests,
                "requests_per_day": u.requests_per_day,
                "tokens": u.tokens,
                "tokens_per_day": u.tokens_per_day,
                "day_reset": u.day_reset,
            }
        out[u.key] = entry
    return out


async def health(state: AppState) -> JSON:
    tiers = {t: str(r.target) for t, r in state.settings.tiers.items()}
    svc = state.state
    store = svc.health()
    body: JSON = {
        "status": "ok",
        "version": __version__,
        "tiers": tiers,
        "store": {"backend": store.backend, "degraded": store.degraded, "message": store.message},
        "candidates": await svc.circuits(),
        "providers": providers_wire(state, await svc.usage_now()),
    }
    return body


def providers_wire(state: AppState, usage: list[Usage]) -> dict[str, dict[str, object]]:
    """Every provider with limits (their shared windows), and every other one this process has
    sent to (its streams in flight here: without limits there is nothing shared to count)."""
    out = limits_wire(usage)
    if state.dispatcher is not None:
        for pid in state.dispatcher.seen():
            out.setdefault(
                pid,
                {
                    "active_streams": state.dispatcher.active(pid),
                    "requests_last_minute": None,
                    "requests_per_minute": None,
                    "concurrent_streams": None,
                },
            )
    return dict(sorted(out.items()))


async def metrics(state: AppState) -> str:
    svc = state.state
    return render(await svc.counters(), await svc.circuits(), await svc.usage_now())


def _series(rows: list[Row], now_minute: int) -> JSON:
    by_minute: dict[int, dict[str, float]] = defaultdict(dict)
    by_provider: dict[str, dict[int, float]] = defaultdict(dict)
    for row in rows:
        minute = int(row.bucket)
        if row.dim == "total":
            by_minute[minute] = row.fields
        elif row.dim == "provider" and row.key not in ("probe", "none"):
            by_provider[row.key][minute] = row.fields.get("requests", 0)
    starts = range(now_minute - MINUTES + 1, now_minute + 1)
    empty: dict[str, float] = {}
    return {
        "minute": [datetime.fromtimestamp(s * 60, UTC).strftime("%H:%M") for s in starts],
        "requests": [int(by_minute.get(s, empty).get("requests", 0)) for s in starts],
        "input_tokens": [int(by_minute.get(s, empty).get("input_tokens", 0)) for s in starts],
        "output_tokens": [int(by_minute.get(s, empty).get("output_tokens", 0)) for s in starts],
        "probes": [int(by_minute.get(s, empty).get("probe_answers", 0)) for s in starts],
        "by_provider": {p: [int(v.get(s, 0)) for s in starts] for p, v in sorted(by_provider.items())},
    }


async def dashboard(state: AppState) -> JSON:
    """Everything the dashboard draws, in one JSON object (see static/dashboard.js)."""
    svc = state.state
    now = svc.clock()  # the clock today(), minutes() and the uptime's start are read on
    today = svc.today()
    minute = minute_of(now)
    rows = await svc.days(today, today, list(DIMENSIONS))
    dims: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for row in rows:
        dims[row.dim][row.key] = row.fields
    circuits = await svc.circuits()
    usage = await svc.usage_now()
    limits = limits_wire(usage)
    minute_rows = await svc.minutes(minute - MINUTES + 1)
    store = svc.health()
    return {
        "version": __version__,
        "uptime_s": round(now - svc.started, 1),
        "now": now,
        "day": today,
        "store": {
            "backend": store.backend,
            "degraded": store.degraded,
            "message": store.message,
            "dropped_records": store.dropped,
        },
        "tiers": [
            {
                "tier": t.tier,
                "route": t.route,
                "fallbacks": list(t.fallbacks),
                "thinking": t.thinking,
                "origin": t.origin,
            }
            for t in tier_rows(state.settings)
        ],
        "providers": _providers(state, dims, usage, limits, minute_rows, minute),
        "quotas": _quotas(state, dims, limits),
        "health": [{"candidate": k, **v} for k, v in circuits.items()],
        "sessions": _sessions(dims["session"]),
        "series": _series(minute_rows, minute),
        "probes": {
            "answered": sum(int(f.get("requests", 0)) for f in dims["probe"].values()),
            "by_name": {k: int(f.get("requests", 0)) for k, f in dims["probe"].items()},
            "active": [p.name for p in state.probes],
        },
        "routes": [asdict(r) for r in rule_rows(state.settings)],
        "rules": {k: int(f.get("requests", 0)) for k, f in dims["rule"].items()},
        "skipped": {k: int(f.get("requests", 0)) for k, f in dims["skipped"].items()},
        "doctor": _doctor(state.findings, now),
        "reload": state.reloaded.wire() if state.reloaded is not None else None,
        "recent": [r.wire() for r in await svc.recent(RECENT)],
        "totals": _totals(dims["total"].get("", {})),
    }


def _providers(
    state: AppState,
    dims: dict[str, dict[str, dict[str, float]]],
    usage: list[Usage],
    limits: dict[str, dict[str, object]],
    minute_rows: list[Row],
    minute: int,
) -> list[JSON]:
    """Providers with traffic today or something in flight: their totals and headroom."""
    # Providers without a per-minute limit have no exact window: the last two minute buckets.
    recent: dict[str, int] = defaultdict(int)
    for row in minute_rows:
        if row.dim == "provider" and int(row.bucket) >= minute - 1:
            recent[row.key] += int(row.fields.get("requests", 0))
    busy = {u.key for u in usage if "/" not in u.key and (u.active_streams or u.requests_last_minute)}
    out = []
    for pid in sorted((set(dims["provider"]) - {"probe", "none"}) | busy):
        p = state.settings.providers.get(pid)
        lim = limits.get(pid, {})
        out.append(
            {
                "id": pid,
                "display_name": p.display_name if p else pid,
                **_totals(dims["provider"].get(pid, {})),
                "active_streams": lim.get("active_streams", 0),
                "requests_last_minute": lim.get("requests_last_minute", recent.get(pid, 0)),
                "requests_per_minute": p.limits.requests_per_minute if p else None,
                "concurrent_streams": p.limits.concurrent_streams if p else None,
                "today": lim.get("today"),
            }
        )
    return out


def _quotas(
    state: AppState, dims: dict[str, dict[str, dict[str, float]]], limits: dict[str, dict[str, object]]
) -> list[JSON]:
    """Today's use of each daily quota the config can spend: of providers it routes to, and of
    any it used today."""
    routed = {ref.provider for ref in state.settings.routed()} | set(dims["provider"])
    out = []
    for key, entry in sorted(limits.items()):
        today = entry.get("today")
        if isinstance(today, dict) and key.split("/", 1)[0] in routed:
            out.append({"scope": key, **today})
    return out


def _sessions(sessions: dict[str, dict[str, float]]) -> list[JSON]:
    newest = sorted(sessions.items(), key=lambda kv: kv[1].get("last_seen", 0), reverse=True)[:SESSIONS]
    return [
        {
            "session": sid,
            **{k: v for k, v in _totals(f).items() if k != "fallbacks"},
            "last_seen": f.get("last_seen", 0.0),
        }
        for sid, f in newest
    ]


def _doctor(found: dict[str, Finding], now: float) -> list[JSON]:
    """Each model's last fcc doctor verdict, the check it failed, and how old it is."""
    return [
        {"model": model, "verdict": f.verdict, "failing": f.failing, "reason": f.reason, "age": f.age(now)}
        for model, f in sorted(found.items())
    ]


QUOTA_WARNING = 0.9  # a daily quota this far spent is worth a mark in the status line


async def session(state: AppState, sid: str) -> JSON:
    """What fcc statusline shows for one Claude Code session: the route of its last request,
    its tokens today, and whether that route is in trouble (circuit open, quota nearly spent)."""
    svc = state.state
    last = await svc.last(sid)
    today = svc.today()
    rows = [r for r in await svc.days(today, today, ["session"]) if r.key == sid]
    totals = _totals(rows[0].fields) if rows else _totals({})
    warnings: list[str] = []
    route = last.route if last is not None else None
    if route and not route.startswith("probe:"):
        circuit = (await svc.circuits()).get(route)
        if circuit is not None and circuit.get("state") == "open":
            warnings.append(f"circuit open ({circuit.get('last_error')})")
        scopes = {route, route.split("/", 1)[0]}
        for u in await svc.usage_now():
            if u.key not in scopes:
                continue
            for used, limit, what in (
                (u.requests, u.requests_per_day, "requests"),
                (u.tokens, u.tokens_per_day, "tokens"),
            ):
                if limit and used >= QUOTA_WARNING * limit:
                    warnings.append(f"{u.key} {what} quota {used}/{limit} today")
    return {
        "session": sid,
        "last": last.wire() if last is not None else None,
        "today": totals,
        "warnings": warnings,
    }
