"""A request's walk down its route: each candidate in turn until one starts answering.

A candidate that fails before any content block has been produced (refused, unreachable,
rate-limited, an error event as its first word) hands over to the next one; the client sees
one clean stream. Once content has flowed, a failure ends the stream with an error event.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing

import msgspec

from fcc.engine.catalog.providers import Provider
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.errors import UpstreamError
from fcc.engine.ids import hex_id
from fcc.engine.request.features import Features
from fcc.engine.routing.candidates import Attempt, Plan
from fcc.engine.routing.router import Route
from fcc.engine.routing.strategies import RoundRobin, order
from fcc.engine.state.admission import Admission, Lease
from fcc.engine.state.records import RequestRecord
from fcc.engine.state.service import StateService
from fcc.engine.translate import toollist
from fcc.engine.translate.events import ErrorEvent, Event, MessageDelta, MessageStart, Ping
from fcc.engine.translate.upstream_errors import in_stream
from fcc.engine.transports.base import Adapter, Turn
from fcc.engine.transports.http import Sender, stream_turn, who
from fcc.engine.types import JSON, TransportName


class TurnRecord(msgspec.Struct):
    """What happened to one request: for the log line (never any prompt text)."""

    requested: str
    tier: str | None
    rule: str | None = None  # the routing rule that decided (or tier:NAME, direct)
    session: str | None = None
    stream: bool = False
    arrived: float = msgspec.field(default_factory=time.time)
    started: float = msgspec.field(default_factory=time.perf_counter)
    upstream_s: float = 0.0  # time spent waiting on upstreams: the rest is fcc's own
    attempts: list[str] = msgspec.field(default_factory=list)
    served_by: str | None = None
    first_token: float | None = None
    status: int = 200
    error_type: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    probe: str | None = None
    skipped: tuple[str, ...] = ()  # candidates not tried, "PROVIDER/MODEL: why"

    def finished(self, status: int) -> RequestRecord:
        """The record the store keeps of it (never any prompt text)."""
        duration = (time.perf_counter() - self.started) * 1000
        ttft = self.ttft_ms()
        return RequestRecord(
            time=self.arrived,
            session=self.session,
            model=self.requested,
            tier=self.tier,
            rule=self.rule,
            skipped=self.skipped,
            route=self.served_by,
            attempts=tuple(self.attempts),
            probe=self.probe,
            status=status,
            ttft_ms=round(ttft, 2) if ttft is not None else None,
            duration_ms=round(duration, 2),
            overhead_ms=round(duration - self.upstream_s * 1000, 3),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_tokens=self.cached_tokens,
            error_type=self.error_type,
            stream=self.stream,
        )

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
    return hex_id("msg_fcc")


class Request(msgspec.Struct):
    body: JSON  # the client's request, parsed (see `for_attempt`)
    features: Features
    route: Route
    plan: Plan
    beta: str | None
    version: str | None
    # The client's JSON as it came, for a fallback to parse again; None if nothing will need
    # it (one candidate) or the caller keeps the parsed body instead (the doctor, tests).
    raw: bytes | bytearray | None = None
    _built: bool = False

    def for_attempt(self) -> JSON:
        """The parsed body for the next attempt: the first gets the one the server parsed; one
        after an attempt whose upstream request was built (`built` dropped it) gets it parsed
        again from the client's bytes."""
        if self._built and self.raw is not None:
            self.body = toollist.loads(self.raw)
            self._built = False
        return self.body

    def built(self) -> None:
        """An attempt has its upstream request, as bytes: until its answer flows, fcc holds
        that and, for another candidate, the client's bytes, not the parsed body as well (2.2
        times the client's JSON in Python objects; 256 streams of Claude Code's 85 KB turns
        are 40 MB of it). With no bytes to parse again and another candidate left, it stays."""
        if self.raw is not None or len(self.plan.attempts) < 2:
            self.body.clear()
            self._built = True

    def release(self) -> None:
        """Once an answer is flowing no other candidate will need a request built. Everything
        later (error classification, the record) reads the features, never the body."""
        self.body.clear()
        self.raw = None


# How long a request may wait for a rate-limited or cooling-down backend before fcc answers
# 429 itself (the client then waits retry-after and asks again).
MAX_QUEUE_WAIT = 20.0


def _all_busy(request: Request, admission: Admission) -> UpstreamError:
    detail = f" ({admission.reason})" if admission.reason else ""
    wait = admission.wait
    return UpstreamError(
        f"every backend for {request.route.tier or request.route.requested} is rate-limited or cooling down"
        f"{detail}; retry in {max(1, round(wait))}s (see GET /health)",
        status=429,
        error_type="rate_limit_error",
        retryable=True,
        retry_after=max(wait, 1.0),
        # A spent daily quota: the client's retry loop cannot help before it resets (PROTOCOL.md J).
        should_retry=False if admission.quota else None,
    )


# How long the thought signatures a provider wants echoed are kept (Gemini: by tool-call id).
SIGNATURE_TTL = 7 * 86_400.0


