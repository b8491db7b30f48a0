"""The openai_chat adapter: Anthropic in, chat.completions upstream, Anthropic events out."""

from __future__ import annotations

from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.translate import wire
from fcc.engine.translate.events import Event
from fcc.engine.translate.openai_request import Target, thinking_requested, to_openai
from fcc.engine.translate.openai_stream import OpenAIStreamTranslator, StreamOptions
from fcc.engine.translate.sse import SSEMessage
from fcc.engine.translate.tool_input import ToolInput
from fcc.engine.transports.base import (
    StreamTranslator,
    Turn,
    UpstreamRequest,
    auth_headers,
    upstream_url,
)


class OpenAIChat:
    def build(self, turn: Turn, keys: KeyStore) -> UpstreamRequest:
        p = turn.provider
        target = Target(
            model=turn.model,
            quirks=p.quirks,
            info=p.model(turn.model),
            output_cap=p.output_cap(turn.model),
            thinking=turn.thinking,
            # Gemini's thought signatures, by tool-call id, echoed on the next turn (the
            # dispatcher fetched them from the state store; new ones go back there).
            thought_signature=turn.signatures.get if p.quirks.thought_signatures else None,
            max_tokens=turn.max_tokens,
            images_as_text=turn.images_as_text,
        )
        headers = auth_headers(p, keys)
        headers["content-type"] = "application/json"
        headers["accept"] = "text/event-stream"
        return UpstreamRequest(
            upstream_url(p, turn.model, keys, "/chat/completions"), headers, to_openai(turn.body, target)
        )

    def translator(self, turn: Turn) -> StreamTranslator:
        q = turn.provider.quirks
        thinking = turn.body.get("thinking")
        display = thinking.get("display") if isinstance(thinking, dict) else None
        echo = q.reasoning_echo != "none"
        options = StreamOptions(
            message_id=turn.message_id,
            model=turn.requested_model,
            quirks=q,
            emit_thinking=(turn.thinking and thinking_requested(turn.body)) or echo,
            show_thinking=display != "omitted",
            carry_reasoning=echo,
            input_estimate=turn.input_estimate,
            on_thought_signature=turn.learned.__setitem__ if q.thought_signatures else None,
        )
        return _Lines(OpenAIStreamTranslator(options))


class _Lines:
    """SSE messages → chunks: `[DONE]`, comments and malformed data handled here."""

    __slots__ = ("_done", "_t")

    def __init__(self, translator: OpenAIStreamTranslator) -> None:
        self._t = translator
        self._done = False

    @property
    def notes(self) -> list[tuple[str, ToolInput]]:
        return self._t.notes

    def start(self) -> list[Event]:
        return self._t.start()

    def feed(self, message: SSEMessage) -> list[Event]:
        data = message.data
        if not data:
            return []
        if data == "[DONE]":
            self._done = True
            return []
        try:
            chunk = wire.loads(data)
        except ValueError:
            return self._t.abort(f"the upstream sent a malformed chunk: {data[:120]!r}")
        return self._t.feed(chunk) if isinstance(chunk, dict) else []

    def finish(self) -> list[Event]:
        return self._t.finish(self._done)

    def abort(self, message: str) -> list[Event]:
        return self._t.abort(message)
