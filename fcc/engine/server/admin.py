"""What fcc shows about itself: /health, /metrics, /dashboard (loopback, or the token)."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from fcc import __version__
from fcc.engine.server import snapshot
from fcc.engine.server.edge import error_response
from fcc.engine.server.state import deny, is_loopback, state_of, token_ok

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
    return JSONResponse(
        {"name": "fcc", "version": __version__, "dashboard": "/dashboard", "pid": os.getpid()}
    )


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
            "fcc's operator pages (dashboard, /metrics, /admin) answer only on this machine, "
            "or with fcc's auth token",
        )
    return deny()


async def health(request: Request) -> Response:
    if not token_ok(request):
        return deny()
    body = await snapshot.health(state_of(request))
    body["pid"] = os.getpid()  # which process answers: fcc claude tells its own server from another
    return JSONResponse(body)


async def session(request: Request) -> Response:
    if not token_ok(request):
        return deny()
    sid = request.path_params["session"][:64]
    return JSONResponse(await snapshot.session(state_of(request), sid), headers={"cache-control": "no-store"})


async def reload(request: Request) -> Response:
    """POST /admin/reload: read config.yaml, keys.env and the probes again (loopback or token)."""
    if not _admin_ok(request):
        return _admin_denied(request)
    result = await request.app.state.reload("POST /admin/reload")
    return JSONResponse(result.wire(), status_code=200 if result.ok else 422)


async def metrics(request: Request) -> Response:
    if not _admin_ok(request):
        return _admin_denied(request)
    text = await snapshot.metrics(state_of(request))
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


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
    return JSONResponse(await snapshot.dashboard(state_of(request)), headers={"cache-control": "no-store"})
