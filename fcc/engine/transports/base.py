"""The seam between the engine and an upstream protocol: build a request, translate its stream."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from fcc.engine.catalog.providers import Provider
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.errors import UpstreamError
from fcc.engine.translate.events import Event
from fcc.engine.translate.sse import SSEMessage
from fcc.engine.types import JSON


@dataclass(frozen=True, slots=True)
class Turn:
    """One attempt at one candidate: everything an adapter needs, already decided."""

    body: JSON  # the client's request, parsed
    provider: Provider
    model: str  # the upstream model id
    requested_model: str  # what the client asked for (echoed in message_start)
    message_id: str
    thinking: bool  # ask the upstream for reasoning
    input_estimate: int
    beta: str | None = None  # the client's anthropic-beta header
    version: str | None = None  # the client's anthropic-version header


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    json: JSON


class StreamTranslator(Protocol):
    def start(self) -> list[Event]: ...
    def feed(self, message: SSEMessage) -> list[Event]: ...
    def finish(self) -> list[Event]: ...
    def abort(self, message: str) -> list[Event]: ...


class Adapter(Protocol):
    def build(self, turn: Turn, keys: KeyStore) -> UpstreamRequest: ...
    def translator(self, turn: Turn) -> StreamTranslator: ...


@dataclass(slots=True)
class BoundedCache:
    """A small LRU map for per-tool-call state that must survive to the next turn."""

    limit: int = 10_000
    _data: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def put(self, key: str, value: str) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.limit:
            self._data.popitem(last=False)

    def get(self, key: str) -> str | None:
        return self._data.get(key)


def auth_headers(provider: Provider, keys: KeyStore) -> dict[str, str]:
    headers = dict(provider.headers)
    if provider.auth == "none":
        return headers
    key = keys.get(provider.api_key_env)
    if key is None:
        where = f"set {provider.api_key_env} in the environment or in keys.env (see `fcc init`)"
        raise UpstreamError(
            f"{provider.display_name} needs an API key: {where}",
            status=401,
            error_type="authentication_error",
            retryable=True,
            should_retry=False,
        )
    if provider.auth == "bearer":
        headers["authorization"] = f"Bearer {key}"
    else:
        headers["x-api-key"] = key
    return headers
