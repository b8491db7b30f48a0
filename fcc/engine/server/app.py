"""`create_app(settings)`: the Starlette application fcc serves."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fcc import __version__
from fcc.engine.config import Settings
from fcc.engine.dispatch import Dispatcher, TurnRecord, new_message_id
from fcc.engine.dispatch import Request as TurnRequest
from fcc.engine.errors import ClientError, FccError, UpstreamError
from fcc.engine.probes import Probe, answer_events, find_probe
from fcc.engine.router import resolve
from fcc.engine.secrets import ENV_FILE_NAME, KeyStore
from fcc.engine.server.edge import (
    TIMEOUT,
    Pump,
    error_response,
    request_id,
    sse_body,
    upstream_error_response,
)
from fcc.engine.translate.events import MessageAccumulator, encode
from fcc.engine.translate.tokens import count_tokens, estimate_from_size
from fcc.engine.transports import TRANSPORTS
from fcc.engine.types import JSON

log = logging.getLogger("fcc.request")
_MODELS_CREATED = "2026-01-01T00:00:00Z"


@dataclass(slots=True)
class AppState:
    settings: Settings
    keys: KeyStore
    dispatcher: Dispatcher | None = None
    loop: asyncio.AbstractEventLoop | None = None


def model_aliases(settings: Settings) -> list[JSON]:
    """One claude-shaped id per tier, so Claude Code's gateway model discovery keeps them."""
    out = []
    for tier, spec in settings.tiers.items():
        provider = settings.providers[spec.target.provider]
        info = provider.model(spec.target.model)
        entry: JSON = {
            "type": "model",
            "id": f"claude-{tier}-fcc",
            "display_name": f"{tier.capitalize()} → {spec.target}",
            "created_at": _MODELS_CREATED,
        }
        if info is not None and info.context_window:
            entry["max_input_tokens"] = info.context_window
        cap = provider.output_cap(spec.target.model)
        if cap:
            entry["max_tokens"] = cap
        out.append(entry)
    return out


