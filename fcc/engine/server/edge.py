"""Where values become bytes: Anthropic error bodies, SSE streams with pings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse

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


class Pump:
    """Pulls an async iterator one item at a time, with a deadline that does not cancel the
    pending pull: a ping can go out while the upstream keeps working."""

    def __init__(self, source: AsyncIterator[Event]) -> None:
        self._source = source
        self._pending: asyncio.Future[Event] | None = None

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
            with contextlib.suppress(BaseException):
                await self._pending
            self._pending = None
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def sse_body(
    first: Any, pump: Pump, interval: float, message_id: str, model: str, estimate: int
) -> AsyncIterator[bytes]:
    """The SSE bytes of a committed stream. `first` is the first event or TIMEOUT (then a
    message_start of our own goes first, and the upstream's is dropped when it comes)."""
    started = False
    try:
        item = first
        while True:
            if item is TIMEOUT:
                if not started:
                    yield encode(MessageStart(message_id, model, Usage(estimate, 1)))
                    started = True
                yield encode(Ping())
            elif isinstance(item, MessageStart):
                if not started:
                    started = True
                    yield encode(item)
            else:
                yield encode(item)
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
