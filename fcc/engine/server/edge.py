"""Where values become bytes: Anthropic error bodies, SSE streams with pings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Protocol

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from fcc.engine.errors import UpstreamError
from fcc.engine.ids import hex_id
from fcc.engine.translate.events import ErrorEvent, Event, MessageStart, Ping, encode

log = logging.getLogger("fcc.server")


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
    """Pulls the dispatcher's event batches, each in the puller's own task: no task, future
    or timer per batch, so a batch costs one wake-up of the task that writes it."""

    def __init__(self, source: AsyncGenerator[list[Event], None]) -> None:
        self._source = source

    async def begin(self) -> list[Event]:
        """The first batch, after the dispatcher's quick first steps (admission, the upstream
        request built and, where it can be at once, written): [] when what is left is the
        wait for the upstream (routing/dispatch.py). The caller sets up its answer then."""
        return await anext(self._source)

    async def pull(self) -> list[Event]:
        """The next batch; StopAsyncIteration at the end."""
        while True:
            batch = await anext(self._source)
            if batch:  # an empty one only says that waiting begins
                return batch

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._source.aclose()


class Answer(Protocol):
    """What a streamed answer asks of the request it answers, at the moment it needs it."""

    def headers(self) -> Mapping[str, str]:
        """The response's headers, when it commits to a status of 200."""

    def refused(self, exc: UpstreamError | None) -> Response:
        """The HTTP error to answer with instead, nothing having been written yet: `exc`, or
        None if the upstream ended without a word. The request is over when this returns."""

    def done(self, status: int | None) -> None:
        """The stream has ended, however it ended: with `status` if it failed before it was
        committed (fcc's own error), else with the request's own."""


# The server's own `send`, kept in the scope by the application (server/app.py): Starlette's
# error handling wraps `send` three times (ServerErrorMiddleware, ExceptionMiddleware and the
# route's request_response), each only to notice the response's start. A streamed answer sends
# its start through those wrappers and every later write straight to the server, three
# coroutine calls a chunk fewer. fcc adds no middleware that reads a response's body.
SERVER_SEND = "fcc.server_send"


class EventStream(StreamingResponse):
    """The SSE answer to a streamed request, set up while the upstream is still thinking: it
    commits to 200 with the first content (one write of the head, one of the events) or, if
    the upstream stays silent for `interval` seconds, with a message_start of fcc's own and a
    ping (the upstream's is then dropped). An upstream that refuses or fails before either
    gets the HTTP error instead (another candidate has had its turn by then: routing/
    dispatch.py). After that: one write per batch, a ping when the upstream has been silent
    for `interval` seconds, and an end the moment the client leaves.

    The batches are pulled in the response's own task, the one the route handler ran in: the
    first content wakes that task and nothing else. Pings come from one timer per interval,
    re-armed from the time of the last write (not one per batch), and go out only between
    writes, so two writes never overlap. A task listening for the client's disconnect
    cancels the stream at once, even while the upstream is silent: its slot frees up then,
    not at the next write. `first` is the dispatcher's first batch (Pump.begin)."""

    def __init__(
        self,
        first: list[Event],
        pump: Pump,
        interval: float,
        start: MessageStart,
        answer: Answer,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(iter(()), media_type="text/event-stream")
        self._first = first
        self._pump = pump
        self._interval = interval
        self._start = start
        self._answer = answer
        self._head: Send | None = None  # the send the response's start goes through
        self._committed = False  # the start (status 200) has gone out
        self._refused = False  # an HTTP error went out instead
        self._crashed = False  # fcc failed before anything was written
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
        self._head = send
        try:
            await self._stream(scope, receive, scope.get(SERVER_SEND, send))
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

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = self._loop
        try:
            self._last = loop.time()
            self._timer = loop.call_at(self._last + self._interval, self._tick, send)
            item = self._first
            while True:
                if item:
                    await self._write(send, self._batch_bytes(item))
                try:
                    item = await self._pump.pull()
                except StopAsyncIteration:
                    if await self._refuse(scope, receive, None):
                        return
                    break
                except UpstreamError as exc:
                    if await self._refuse(scope, receive, exc):
                        return
                    await self._write(send, encode(ErrorEvent(exc.error_type, str(exc))))
                    break
                except Exception:
                    if not await self._committing():
                        self._crashed = True
                        raise  # nothing written yet: the server's own error answer (a 500)
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
            if not self._refused:
                self._answer.done(500 if self._crashed else None)

    async def _committing(self) -> bool:
        """Whether the stream has committed to 200, once any ping under way has gone out."""
        await self._ping_out()
        return self._committed

    async def _ping_out(self) -> None:
        """Until a ping under way has gone out (or failed): two writes never overlap."""
        if self._ping is not None:
            ping, self._ping = self._ping, None
            with contextlib.suppress(Exception):
                await ping

    async def _refuse(self, scope: Scope, receive: Receive, exc: UpstreamError | None) -> bool:
        """The HTTP error instead of the stream, if nothing has been written yet."""
        if await self._committing():
            return False
        self._refused = True
        if self._timer is not None:
            self._timer.cancel()  # no ping may start the stream now
        assert self._head is not None
        await self._answer.refused(exc)(scope, receive, self._head)
        return True

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
        await self._ping_out()
        await self._send(send, body, more)

    async def _send(self, send: Send, body: bytes, more: bool = True) -> None:
        """One write, after the response's start if it is the first; while it is under way no
        ping starts, and the next is due an interval after it."""
        self._writing = True
        try:
            if not self._committed:
                self._committed = True
                self.init_headers(self._answer.headers())
                assert self._head is not None
                # Through Starlette's error handling, which must know the answer has begun;
                # every write after it goes straight to the server (SERVER_SEND).
                await self._head(
                    {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
                )
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
