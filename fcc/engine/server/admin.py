"""What fcc shows about itself: /health, /metrics, /dashboard (loopback, or the token)."""

from __future__ import annotations

import hmac
import time
from dataclasses import asdict
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from fcc import __version__
from fcc.commands.models import rule_rows, tier_rows
from fcc.engine.server.edge import error_response
from fcc.engine.server.state import AppState, deny, is_loopback, state_of, token_ok
from fcc.engine.types import JSON

STATIC = Path(__file__).resolve().parent / "static"
# The dashboard's files, by URL name: nothing else under /dashboard/ is ever read from disk.
ASSETS = {"": "dashboard.html", "dashboard.js": "dashboard.js", "dashboard.css": "dashboard.css"}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


async def hello(request: Request) -> Response:
    # Claude Code preconnects with HEAD / and HEAD /api/hello: answer at once, no auth.
    if request.method == "HEAD":
        return Response(status_code=200)
    return JSONResponse({"name": "fcc", "version": __version__, "dashboard": "/dashboard"})


def _admin_ok(request: Request) -> bool:
    """Operator pages answer on this machine; elsewhere only to fcc's token (as a header, or
    ?token= so a browser can open the dashboard)."""
    if is_loopback(request):
        return True
    token = state_of(request).settings.server.auth_token
    if not token:
        return False
    given = request.query_params.get("token", "")
    return token_ok(request) or (bool(given) and hmac.compare_digest(given.encode(), token.encode()))


def _admin_denied(request: Request) -> Response:
    if not is_loopback(request):
        return error_response(
            403,
            "permission_error",
            "the dashboard and /metrics answer only on this machine, or with fcc's auth token",
        )
    return deny()


async def health(request: Request) -> Response:
    if not token_ok(request):
        return deny()
    state = state_of(request)
    tiers = {t: str(r.target) for t, r in state.settings.tiers.items()}
    body: JSON = {"status": "ok", "version": __version__, "tiers": tiers}
    if state.dispatcher is not None:
        body["candidates"] = state.dispatcher.health.snapshot()
        body["providers"] = state.dispatcher.limits.snapshot()
    return JSONResponse(body)


async def metrics(request: Request) -> Response:
    if not _admin_ok(request):
        return _admin_denied(request)
    state = state_of(request)
    health_now = state.dispatcher.health.snapshot() if state.dispatcher else {}
    limits_now = state.dispatcher.limits.snapshot() if state.dispatcher else {}
    return PlainTextResponse(
        state.metrics.render(health_now, limits_now), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


async def dashboard(request: Request) -> Response:
    if not _admin_ok(request):
        return _admin_denied(request)
    name = ASSETS.get(request.path_params.get("asset", ""))
    if name is None or not (STATIC / name).is_file():
        return error_response(404, "not_found_error", f"{request.url.path}: no such dashboard file")
    path = STATIC / name
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"cache-control": "no-cache"})


async def dashboard_data(request: Request) -> Response:
    if not _admin_ok(request):
        return _admin_denied(request)
    return JSONResponse(snapshot(state_of(request)), headers={"cache-control": "no-store"})


def snapshot(state: AppState) -> JSON:
    """Everything the dashboard draws, in one JSON object (see static/dashboard.js)."""
    log = state.requests
    health_now = state.dispatcher.health.snapshot() if state.dispatcher else {}
    limits_now = state.dispatcher.limits.snapshot() if state.dispatcher else {}
    providers = []
    for pid in sorted(set(log.providers) | set(limits_now)):
        t = log.providers.get(pid)
        lim = limits_now.get(pid, {})
        p = state.settings.providers.get(pid)
        providers.append(
            {
                "id": pid,
                "display_name": p.display_name if p else pid,
                "requests": t.requests if t else 0,
                "errors": t.errors if t else 0,
                "input_tokens": t.input_tokens if t else 0,
                "output_tokens": t.output_tokens if t else 0,
                "cached_tokens": t.cached_tokens if t else 0,
                "active_streams": lim.get("active_streams", 0),
                "requests_last_minute": lim.get("requests_last_minute", 0),
                "requests_per_minute": lim.get("requests_per_minute")
                or (p.limits.requests_per_minute if p else None),
                "concurrent_streams": lim.get("concurrent_streams")
                or (p.limits.concurrent_streams if p else None),
            }
        )
    sessions = sorted(log.sessions.items(), key=lambda kv: kv[1].last_seen, reverse=True)
    return {
        "version": __version__,
        "uptime_s": round(time.time() - log.started, 1),
        "now": time.time(),
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
        "providers": providers,
        "health": [{"candidate": k, **v} for k, v in health_now.items()],
        "sessions": [
            {
                "session": sid,
                "requests": t.requests,
                "errors": t.errors,
                "input_tokens": t.input_tokens,
                "output_tokens": t.output_tokens,
                "cached_tokens": t.cached_tokens,
                "probes": t.probes,
                "last_seen": t.last_seen,
            }
            for sid, t in sessions
        ],
        "series": log.series(),
        "probes": {
            "answered": log.totals.probes,
            "by_name": dict(log.probes),
            "active": [p.name for p in state.probes],
        },
        "routes": [asdict(r) for r in rule_rows(state.settings)],
        "rules": dict(log.rules),
        "skipped": dict(log.skipped),
        "recent": [r.wire() for r in reversed(log.recent)][:100],
        "totals": {
            "requests": log.totals.requests,
            "errors": log.totals.errors,
            "input_tokens": log.totals.input_tokens,
            "output_tokens": log.totals.output_tokens,
            "cached_tokens": log.totals.cached_tokens,
            "probes": log.totals.probes,
            "fallbacks": log.totals.fallbacks,
        },
    }
