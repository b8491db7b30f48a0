"""The anthropic_messages adapter: forward to an Anthropic-compatible server, normalize its stream."""

from __future__ import annotations

from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.translate import wire
from fcc.engine.translate.anthropic_request import forward_betas, to_anthropic_upstream
from fcc.engine.translate.anthropic_stream import AnthropicStreamNormalizer
from fcc.engine.translate.events import Event
from fcc.engine.translate.sse import SSEMessage
from fcc.engine.translate.tool_input import ToolInput
from fcc.engine.transports.base import StreamTranslator, Turn, UpstreamRequest, auth_headers, upstream_url


class AnthropicMessages:
    def build(self, turn: Turn, keys: KeyStore) -> UpstreamRequest:
        p = turn.provider
        headers = auth_headers(p, keys)
        headers["content-type"] = "application/json"
        headers["accept"] = "text/event-stream"
        headers["anthropic-version"] = turn.version or "2023-06-01"
        beta = forward_betas(turn.beta, p.quirks.drop_betas)
        if beta:
            headers["anthropic-beta"] = beta
        off = turn.thinking_forced is False
        caps = [c for c in (p.output_cap(turn.model), turn.max_tokens) if c]
        body = to_anthropic_upstream(
            turn.body,
            turn.model,
            p.quirks,
            off,
            min(caps) if caps else None,
            images_as_text=turn.images_as_text,
        )
        return UpstreamRequest(upstream_url(p, turn.model, keys, "/v1/messages"), headers, body)

    def translator(self, turn: Turn) -> StreamTranslator:
        return _Events(AnthropicStreamNormalizer(turn.message_id, turn.requested_model, turn.input_estimate))


class _Events:
    __slots__ = ("_n",)

    def __init__(self, normalizer: AnthropicStreamNormalizer) -> None:
        self._n = normalizer

    @property
    def notes(self) -> list[tuple[str, ToolInput]]:
        return self._n.notes

    def start(self) -> list[Event]:
        return []

    def feed(self, message: SSEMessage) -> list[Event]:
        if not message.data:
            return []
        try:
            data = wire.loads(message.data)
        except ValueError:
            return self._n.feed(
                "error", {"error": {"type": "api_error", "message": "the upstream sent a malformed event"}}
            )
        return self._n.feed(message.event, data) if isinstance(data, dict) else []

    def finish(self) -> list[Event]:
        return self._n.finish()

    def abort(self, message: str) -> list[Event]:
        return self._n.feed("error", {"error": {"type": "api_error", "message": message}})
