"""Where values become bytes: Anthropic error bodies, SSE streams with pings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from fcc.engine.errors import UpstreamError
from fcc.engine.ids import hex_id
from fcc.engine.translate.events import ErrorEvent, Event, MessageStart, Ping, encode

log = logging.getLogger("fcc.server")
TIMEOUT = object()


def request_id() -> str:
    return hex_id("req_fcc")


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
    """Pulls the dispatcher's event batches. The first pull may time out without being
    cancelled (the route handler must answer within a ping interval, and the upstream keeps
    working): it runs in a task. Every later pull runs in the puller's own task, with no
    task, future or timer per batch: a batch costs one wake-up of the response's task."""

    def __init__(
        self, source: AsyncGenerator[list[Event], None], loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self._source = source
        self._pending: asyncio.Future[list[Event]] | None = None
        # The server's loop, handed in: on Python 3.11 each asyncio.get_running_loop() (and
        # every asyncio helper that looks the loop up: ensure_future, wait, current_task) makes
        # a getpid() system call, thirteen per request in all before these were cut.
        self._loop = loop or asyncio.get_running_loop()

    async def first(self, timeout: float) -> Any:
        """The first batch, or TIMEOUT if none came within `timeout` (it is still coming).

        The dispatcher's quick first steps (admission, building the upstream request) run in
        the caller's task, up to its first empty batch (routing/dispatch.py): only the wait
        for the upstream goes to a task of its own. Handed over sooner, they would queue
        behind every request that arrived meanwhile, each holding its parsed body: at 256
        streams, over 200 of them at once."""
        batch = await anext(self._source)
        if batch:
            return batch
        loop = self._loop
        pending = self._pending = loop.create_task(self._next())
        woken = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        pending.add_done_callback(wake)
        timer = loop.call_later(timeout, wake)
        try:
            await woken
        finally:
            timer.cancel()
            pending.remove_done_callback(wake)
        if not pending.done():
            return TIMEOUT
        self._pending = None
        return pending.result()

    async def pull(self) -> list[Event]:
        """The next batch; StopAsyncIteration at the end."""
        if self._pending is not None:
            future, self._pending = self._pending, None
            return await future
        return await self._next()

    async def _next(self) -> list[Event]:
        while True:
            batch = await anext(self._source)
            if batch:  # an empty one only says that waiting begins
                return batch

    async def aclose(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            # The pull finishes its own cleanup (closing the upstream) before the stream ends.
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._pending)
            self._pending = None
        with contextlib.suppress(Exception):
            await self._source.aclose()


# The server's own `send`, kept in the scope by the application (server/app.py): Starlette's
# error handling wraps `send` three times (ServerErrorMiddleware, ExceptionMiddleware and the
# route's request_response), each only to notice the response's start. A streamed answer sends
# its start through those wrappers and every later write straight to the server, three
# coroutine calls a chunk fewer. fcc adds no middleware that reads a response's body.
SERVER_SEND = "fcc.server_send"


class EventStream(StreamingResponse):
    """The SSE stream of a committed answer: one write per batch, a ping when the upstream has
    been silent for `interval` seconds, and an end the moment the client leaves.

    The batches are pulled in the response's own task. Pings come from one timer per
    interval, re-armed from the time of the last write (not one per batch), and go out only
    between writes, so two writes never overlap. A task listening for the client's
    disconnect cancels the stream at once, even while the upstream is silent: its slot
    frees up then, not at the next write. `first` is the first batch or TIMEOUT (then a
    message_start of fcc's own goes first and the upstream's is dropped); `done` runs once,
    however the stream ended."""

    def __init__(
        self,
        first: Any,
        pump: Pump,
        interval: float,
        start: MessageStart,
        headers: Mapping[str, str],
        done: Callable[[], object],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(iter(()), media_type="text/event-stream", headers=dict(headers))
        self._first = first
        self._pump = pump
        self._interval = interval
        self._start = start
        self._done = done
        self._started = False  # a message_start has gone out
        self._writing = False  # a write is under way (a ping must wait)
        self._last = 0.0  # loop time of the last write
        # The server's loop, handed in or looked up once, never per write: on Python 3.11
        # asyncio.get_running_loop() makes a getpid() system call each time (a fork check).
        self._loop = loop or asyncio.get_running_loop()
        self._ping: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._gone = False  # the client left

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task(self._loop)
        assert task is not None
        listener = self._loop.create_task(self._listen(receive, task))
        try:
            await self._stream(send, scope.get(SERVER_SEND, send))
        except asyncio.CancelledError:
            if not self._gone:
                raise  # the server is shutting down
            task.uncancel()  # the client left: the stream ended, nothing failed
        finally:
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener

    async def _listen(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._gone = True
        task.cancel()

    async def _stream(self, start: Send, send: Send) -> None:
        loop = self._loop
        try:
            await start(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            self._last = loop.time()
            self._timer = loop.call_at(self._last + self._interval, self._tick, send)
            item = self._first
            while True:
                if item is TIMEOUT:
                    await self._write(send, self._ping_bytes())
                else:
                    await self._write(send, self._batch_bytes(item))
                try:
                    item = await self._pump.pull()
                except StopAsyncIteration:
                    break
                except UpstreamError as exc:
                    await self._write(send, encode(ErrorEvent(exc.error_type, str(exc))))
                    break
                except Exception:
                    log.exception("stream failed")
                    failed = ErrorEvent("api_error", "fcc failed while streaming this answer; see its log")
                    await self._write(send, encode(failed))
                    break
            await self._write(send, b"", more=False)
        finally:
            if self._timer is not None:
                self._timer.cancel()
            if self._ping is not None:
                self._ping.cancel()
            await self._pump.aclose()
            self._done()

    def _batch_bytes(self, batch: list[Event]) -> bytes:
        out = []
        for event in batch:
            if isinstance(event, MessageStart):
                if self._started:
                    continue
                self._started = True
            out.append(encode(event))
        return b"".join(out)

    def _ping_bytes(self) -> bytes:
        if self._started:
            return encode(Ping())
        self._started = True
        return encode(self._start) + encode(Ping())

    async def _write(self, send: Send, body: bytes, more: bool = True) -> None:
        if self._ping is not None:
            ping, self._ping = self._ping, None
            with contextlib.suppress(Exception):
                await ping
        await self._send(send, body, more)

    async def _send(self, send: Send, body: bytes, more: bool = True) -> None:
        """One write; while it is under way no ping starts, and the next is due an interval after it."""
        self._writing = True
        try:
            await send({"type": "http.response.body", "body": body, "more_body": more})
        finally:
            self._writing = False
            self._last = self._loop.time()

    def _tick(self, send: Send) -> None:
        loop = self._loop
        due = self._last + self._interval
        if loop.time() >= due and not self._writing and self._ping is None:
            self._ping = loop.create_task(self._write_ping(send))
            due = loop.time() + self._interval
        self._timer = loop.call_at(max(due, loop.time() + 0.001), self._tick, send)

    async def _write_ping(self, send: Send) -> None:
        try:
            await self._send(send, self._ping_bytes())
        finally:
            self._ping = None
