"""A request's walk down its route: each candidate in turn until one starts answering.

A candidate that fails before any content block has been produced (refused, unreachable,
rate-limited, an error event as its first word) hands over to the next one; the client sees
one clean stream. Once content has flowed, a failure ends the stream with an error event.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field

import httpx

from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.errors import UpstreamError
from fcc.engine.routing.health import Health
from fcc.engine.routing.limits import RateLimits
from fcc.engine.routing.router import Candidate, Route
from fcc.engine.translate.events import ErrorEvent, Event, MessageDelta, MessageStart, Ping
from fcc.engine.translate.openai_request import thinking_requested
from fcc.engine.translate.upstream_errors import in_stream
from fcc.engine.transports.base import Adapter, Turn
from fcc.engine.transports.http import stream_turn, who
from fcc.engine.types import JSON, TransportName


@dataclass(slots=True)
class TurnRecord:
    """What happened to one request: for the log line (never any prompt text)."""

    requested: str
    tier: str | None
    session: str | None = None
    stream: bool = False
    arrived: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    upstream_s: float = 0.0  # time spent waiting on upstreams: the rest is fcc's own
    attempts: list[str] = field(default_factory=list)
    served_by: str | None = None
    first_token: float | None = None
    status: int = 200
    error_type: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    probe: str | None = None

    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.started) * 1000

    def note(self, event: Event) -> None:
        if self.first_token is None and not isinstance(event, MessageStart | Ping):
            self.first_token = time.perf_counter()
        if isinstance(event, MessageDelta):
            self.input_tokens = event.usage.input_tokens
            self.output_tokens = event.usage.output_tokens
            self.cached_tokens = event.usage.cache_read_input_tokens or 0
        elif isinstance(event, ErrorEvent):
            self.error_type = event.error_type


def new_message_id() -> str:
    return "msg_fcc" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Request:
    body: JSON
    route: Route
    input_estimate: int
    beta: str | None
    version: str | None


# How long a request may wait for a rate-limited or cooling-down backend before fcc answers
# 429 itself (the client then waits retry-after and asks again).
MAX_QUEUE_WAIT = 20.0


def _all_busy(request: Request, wait: float) -> UpstreamError:
    return UpstreamError(
        f"every backend for {request.route.tier or request.route.requested} is rate-limited or cooling down; "
        f"retry in {max(1, round(wait))}s (see GET /health)",
        status=429,
        error_type="rate_limit_error",
        retryable=True,
        retry_after=max(wait, 1.0),
    )


class Dispatcher:
    def __init__(
        self,
        client: httpx.AsyncClient,
        adapters: Mapping[TransportName, Adapter],
        keys: KeyStore,
        health: Health | None = None,
        limits: RateLimits | None = None,
    ) -> None:
        self._client = client
        self._adapters = adapters
        self._keys = keys
        self.health = health or Health()
        self.limits = limits or RateLimits()

    def _turn(self, request: Request, candidate: Candidate, message_id: str) -> Turn:
        route = request.route
        thinking = route.thinking if route.thinking is not None else thinking_requested(request.body)
        return Turn(
            body=request.body,
            provider=candidate.provider,
            model=candidate.model,
            requested_model=route.requested,
            message_id=message_id,
            thinking=thinking,
            thinking_forced=route.thinking,
            input_estimate=request.input_estimate,
            beta=request.beta,
            version=request.version,
        )

    def wait(self, candidate: Candidate) -> float:
        p = candidate.provider
        return max(self.health.wait(candidate.label), self.limits.wait(p.id, p.limits))

    async def events(self, request: Request, record: TurnRecord) -> AsyncGenerator[list[Event], None]:
        """Event batches of the first candidate that produces content; UpstreamError if none does."""
        message_id = new_message_id()
        last: UpstreamError | None = None
        try:
            async with aclosing(self._schedule(request)) as candidates:
                async for candidate in candidates:
                    try:
                        # aclosing: if the client goes, the attempt (and its upstream) closes
                        # now, not whenever the garbage collector gets to it.
                        async with aclosing(self._attempt(request, candidate, message_id, record)) as attempt:
                            async for batch in attempt:
                                yield batch
                        return
                    except UpstreamError as exc:
                        last = exc
                        if not exc.retryable:
                            break
        except UpstreamError as busy:  # the schedule ran out of time: nothing frees up soon
            last = busy
        assert last is not None
        record.status = last.status
        record.error_type = last.error_type
        raise last

    async def _schedule(self, request: Request) -> AsyncGenerator[Candidate, None]:
        """The candidates to try, in order: those that can take a request now, in route order;
        then the rate-limited or cooling-down ones, each once it frees up, as long as that is
        soon. Raises a 429 UpstreamError saying when to come back when it is not."""
        deferred: list[Candidate] = []
        for candidate in request.route.candidates:
            if self.wait(candidate) > 0:
                deferred.append(candidate)
            else:
                yield candidate
        deadline = time.monotonic() + MAX_QUEUE_WAIT
        while deferred:
            wait, candidate = min(((self.wait(c), c) for c in deferred), key=lambda x: x[0])
            if wait > 0:
                if time.monotonic() + wait > deadline:
                    raise _all_busy(request, wait)
                await asyncio.sleep(min(wait, 0.25))
                continue
            deferred.remove(candidate)
            yield candidate

    @staticmethod
    def _first_content(batch: list[Event], held: list[Event], request: Request, turn: Turn) -> list[Event]:
        """Before content, hold message_start and pings (another candidate may yet answer);
        an error now is a refusal. Returns the batch to send once content begins, else []."""
        for i, event in enumerate(batch):
            if isinstance(event, MessageStart | Ping):
                held.append(event)
            elif isinstance(event, ErrorEvent):
                raise in_stream(event.message, event.error_type, request.body, who(turn))
            else:
                return held + batch[i:]
        return []

    async def _attempt(
        self, request: Request, candidate: Candidate, message_id: str, record: TurnRecord
    ) -> AsyncGenerator[list[Event], None]:
        """One candidate's event batches; raises UpstreamError if it fails before any content."""
        record.attempts.append(candidate.label)
        provider = candidate.provider
        turn = self._turn(request, candidate, message_id)
        adapter = self._adapters[provider.transport]
        held: list[Event] = []
        flowing = False
        self.health.begin(candidate.label)
        self.limits.acquire(provider.id, provider.limits)
        began = time.perf_counter()
        try:
            async with aclosing(stream_turn(self._client, adapter, turn, self._keys)) as stream:
                async for batch in stream:
                    if not flowing:
                        batch = self._first_content(batch, held, request, turn)
                        if not batch:
                            continue
                        flowing = True
                        record.served_by = candidate.label
                        self.health.success(candidate.label)
                    for event in batch:
                        record.note(event)
                    yield batch
            if not flowing:
                raise UpstreamError(
                    f"{who(turn)} ended without answering",
                    status=529,
                    error_type="overloaded_error",
                    retryable=True,
                )
        except UpstreamError as exc:
            if exc.retryable:
                self.health.failure(candidate.label, f"{exc.status} {exc.error_type}")
            if exc.status == 429 and exc.retry_after:
                self.health.block(candidate.label, exc.retry_after, f"{exc.status} {exc.error_type}")
            raise
        finally:
            # Also on cancellation (the client went away): the slot is free again at once.
            self.limits.release(provider.id)
            record.upstream_s += time.perf_counter() - began
