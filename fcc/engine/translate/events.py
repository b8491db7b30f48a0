"""Anthropic stream events as typed values; they become SSE bytes once, at the edge."""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from fcc.engine.translate.tool_input import input_object
from fcc.engine.translate.wire import dumps
from fcc.engine.types import JSON

DeltaKind = Literal["text_delta", "input_json_delta", "thinking_delta", "signature_delta"]
DELTA_FIELD: dict[str, str] = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
    "signature_delta": "signature",
}


def count(value: object) -> int:
    """A token count as upstreams send it (int, float, numeric string), 0 when it is not one."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float | str):
        try:
            number = float(value)
        except ValueError:
            return 0
        return int(number) if math.isfinite(number) and number > 0 else 0
    return 0


class Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None

    def wire(self) -> JSON:
        out: JSON = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.cache_creation_input_tokens is not None:
            out["cache_creation_input_tokens"] = self.cache_creation_input_tokens
        if self.cache_read_input_tokens is not None:
            out["cache_read_input_tokens"] = self.cache_read_input_tokens
        return out


class MessageStart(msgspec.Struct, frozen=True):
    id: str
    model: str
    usage: Usage = msgspec.field(default_factory=Usage)
    type: str = "message_start"

    def wire(self) -> JSON:
        return {
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": self.usage.wire(),
            },
        }


class BlockStart(msgspec.Struct, frozen=True):
    index: int
    block: JSON  # the content_block as the wire has it: {"type": "text", "text": ""} …
    type: str = "content_block_start"

    def wire(self) -> JSON:
        return {"type": "content_block_start", "index": self.index, "content_block": self.block}


class Delta(msgspec.Struct, frozen=True):
    index: int
    kind: DeltaKind
    value: str
    type: str = "content_block_delta"

    def wire(self) -> JSON:
        delta = {"type": self.kind, DELTA_FIELD[self.kind]: self.value}
        return {"type": "content_block_delta", "index": self.index, "delta": delta}


class RawDelta(msgspec.Struct, frozen=True):
    """A delta fcc does not interpret (citations_delta…), passed on as it came."""

    index: int
    delta: JSON
    type: str = "content_block_delta"

    def wire(self) -> JSON:
        return {"type": "content_block_delta", "index": self.index, "delta": self.delta}


class BlockStop(msgspec.Struct, frozen=True):
    index: int
    type: str = "content_block_stop"

    def wire(self) -> JSON:
        return {"type": "content_block_stop", "index": self.index}


class MessageDelta(msgspec.Struct, frozen=True):
    stop_reason: str | None
    usage: Usage
    stop_sequence: str | None = None
    type: str = "message_delta"

    def wire(self) -> JSON:
        return {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
            "usage": self.usage.wire(),
        }


class MessageStop(msgspec.Struct, frozen=True):
    type: str = "message_stop"

    def wire(self) -> JSON:
        return {"type": "message_stop"}


class Ping(msgspec.Struct, frozen=True):
    type: str = "ping"

    def wire(self) -> JSON:
        return {"type": "ping"}


class ErrorEvent(msgspec.Struct, frozen=True):
    error_type: str
    message: str
    type: str = "error"

    def wire(self) -> JSON:
        return {"type": "error", "error": {"type": self.error_type, "message": self.message}}


Event = (
    MessageStart | BlockStart | Delta | RawDelta | BlockStop | MessageDelta | MessageStop | Ping | ErrorEvent
)

_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_DELTA_KIND = {kind: f',"delta":{{"type":"{kind}","{field}":'.encode() for kind, field in DELTA_FIELD.items()}


def encode(event: Event) -> bytes:
    if type(event) is Delta:
        # The event sent most often, written without building its dict first.
        return b"".join(
            (_DELTA_HEAD, str(event.index).encode(), _DELTA_KIND[event.kind], dumps(event.value), b"}}\n\n")
        )
    return b"".join((b"event: ", event.type.encode(), b"\ndata: ", dumps(event.wire()), b"\n\n"))


class MessageAccumulator:
    """Events → the one JSON message a non-streaming request gets (what the SDK would build)."""

    __slots__ = ("_blocks", "_json", "_message", "error")

    def __init__(self) -> None:
        self._message: JSON = {}
        self._blocks: list[JSON] = []
        self._json: dict[int, list[str]] = {}
        self.error: ErrorEvent | None = None

    def feed(self, event: Event) -> None:
        if isinstance(event, MessageStart):
            self._message = event.wire()["message"]
        elif isinstance(event, BlockStart):
            self._blocks.append(dict(event.block))
            if event.block.get("type") in ("tool_use", "server_tool_use"):
                self._json[len(self._blocks) - 1] = []
        elif isinstance(event, Delta):
            block = self._blocks[event.index]
            if event.kind == "input_json_delta":
                self._json[event.index].append(event.value)
            else:
                key = DELTA_FIELD[event.kind]
                block[key] = block.get(key, "") + event.value
        elif isinstance(event, BlockStop):
            parts = self._json.pop(event.index, None)
            if parts is not None:
                self._blocks[event.index]["input"] = input_object("".join(parts))
        elif isinstance(event, MessageDelta):
            self._message["stop_reason"] = event.stop_reason
            self._message["stop_sequence"] = event.stop_sequence
            usage = self._message.setdefault("usage", {})
            usage.update(event.usage.wire())
        elif isinstance(event, ErrorEvent):
            self.error = event

    def result(self) -> JSON:
        return {**self._message, "content": self._blocks}
