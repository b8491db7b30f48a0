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
from fcc.engine.request.features import Features
from fcc.engine.routing.candidates import Attempt, Plan
from fcc.engine.routing.health import Health
from fcc.engine.routing.limits import RateLimits
from fcc.engine.routing.router import Candidate, Route
from fcc.engine.routing.strategies import RoundRobin, order
from fcc.engine.translate.events import ErrorEvent, Event, MessageDelta, MessageStart, Ping
from fcc.engine.translate.upstream_errors import in_stream
from fcc.engine.transports.base import Adapter, Turn
from fcc.engine.transports.http import stream_turn, who
from fcc.engine.types import JSON, TransportName


@dataclass(slots=True)
class TurnRecord:
    """What happened to one request: for the log line (never any prompt text)."""

    requested: str
    tier: str | None
    rule: str | None = None  # the routing rule that decided (or tier:NAME, direct)
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
    skipped: tuple[str, ...] = ()  # candidates not tried, "PROVIDER/MODEL: why"

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
    features: Features
    route: Route
    plan: Plan
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
        self.rotation = RoundRobin()

    def _turn(self, request: Request, attempt: Attempt, message_id: str) -> Turn:
        route = request.route
        candidate = attempt.candidate
        thinking = route.thinking if route.thinking is not None else request.features.thinking
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
            max_tokens=attempt.max_tokens,
            images_as_text=attempt.images_as_text,
            asked=request.features.asked,
        )

    def wait(self, candidate: Candidate) -> float:
        p = candidate.provider
        return max(self.health.wait(candidate.label), self.limits.wait(p.id, p.limits))

    def ordered(self, request: Request) -> list[Attempt]:
        """The plan's attempts in the order the route's strategy gives now."""
        route = request.route
        return order(
            request.plan.attempts,
            route.strategy,
            lambda a: a.candidate.provider,
            self.limits.active,
            route.key,
            self.rotation,
        )

    async def events(self, request: Request, record: TurnRecord) -> AsyncGenerator[list[Event], None]:
        """Event batches of the first candidate that produces content; UpstreamError if none does."""
        message_id = new_message_id()
        last: UpstreamError | None = None
        try:
            async with aclosing(self._schedule(request)) as attempts:
                async for attempt in attempts:
                    try:
                        # aclosing: if the client goes, the attempt (and its upstream) closes
                        # now, not whenever the garbage collector gets to it.
                        async with aclosing(self._attempt(request, attempt, message_id, record)) as stream:
                            async for batch in stream:
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

    async def _schedule(self, request: Request) -> AsyncGenerator[Attempt, None]:
        """The attempts to make, in order: those that can take a request now, in the
        strategy's order; then the rate-limited or cooling-down ones, each once it frees up,
        as long as that is soon. Raises a 429 UpstreamError saying when to come back when it
        is not."""
        deferred: list[Attempt] = []
        for attempt in self.ordered(request):
            if self.wait(attempt.candidate) > 0:
                deferred.append(attempt)
            else:
                yield attempt
        deadline = time.monotonic() + MAX_QUEUE_WAIT
        while deferred:
            wait, attempt = min(((self.wait(a.candidate), a) for a in deferred), key=lambda x: x[0])
            if wait > 0:
                if time.monotonic() + wait > deadline:
                    raise _all_busy(request, wait)
                await asyncio.sleep(min(wait, 0.25))
                continue
            deferred.remove(attempt)
            yield attempt

    @staticmethod
    def _first_content(batch: list[Event], held: list[Event], request: Request, turn: Turn) -> list[Event]:
        """Before content, hold message_start and pings (another candidate may yet answer);
        an error now is a refusal. Returns the batch to send once content begins, else []."""
        for i, event in enumerate(batch):
            if isinstance(event, MessageStart | Ping):
                held.append(event)
            elif isinstance(event, ErrorEvent):
                raise in_stream(event.message, event.error_type, who(turn))
            else:
                return held + batch[i:]
        return []

    async def _attempt(
        self, request: Request, attempt: Attempt, message_id: str, record: TurnRecord
    ) -> AsyncGenerator[list[Event], None]:
        """One candidate's event batches; raises UpstreamError if it fails before any content."""
        candidate = attempt.candidate
        record.attempts.append(candidate.label)
        provider = candidate.provider
        turn = self._turn(request, attempt, message_id)
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