def create_app(
    settings: Settings, keys: KeyStore | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    state = AppState(settings, keys or KeyStore(settings.config_dir / ENV_FILE_NAME))
    server = settings.server
    active_probes = settings.active_probes

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Timeouts are enforced per provider in the transport loop; redirects are never
        # followed, so an upstream cannot send fcc (and a key) to another host.
        async with httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(None, connect=30.0),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
            trust_env=False,
        ) as client:
            adapters = {name: factory() for name, factory in TRANSPORTS.items()}
            state.dispatcher = Dispatcher(client, adapters, state.keys)
            state.loop = asyncio.get_running_loop()
            yield
            state.dispatcher = None

    def authorized(request: Request) -> bool:
        token = server.auth_token
        if not token:
            return True
        presented = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if auth[:7].lower() == "bearer ":
            presented = presented or auth[7:].strip()
        return hmac.compare_digest(presented.encode(), token.encode())

    def deny() -> Response:
        return error_response(
            401,
            "authentication_error",
            "invalid or missing token: set ANTHROPIC_AUTH_TOKEN to fcc's server.auth_token",
            should_retry=False,
        )

    async def read_json(request: Request) -> tuple[JSON, int]:
        limit = server.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ClientError(
                f"request body is larger than {limit // (1024 * 1024)} MB", 413, "request_too_large"
            )
        raw = bytearray()
        async for piece in request.stream():
            raw += piece
            if len(raw) > limit:
                raise ClientError(
                    f"request body is larger than {limit // (1024 * 1024)} MB", 413, "request_too_large"
                )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClientError(f"request body is not UTF-8 text (bad byte at offset {exc.start})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClientError(
                f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        if not isinstance(data, dict):
            raise ClientError("request body must be a JSON object")
        return data, len(raw)

    def require_messages(body: JSON, *, need_max_tokens: bool) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ClientError("model: required, a string such as claude-sonnet-4-5")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ClientError("messages: required, a non-empty list of {role, content}")
        if need_max_tokens:
            mt = body.get("max_tokens")
            if isinstance(mt, bool) or not isinstance(mt, int) or mt < 0:
                raise ClientError("max_tokens: required, a non-negative integer")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise ClientError("stream: must be true or false")

    async def messages(request: Request) -> Response:
        if not authorized(request):
            return deny()
        body, size = await read_json(request)
        require_messages(body, need_max_tokens=True)
        route = resolve(body["model"], settings)
        record = TurnRecord(requested=body["model"], tier=route.tier)
        estimate = estimate_from_size(size)
        probe = find_probe(active_probes, body, route.tier)
        if probe is not None:
            return _probe_answer(probe, body, estimate, record)
        turn = TurnRequest(
            body,
            route,
            estimate,
            request.headers.get("anthropic-beta"),
            request.headers.get("anthropic-version"),
        )
        assert state.dispatcher is not None
        pump = Pump(state.dispatcher.events(turn, record))
        headers = {"request-id": request_id(), "x-fcc-route": route.primary.label}
        if not body.get("stream"):
            return await _whole(pump, record, headers)
        try:
            first = await pump.next(server.ping_interval)
        except StopAsyncIteration:
            await pump.aclose()
            _log(record, 502)
            return error_response(502, "api_error", "the upstream ended without answering")
        except UpstreamError as exc:
            await pump.aclose()
            _log(record, exc.status)
            return upstream_error_response(exc, headers)
        if first is not TIMEOUT and record.served_by:
            headers["x-fcc-route"] = record.served_by
        stream = sse_body(first, pump, server.ping_interval, new_message_id(), body["model"], estimate)
        headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
        return StreamingResponse(_logged(stream, record), media_type="text/event-stream", headers=headers)

    def _probe_answer(probe: Probe, body: JSON, estimate: int, record: TurnRecord) -> Response:
        # Busywork answered here: no upstream call, no rate-limited request spent.
        events = answer_events(probe, body, new_message_id(), estimate)
        record.probe = probe.name
        record.served_by = f"probe:{probe.name}"
        for event in events:
            record.note(event)
        headers = {
            "request-id": request_id(),
            "x-fcc-probe": probe.name,
            "x-fcc-route": f"probe:{probe.name}",
        }
        _log(record, 200)
        if body.get("stream"):
            payload = b"".join(encode(e) for e in events)
            return Response(
                payload, media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"}
            )
        acc = MessageAccumulator()
        for event in events:
            acc.feed(event)
        return JSONResponse(acc.result(), headers=headers)

    async def _whole(pump: Pump, record: TurnRecord, headers: dict[str, str]) -> Response:
        acc = MessageAccumulator()
        try:
            while True:
                acc.feed(await pump.next(None))
        except StopAsyncIteration:
            pass
        except UpstreamError as exc:
            _log(record, exc.status)
            return upstream_error_response(exc, headers)
        finally:
            await pump.aclose()
        if acc.error is not None:
            _log(record, 500)
            status = 529 if acc.error.error_type == "overloaded_error" else 500
            return error_response(status, acc.error.error_type, acc.error.message, headers=headers)
        if record.served_by:
            headers["x-fcc-route"] = record.served_by
        _log(record, 200)
        return JSONResponse(acc.result(), headers=headers)

    async def _logged(stream: AsyncIterator[bytes], record: TurnRecord) -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                yield chunk
        finally:
            _log(record, record.status)

    def _log(record: TurnRecord, status: int) -> None:
        ttft = record.ttft_ms()
        duration = (time.perf_counter() - record.started) * 1000
        tried = f" tried={','.join(record.attempts)}" if len(record.attempts) > 1 else ""
        log.info(
            "%s → %s %s %d ttft=%s dur=%.0fms in=%d out=%d cached=%d%s%s",
            record.requested,
            record.tier or "direct",
            record.served_by or (record.attempts[-1] if record.attempts else "-"),
            status,
            f"{ttft:.0f}ms" if ttft is not None else "-",
            duration,
            record.input_tokens,
            record.output_tokens,
            record.cached_tokens,
            tried,
            f" error={record.error_type}" if record.error_type else "",
        )

    async def count(request: Request) -> Response:
        if not authorized(request):
            return deny()
        body, _ = await read_json(request)
        require_messages(body, need_max_tokens=False)
        return JSONResponse({"input_tokens": count_tokens(body)})

    async def models(request: Request) -> Response:
        if not authorized(request):
            return deny()
        data = model_aliases(settings)
        return JSONResponse(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def hello(request: Request) -> Response:
        # Claude Code preconnects with HEAD / and HEAD /api/hello: answer at once, no auth.
        if request.method == "HEAD":
            return Response(status_code=200)
        return JSONResponse({"name": "fcc", "version": __version__})

    async def health(request: Request) -> Response:
        if not authorized(request):
            return deny()
        tiers = {t: str(r.target) for t, r in settings.tiers.items()}
        body: JSON = {"status": "ok", "version": __version__, "tiers": tiers}
        if state.dispatcher is not None:
            body["candidates"] = state.dispatcher.health.snapshot()
            body["providers"] = state.dispatcher.limits.snapshot()
        return JSONResponse(body)

    async def on_client_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ClientError)
        return error_response(exc.status, exc.error_type, str(exc))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_response(404, "not_found_error", f"{request.url.path}: no such endpoint")
        if exc.status_code == 405:
            return error_response(
                405, "invalid_request_error", f"{request.method} is not allowed on {request.url.path}"
            )
        return error_response(exc.status_code, "invalid_request_error", str(exc.detail))

    async def on_fcc_error(request: Request, exc: Exception) -> Response:
        return error_response(500, "api_error", str(exc), should_retry=False)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s", request.url.path, exc_info=exc)
        return error_response(500, "api_error", "fcc hit an internal error; see its log")

    handlers: dict[Any, Any] = {
        ClientError: on_client_error,
        HTTPException: on_http_error,
        FccError: on_fcc_error,
        Exception: on_crash,
    }
    app = Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/", hello, methods=["GET", "HEAD"]),
            Route("/api/hello", hello, methods=["GET", "HEAD"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers=handlers,
    )
    app.state.fcc = state  # for tests and the dashboard: the live health and limits
    return app
