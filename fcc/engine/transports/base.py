"""The seam between the engine and an upstream protocol: build a request, translate its stream."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import quote, urlencode

import msgspec

from fcc.engine.catalog.providers import Provider
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.errors import UpstreamError
from fcc.engine.translate.events import Event
from fcc.engine.translate.sse import SSEMessage
from fcc.engine.translate.tool_input import ToolInput
from fcc.engine.types import JSON


class Turn(msgspec.Struct, frozen=True):
    """One attempt at one candidate: everything an adapter needs, already decided."""

    body: JSON  # the client's request, parsed
    provider: Provider
    model: str  # the upstream model id
    requested_model: str  # what the client asked for (echoed in message_start)
    message_id: str
    thinking: bool  # ask the upstream for reasoning
    input_estimate: int
    thinking_forced: bool | None = None  # the route's own say (None: the client decides)
    beta: str | None = None  # the client's anthropic-beta header
    version: str | None = None  # the client's anthropic-version header
    max_tokens: int | None = None  # lowered to fit this model's window (routing/candidates.py)
    images_as_text: bool = False  # this model cannot see: images become a note
    asked: frozenset[str] = frozenset()  # features an upstream may reject (error classification)
    signatures: Mapping[str, str] = msgspec.field(default_factory=dict)  # thought signatures, by tool id
    learned: dict[str, str] = msgspec.field(default_factory=dict)  # new ones this answer brought


class UpstreamRequest(msgspec.Struct, frozen=True):
    url: str
    headers: dict[str, str]
    json: JSON


class StreamTranslator(Protocol):
    @property
    def notes(self) -> list[tuple[str, ToolInput]]: ...  # tool calls whose input was not JSON
    def start(self) -> list[Event]: ...
    def feed(self, message: SSEMessage) -> list[Event]: ...
    def finish(self) -> list[Event]: ...
    def abort(self, message: str) -> list[Event]: ...


class Adapter(Protocol):
    def build(self, turn: Turn, keys: KeyStore) -> UpstreamRequest: ...
    def translator(self, turn: Turn) -> StreamTranslator: ...


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, provider: Provider, keys: KeyStore) -> str:
    """A catalog value with its ${VAR} placeholders filled from the environment or keys.env."""
    if "${" not in template:
        return template

    def value(match: re.Match[str]) -> str:
        found = keys.get(match.group(1))
        if found is None:
            raise UpstreamError(
                f"{provider.display_name} needs {match.group(1)}: set it in the environment or in keys.env",
                status=500,
                error_type="api_error",
                retryable=True,
                should_retry=False,
            )
        return found

    return _PLACEHOLDER.sub(value, template)


def upstream_url(provider: Provider, model: str, keys: KeyStore, default_path: str) -> str:
    """base_url + path (the model id quoted into {model}, so it can never change the path's
    shape or the host) + the provider's query parameters."""
    path = (provider.path or default_path).replace("{model}", quote(model, safe=""))
    url = fill(provider.base_url, provider, keys).rstrip("/") + path
    if provider.query:
        url += "?" + urlencode([(k, fill(v, provider, keys)) for k, v in provider.query])
    return url


def auth_headers(provider: Provider, keys: KeyStore) -> dict[str, str]:
    headers = {name: fill(value, provider, keys) for name, value in provider.headers}
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
    elif provider.auth == "header" and provider.auth_header:
        headers[provider.auth_header.lower()] = key
    else:
        headers["x-api-key"] = key
    return headers
