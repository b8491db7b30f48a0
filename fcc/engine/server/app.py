"""`create_app(settings)`: the Starlette application fcc serves."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from fcc.engine.catalog.config import Settings
from fcc.engine.catalog.secrets import ENV_FILE_NAME, KeyStore
from fcc.engine.errors import ClientError, FccError
from fcc.engine.routing.runtime import running
from fcc.engine.server import admin, messages
from fcc.engine.server.edge import SERVER_SEND, error_response
from fcc.engine.server.reload import Source, reload
from fcc.engine.server.reload import watch as watch_documents
from fcc.engine.server.state import AppState
from fcc.engine.state import backend_for
from fcc.engine.state.records import JsonLines
from fcc.engine.state.service import StateService
from fcc.engine.state.store import Backend

log = logging.getLogger("fcc.server")


def create_app(
    settings: Settings,
    keys: KeyStore | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    store: Backend | None = None,
    doctor: bool = False,
    source: Source | None = None,
    watch: float | None = None,
) -> Starlette:
    """`store`: a backend to use instead of the one settings.state names (tests). `doctor`:
    examine every routed model in the background once serving (fcc serve --doctor).
    `source`: where the settings came from, so SIGHUP and POST /admin/reload can read them
    again; `watch`: also when the documents change, looking every `watch` seconds."""
    server = settings.server
    service = StateService(
        store or backend_for(settings.state),
        settings.providers,
        retention_days=settings.state.retention_days,
        request_log=JsonLines(server.request_log, server.request_log_max_bytes)
        if server.request_log
        else None,
    )
    state = AppState(
        settings=settings,
        keys=keys or KeyStore(settings.config_dir / ENV_FILE_NAME),
        state=service,
    )
    state.use(settings, state.keys)  # the one place what is served is set, as on reload
    origin = source or Source(
        Path(settings.config_path) if settings.config_path else None, keys_from_file=keys is None
    )
    app_reload = functools.partial(reload, state, origin)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running(state.keys, service, transport, tls=_uses_tls(state.settings)) as dispatcher:
            state.dispatcher = dispatcher
            state.loop = asyncio.get_running_loop()
            await state.learn()
            jobs = [asyncio.create_task(_keep_learning(state))]
            if doctor:
                jobs.append(asyncio.create_task(_run_doctor(state)))
            if watch:
                jobs.append(asyncio.create_task(watch_documents(state, origin, watch)))

            async def on_sighup() -> None:
                await app_reload("SIGHUP")

            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                # Only where fcc runs the event loop in its main thread (fcc serve, not a test).
                state.loop.add_signal_handler(
                    signal.SIGHUP, lambda: jobs.append(asyncio.create_task(on_sighup()))
                )
            try:
                yield
            finally:
                for job in jobs:
                    job.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)
                state.dispatcher = None

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
    app = _App(
        routes=[
            Route("/v1/messages", messages.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", messages.count, methods=["POST"]),
            Route("/v1/models", messages.models, methods=["GET"]),
            Route("/", admin.hello, methods=["GET", "HEAD"]),
            Route("/api/hello", admin.hello, methods=["GET", "HEAD"]),
            Route("/health", admin.health, methods=["GET"]),
            Route("/admin/reload", admin.reload, methods=["POST"]),
            Route("/session/{session}", admin.session, methods=["GET"]),
            Route("/metrics", admin.metrics, methods=["GET"]),
            Route("/dashboard", admin.dashboard, methods=["GET"]),
            Route("/dashboard/data", admin.dashboard_data, methods=["GET"]),
            Route("/dashboard/{asset}", admin.dashboard, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers=handlers,
    )
    app.state.fcc = state  # the routes' shared state; tests read health and limits from it
    app.state.reload = app_reload
    return app


class _App(Starlette):
    """Starlette, with two things of fcc's own. The server's own `send` is kept in each
    request's scope, for the streamed answers' writes (SERVER_SEND in server/edge.py). And
    POST /v1/messages, every turn Claude Code sends, goes straight to its handler: not through
    Starlette's two error middlewares, its router and the route's own error wrapper (two
    Request objects, four closures and a regex match per turn, about 50 µs at one stream),
    with the same answers to the same errors (the application's handlers, looked up as
    Starlette does). fcc adds no middleware; one added to this application would not see
    the turns."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SERVER_SEND] = send
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/messages":
            await self._turn(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _turn(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        request = Request(scope, receive, send)
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            response = await messages.messages(request)
            await response(scope, receive, sending)
        except Exception as exc:
            if started:
                raise  # the answer is under way: the server ends the connection
            handlers = self.exception_handlers
            handler = next(handlers[kind] for kind in type(exc).__mro__ if kind in handlers)
            answer = await handler(request, exc)
            await answer(scope, receive, send)


LEARN_EVERY = 15.0  # seconds between reads of the doctor's results (another process may write them)


def _uses_tls(settings: Settings) -> bool:
    """Whether a routed provider may be reached over HTTPS (a base_url that is a ${VAR} may be)."""
    providers = {ref.provider for ref in settings.routed()}
    return any(
        not settings.providers[p].base_url.startswith("http://") for p in providers if p in settings.providers
    )


async def _keep_learning(state: AppState) -> None:
    while True:
        await asyncio.sleep(LEARN_EVERY)
        try:
            await state.learn()
        except FccError as exc:
            log.warning("cannot read the doctor's results: %s", exc)


async def _run_doctor(state: AppState) -> None:
    from fcc.commands.doctor import Doctor, claude_code_tools, run, targets

    assert state.dispatcher is not None
    refs = targets(state.settings, [], None)
    log.info("fcc doctor: examining %d models in the background", len(refs))
    try:
        reports = await run(Doctor(state.dispatcher, state.state, state.settings, claude_code_tools()), refs)
    except Exception:
        log.exception("fcc doctor stopped")
        return
    await state.learn()
    for r in reports:
        failing = f" ({r.failing}: {r.checks[r.failing].detail})" if r.failing else ""
        log.info("fcc doctor: %s %s%s", r.model, r.verdict, failing)
