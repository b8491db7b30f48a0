"""The one place fcc talks HTTP to an upstream: send, check status, decode SSE, translate.

Adapters stay pure; this loop owns timeouts and connection errors. Before the upstream has
answered, failures raise UpstreamError (the caller may fall back or answer with an HTTP
error); after, they become the translator's error event, so the stream still obeys the
grammar.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Mapping
from typing import Any, Protocol, TypeVar

import httpx

from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.errors import UpstreamError
from fcc.engine.translate import toollist
from fcc.engine.translate.events import Event
from fcc.engine.translate.sse import SSEDecoder, SSEMessage
from fcc.engine.translate.upstream_errors import classify, upstream_message
from fcc.engine.transports.base import Adapter, StreamTranslator, Turn

_MAX_ERROR_BODY = 64 * 1024
log = logging.getLogger("fcc.upstream")
T = TypeVar("T")


def who(turn: Turn) -> str:
    return f"{turn.provider.display_name} ({turn.provider.id}/{turn.model})"


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class Silence:
    """The idle limit of one stream, with one timer for its whole life instead of one per
    chunk: the timer fires `seconds` after the last chunk began to be awaited and re-arms
    itself if a chunk came since. It cancels only a wait for the upstream (never a write to
    the client, which is not the upstream's silence), in whichever task is waiting: the
    stream's first pull and the later ones run in different tasks."""

    def __init__(self, seconds: float, loop: asyncio.AbstractEventLoop) -> None:
        self._seconds = seconds
        self._loop = loop
        self._since = self._loop.time()  # when the current wait began
        self._waiting: asyncio.Task[Any] | None = None
        self._fired = False
        self._timer = self._loop.call_at(self._since + seconds, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        due = self._since + self._seconds
        if self._waiting is None:  # writing to the client: the upstream is not being silent
            due = now + self._seconds
        elif now >= due:
            self._fired = True
            self._waiting.cancel()
            return
        self._timer = self._loop.call_at(due, self._check)

    async def wait(self, pending: Awaitable[T]) -> T:
        """`pending`'s result; TimeoutError if the upstream stays silent too long."""
        self._since = self._loop.time()
        self._waiting = asyncio.current_task(self._loop)  # no getpid() call, unlike current_task()
        try:
            return await pending
        except asyncio.CancelledError:
            if self._fired and self._waiting is not None:
                self._waiting.uncancel()
                raise TimeoutError from None
            raise
        finally:
            self._waiting = None

    def close(self) -> None:
        self._timer.cancel()


class Pending(Protocol):
    """An upstream answer's head to await, or to `close()` if it never will be."""

    def __await__(self) -> Generator[Any, None, httpx.Response]: ...

    def close(self) -> None: ...


class Sender:
    """fcc's upstream requests as httpx Requests and Responses, handed straight to the client's
    transport. `AsyncClient.send` adds nothing fcc uses to a request: fcc follows no redirect
    and runs no auth flow or event hook. But it does pass every answer's headers through
    urllib into a cookie jar, and `build_request` merges the client's headers through two
    Headers objects: in a hot loop over a 57 KB body, 60 of the 71 µs a request cost there
    beyond the transport's own work. The client keeps its roles: it owns the transport and
    closes it, and its default headers (user-agent, accept, accept-encoding) go out as
    before, with the adapter's on top. Timeouts travel as httpx's do, in the request's
    extensions, and the transport enforces them as before."""

    def __init__(self, client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport
        # A transport that can write a request at once offers send_now (transports/h1.py).
        self._send_now: Callable[[httpx.Request], Pending] | None = getattr(transport, "send_now", None)
        self.loop = asyncio.get_running_loop()  # made in the server's loop: no lookup per request
        self._defaults = {name.lower(): value for name, value in client.headers.items()}
        self._targets: dict[str, tuple[httpx.URL, str]] = {}

    def request(
        self, url: str, headers: Mapping[str, str], content: bytes, timeout: httpx.Timeout
    ) -> httpx.Request:
        target, host = self._target(url)
        merged = self._defaults.copy()
        for name, value in headers.items():
            merged[name.lower()] = value
        # What httpx adds to a request made from content, set here so that it need not look
        # for them: in place, the lookups cost more than everything else Request does.
        merged["host"] = host
        merged["content-length"] = str(len(content))
        request = httpx.Request(
            "POST",
            target,
            headers=merged,
            stream=httpx.ByteStream(content),
            extensions={"timeout": timeout.as_dict()},
        )
        request.read()  # its content, as httpx's own are: the same bytes, not a copy
        return request

    def _target(self, text: str) -> tuple[httpx.URL, str]:
        """httpx's parsed URL and its Host header, once per upstream URL (a route's provider
        and model): parsing it is half of what building a request costs httpx (68 → 36 µs)."""
        known = self._targets.get(text)
        if known is None:
            if len(self._targets) >= 1024:  # placeholders filled from keys may change: never grow without end
                self._targets.clear()
            url = httpx.URL(text)
            known = self._targets[text] = (url, url.netloc.decode("ascii"))
        return known

    def start(self, request: httpx.Request) -> Pending:
        """`send(request)`, begun: on fcc's own leg with a kept-alive connection at hand, the
        request is written before this returns and what is left is the wait for the answer.
        Otherwise it goes out when awaited."""
        if self._send_now is not None:
            return self._send_now(request)
        return self.send(request)

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The answer's status and headers; its body still streaming."""
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request  # as AsyncClient.send does: httpcore raises them without one
            raise
        response.request = request
        return response


async def stream_turn(
    sender: Sender, adapter: Adapter, turn: Turn, keys: KeyStore
) -> AsyncGenerator[list[Event], None]:
    """The turn's event batches. An empty batch comes first: the upstream request is built and
    encoded (nothing here reads `turn.body` again, so the caller may drop it) and, where it
    could be at once, written (Sender.start); the rest waits on the upstream."""
    request = adapter.build(turn, keys)
    translator = adapter.translator(turn)
    timeouts = turn.provider.timeouts
    p = turn.provider
    # Connecting is bounded by its own limit; the first byte (the response headers) must
    # come within first_byte of sending, connection included.
    limits = httpx.Timeout(None, connect=timeouts.connect)
    # The adapters set content-type; the body is encoded once, by msgspec (translate/wire.py),
    # and a tool list seen before is not encoded again (translate/toollist.py).
    content = toollist.encode_body(request.json)
    outgoing = sender.request(request.url, request.headers, content, limits)
    # The translated body now lives on as bytes inside `outgoing`; the dict (as large again
    # as the client's request) need not stay alive for the whole stream.
    del request
    pending = sender.start(outgoing)
    try:
        yield []
    except BaseException:  # closed before the wait began: the written request's connection goes
        pending.close()
        raise
    try:
        async with asyncio.timeout(timeouts.first_byte):
            try:
                response = await pending
            except (httpx.RemoteProtocolError, httpx.ReadError):
                # A kept-alive connection the server had already closed (llama.cpp and others
                # drop idle ones): nothing was answered, so the request goes once more, on a
                # fresh connection.
                response = await sender.send(outgoing)
    except TimeoutError:
        raise UpstreamError(
            f"{who(turn)} did not answer within {timeouts.first_byte:g}s",
            status=504,
            error_type="timeout_error",
            retryable=True,
        ) from None
    except (httpx.ConnectError, httpx.ConnectTimeout):
        hint = "is it running?" if p.local else "check your network"
        raise UpstreamError(
            f"cannot reach {p.display_name} at {p.base_url} ({hint}); to use another backend, "
            "route the tiers elsewhere in config.yaml or with `fcc serve --tier TIER=PROVIDER/MODEL`",
            status=502 if p.local else 529,
            error_type="api_error" if p.local else "overloaded_error",
            retryable=True,
            should_retry=False if p.local else None,
        ) from None
    except httpx.HTTPError as exc:
        raise UpstreamError(
            f"{who(turn)}: request failed ({type(exc).__name__})",
            status=529,
            error_type="overloaded_error",
            retryable=True,
        ) from None
    _sent(outgoing)
    try:
        if response.status_code != 200:
            body = b""
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) > _MAX_ERROR_BODY:
                    break
            key = keys.get(p.api_key_env)
            secrets = (key,) if key else ()
            # The operator's log keeps the upstream's own words (minus the key); the client
            # gets them without account identifiers.
            said, code = upstream_message(body)
            logged = said.replace(key, "[key]") if key else said
            log.warning("%s answered HTTP %d: %s", who(turn), response.status_code, logged[:500])
            raise classify(
                response.status_code,
                said,
                code,
                turn.asked,
                who(turn),
                retry_after_seconds(response.headers.get("retry-after")),
                secrets,
            )
        # Events go out in batches, one per upstream read: one hop through the pipeline
        # and one write to the client per read, however many events a read carries.
        started = translator.start()
        if started:
            yield started
        if response.headers.get("content-type", "").startswith("application/json"):
            # The server ignored stream:true and answered with one JSON body.
            body = await response.aread()
            events = _read(translator, turn, SSEMessage(None, body.decode("utf-8", "replace")))
            events += translator.finish()
            _log_notes(translator, turn)
            yield events
            return
        decoder = SSEDecoder()
        # Without a content-encoding there is nothing to decode: the transport's own reads,
        # two async generators less per chunk than aiter_bytes (aiter_raw, which only counts
        # and re-chunks them, is passed over too). A response a transport built already
        # read (httpx's MockTransport, say) has no raw reads left; aiter_bytes serves its
        # content. The stream is closed below, with the response.
        stream = response.stream
        chunks: AsyncIterator[bytes]
        if (
            isinstance(stream, httpx.AsyncByteStream)
            and "content-encoding" not in response.headers
            and not response.is_stream_consumed
        ):
            chunks = aiter(stream)
        else:
            chunks = response.aiter_bytes()
        silence = Silence(timeouts.idle, sender.loop)
        try:
            while True:
                try:
                    chunk = await silence.wait(anext(chunks))
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    yield translator.abort(f"{who(turn)} went silent for {timeouts.idle:g}s mid-answer")
                    return
                except httpx.HTTPError as exc:
                    yield translator.abort(f"{who(turn)}: connection lost mid-answer ({type(exc).__name__})")
                    return
                batch: list[Event] = []
                for message in decoder.feed_bytes(chunk):
                    batch += _read(translator, turn, message)
                if batch:
                    yield batch
        finally:
            silence.close()
        batch = []
        for message in decoder.flush():
            batch += _read(translator, turn, message)
        batch += translator.finish()
        _log_notes(translator, turn)
        yield batch
    finally:
        await response.aclose()


def _sent(outgoing: httpx.Request) -> None:
    """The upstream has answered, so the body went out whole and nothing sends it again: its
    bytes (60 KB for a Claude Code turn) need not stay alive as long as the stream. httpx
    keeps them twice, as the request's content and as its stream (the response refers to the
    request); fcc's own leg (h1.py) keeps none, httpcore (FCC_UPSTREAM=httpx) the stream it was given.
    tests/test_upstream_transport.py checks which holders are left."""
    outgoing.stream = httpx.ByteStream(b"")
    outgoing._content = b""


def _log_notes(translator: StreamTranslator, turn: Turn) -> None:
    """Tool calls whose arguments were not JSON: the operator hears of each, but the text
    (which may quote the prompt) only at debug level."""
    for name, arguments in translator.notes:
        what = "repaired them" if arguments.outcome == "repaired" else "sent {} instead"
        log.warning(
            "%s: tool call %s came with arguments that are not a JSON object (%d chars); fcc %s",
            who(turn),
            name,
            len(arguments.raw),
            what,
        )
        log.debug("%s: tool call %s arguments as sent: %r", who(turn), name, arguments.raw[:2000])


def _read(translator: StreamTranslator, turn: Turn, message: SSEMessage) -> list[Event]:
    """One upstream message through the translator. Upstreams send JSON of any shape; one
    fcc cannot read ends the stream as malformed instead of failing the request."""
    try:
        return translator.feed(message)
    except (TypeError, AttributeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        log.warning("%s sent a chunk fcc cannot read (%s)", who(turn), type(exc).__name__)
        return translator.abort(f"{who(turn)} sent a malformed chunk ({type(exc).__name__})")