class Dispatcher:
    def __init__(
        self,
        sender: Sender,
        adapters: Mapping[TransportName, Adapter],
        keys: KeyStore,
        state: StateService,
    ) -> None:
        self._sender = sender
        self._adapters = adapters
        self.keys = keys  # swapped when keys.env changes (server/reload.py)
        self.state = state
        self.rotation = RoundRobin()
        self._active: Counter[str] = Counter()  # this process's streams in flight, by provider

    def active(self, provider: str) -> int:
        return self._active[provider]

    def seen(self) -> list[str]:
        """The providers this process has sent requests to."""
        return sorted(self._active)

    def _turn(
        self, request: Request, body: JSON, attempt: Attempt, message_id: str, signatures: Mapping[str, str]
    ) -> Turn:
        route = request.route
        candidate = attempt.candidate
        thinking = route.thinking if route.thinking is not None else request.features.thinking
        return Turn(
            body=body,
            provider=candidate.provider,
            model=candidate.model,
            requested_model=route.requested,
            message_id=message_id,
            thinking=thinking,
            thinking_forced=route.thinking,
            input_estimate=request.features.input_tokens,
            beta=request.beta,
            version=request.version,
            max_tokens=attempt.max_tokens,
            images_as_text=attempt.images_as_text,
            asked=request.features.asked,
            signatures=signatures,
        )

    def ordered(self, request: Request) -> list[Attempt]:
        """The plan's attempts in the order the route's strategy gives now."""
        route = request.route
        return order(
            request.plan.attempts,
            route.strategy,
            lambda a: a.candidate.provider,
            self.active,
            route.key,
            self.rotation,
        )

    async def events(self, request: Request, record: TurnRecord) -> AsyncGenerator[list[Event], None]:
        """Event batches of the first candidate that produces content; UpstreamError if none does.
        An empty batch marks where the walk is about to wait on something slow (an upstream's
        answer, a backend that is busy): what came before (admission, building the upstream
        request and writing it) is quick, and a consumer may set up its answer there, while
        the upstream thinks (server/messages.py)."""
        message_id = new_message_id()
        last: UpstreamError | None = None
        try:
            async with aclosing(self._schedule(request)) as attempts:
                async for scheduled in attempts:
                    if scheduled is None:
                        yield []  # waiting for a busy backend
                        continue
                    attempt, lease = scheduled
                    try:
                        # aclosing: if the client goes, the attempt (and its upstream) closes
                        # now, not whenever the garbage collector gets to it.
                        run = self._attempt(request, attempt, lease, message_id, record)
                        async with aclosing(run) as stream:
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

    async def _schedule(self, request: Request) -> AsyncGenerator[tuple[Attempt, Lease | None] | None, None]:
        """The attempts to make, each admitted by the store (its circuit, limits and quotas),
        in order: those that can take a request now, in the strategy's order; then the
        rate-limited or cooling-down ones, each once it frees up, as long as that is soon
        (None first: the waiting begins). Raises a 429 UpstreamError saying when to come back
        when it is not. The consumer releases the lease of each attempt it is given."""
        deferred: list[tuple[Attempt, Admission]] = []
        for attempt in self.ordered(request):
            c = attempt.candidate
            admission = await self.state.admit(c.provider, c.model)
            if admission.wait <= 0:
                yield attempt, admission.lease
            else:
                deferred.append((attempt, admission))
        deadline = time.monotonic() + MAX_QUEUE_WAIT
        if deferred:
            yield None
        while deferred:
            attempt, admission = min(deferred, key=lambda d: d[1].wait)
            if time.monotonic() + admission.wait > deadline:
                raise _all_busy(request, admission)
            await asyncio.sleep(min(admission.wait, 0.25))
            # One admission handed out at a time, as in the first pass: an admission takes a
            # slot, and one the consumer never asks for (the attempt before it answered)
            # would hold that slot until its lease expired.
            for i, (waiting, _) in enumerate(deferred):
                again = await self.state.admit(waiting.candidate.provider, waiting.candidate.model)
                if again.wait <= 0:
                    del deferred[i]
                    yield waiting, again.lease
                    break
                deferred[i] = (waiting, again)

    @staticmethod
    def _first_content(batch: list[Event], held: list[Event], turn: Turn) -> list[Event]:
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
        self, request: Request, attempt: Attempt, lease: Lease | None, message_id: str, record: TurnRecord
    ) -> AsyncGenerator[list[Event], None]:
        """One candidate's event batches; raises UpstreamError if it fails before any content."""
        candidate = attempt.candidate
        record.attempts.append(candidate.label)
        provider = candidate.provider
        self._active[provider.id] += 1
        held: list[Event] = []
        flowing = False
        began = time.perf_counter()
        try:
            body = request.for_attempt()
            signatures = await self._signatures(body, provider)
            turn = self._turn(request, body, attempt, message_id, signatures)
            del body
            adapter = self._adapters[provider.transport]
            async with aclosing(stream_turn(self._sender, adapter, turn, self.keys)) as stream:
                async for batch in stream:
                    if not batch:  # the upstream request is built and about to go out
                        request.built()
                        yield batch
                        continue
                    if not flowing:
                        batch = self._first_content(batch, held, turn)
                        if not batch:
                            continue
                        flowing = True
                        request.release()
                        record.served_by = candidate.label
                        self.state.success(candidate.label, lease)
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
            if turn.learned:
                self.state.keep("sig", dict(turn.learned), SIGNATURE_TTL)
        except UpstreamError as exc:
            if exc.retryable:
                await self.state.failure(candidate.label, f"{exc.status} {exc.error_type}")
            if exc.status == 429 and exc.retry_after:
                await self.state.block(candidate.label, exc.retry_after, f"{exc.status} {exc.error_type}")
            raise
        finally:
            # Also on cancellation (the client went away): the slot is free again at once.
            self._active[provider.id] -= 1
            record.upstream_s += time.perf_counter() - began
            await asyncio.shield(self.state.release(lease))

    async def _signatures(self, body: JSON, provider: Provider) -> Mapping[str, str]:
        """The thought signatures this provider wants back for the history's tool calls."""
        if not provider.quirks.thought_signatures:
            return {}
        ids = [
            str(b["id"])
            for m in body.get("messages", ())
            if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), list)
            for b in m["content"]
            if isinstance(b, dict) and b.get("type") == "tool_use" and b.get("id")
        ]
        return await self.state.get("sig", ids) if ids else {}
