"""A request's walk down its route: each candidate in turn until one starts answering.

A candidate that fails before any content block has been produced (refused, unreachable,
rate-limited, an error event as its first word) hands over to the next one; the client sees
one clean stream. Once content has flowed, a failure ends the stream with an error event.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import httpx

from fcc.engine.errors import UpstreamError
from fcc.engine.router import Candidate, Route
from fcc.engine.secrets import KeyStore
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
    started: float = field(default_factory=time.perf_counter)
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


class Dispatcher:
    def __init__(
        self, client: httpx.AsyncClient, adapters: Mapping[TransportName, Adapter], keys: KeyStore
    ) -> None:
        self._client = client
        self._adapters = adapters
        self._keys = keys

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
            input_estimate=request.input_estimate,
            beta=request.beta,
            version=request.version,
        )

    async def events(self, request: Request, record: TurnRecord) -> AsyncIterator[Event]:
        """Events of the first candidate that produces content; UpstreamError if none does."""
        message_id = new_message_id()
        candidates = request.route.candidates
        last: UpstreamError | None = None
        for position, candidate in enumerate(candidates):
            record.attempts.append(candidate.label)
            turn = self._turn(request, candidate, message_id)
            adapter = self._adapters[candidate.provider.transport]
            held: list[Event] = []
            flowing = False
            try:
                async for event in stream_turn(self._client, adapter, turn, self._keys):
                    if not flowing:
                        if isinstance(event, MessageStart | Ping):
                            held.append(event)
                            continue
                        if isinstance(event, ErrorEvent):
                            raise in_stream(event.message, event.error_type, request.body, who(turn))
                        flowing = True
                        record.served_by = candidate.label
                        for early in held:
                            yield early
                    record.note(event)
                    yield event
                if not flowing:  # an upstream that ended with nothing at all
                    raise UpstreamError(
                        f"{who(turn)} ended without answering",
                        status=529,
                        error_type="overloaded_error",
                        retryable=True,
                    )
                return
            except UpstreamError as exc:
                if flowing:
                    raise
                last = exc
                if not exc.retryable or position == len(candidates) - 1:
                    break
        assert last is not None
        record.status = last.status
        record.error_type = last.error_type
        raise last
