"""Where values become bytes: Anthropic error bodies, SSE streams with pings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from fcc.engine.errors import UpstreamError
from fcc.engine.translate.events import ErrorEvent, Event, MessageStart, Ping, Usage, encode

log = logging.getLogger("fcc.server")
TIMEOUT = object()


def request_id() -> str:
    return "req_fcc" + secrets.token_hex(12)


def error_response(
    status: int,
    error_type: str,
    message: str,
    *,
    retry_after: float | None = None,
    should_retry: bool | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    rid = request_id()
    out = {"request-id": rid, **(headers or {})}
    if retry_after is not None:
        out["retry-after"] = str(max(1, round(retry_after)))
    if should_retry is not None:
        out["x-should-retry"] = "true" if should_retry else "false"
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": rid}
    return JSONResponse(body, status_code=status, headers=out)


def upstream_error_response(exc: UpstreamError, headers: dict[str, str] | None = None) -> JSONResponse:
    return error_response(
        exc.status,
        exc.error_type,
        str(exc),
        retry_after=exc.retry_after,
        should_retry=exc.should_retry,
        headers=headers,
    )


class SSEResponse(StreamingResponse):
    """A stream that notices its client leaving at once, not at its next write.

    For ASGI 2.4 servers Starlette only learns of a disconnect when a write fails; a silent
    upstream (a reasoning model, a slow local one) would keep generating, and hold its
    concurrency slot, until the next ping. Starlette's listening branch cancels the stream
    the moment the client goes; it is chosen by the scope's spec version."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asgi = {**scope.get("asgi", {}), "spec_version": "2.3"}
        await super().__call__({**scope, "asgi": asgi}, receive, send)


class Pump:
    """Pulls an async iterator one item at a time, with a deadline that does not cancel the
    pending pull: a ping can go out while the upstream keeps working."""

    def __init__(self, source: AsyncGenerator[list[Event], None]) -> None:
        self._source = source
        self._pending: asyncio.Future[list[Event]] | None = None

    async def next(self, timeout: float | None) -> Any:
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._source))
        done, _ = await asyncio.wait({self._pending}, timeout=timeout)
        if not done:
            return TIMEOUT
        future, self._pending = self._pending, None
        return future.result()

    async def aclose(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            # Shielded: when the client has gone, this runs in a cancelled scope that keeps
            # cancelling whatever it awaits, which would cut the upstream's own close short
            # (the connection stayed open, generating). The pull finishes its cleanup alone.
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._pending)
            self._pending = None
        with contextlib.suppress(Exception):
            await self._source.aclose()


async def sse_body(
    first: Any, pump: Pump, interval: float, message_id: str, model: str, estimate: int
) -> AsyncIterator[bytes]:
    """The SSE bytes of a committed stream, one write per batch. `first` is the first batch or
    TIMEOUT (then a message_start of our own goes first, and the upstream's is dropped)."""
    started = False
    try:
        item = first
        while True:
            if item is TIMEOUT:
                if not started:
                    yield encode(MessageStart(message_id, model, Usage(estimate, 1)))
                    started = True
                yield encode(Ping())
            else:
                out = []
                for event in item:
                    if isinstance(event, MessageStart):
                        if started:
                            continue
                        started = True
                    out.append(encode(event))
                yield b"".join(out)
            try:
                item = await pump.next(interval)
            except StopAsyncIteration:
                return
            except UpstreamError as exc:
                yield encode(ErrorEvent(exc.error_type, str(exc)))
                return
            except Exception:
                log.exception("stream failed")
                yield encode(ErrorEvent("api_error", "fcc failed while streaming this answer; see its log"))
                return
    finally:
        await pump.aclose()
