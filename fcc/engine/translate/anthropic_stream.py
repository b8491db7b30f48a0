"""An Anthropic-compatible upstream's events → a stream that obeys the grammar.

Servers get it slightly wrong: llama.cpp stops block 0 after starting block 1, some start
at index 1, some repeat message_start. Blocks are re-indexed in start order and only one is
open at a time; unknown event types are dropped.
"""

from __future__ import annotations

from typing import Any

from fcc.engine.translate.events import (
    DELTA_FIELD,
    BlockStart,
    BlockStop,
    Delta,
    ErrorEvent,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    RawDelta,
    Usage,
    complete_json,
)
from fcc.engine.types import JSON


def usage_from(data: Any) -> Usage:
    u = data if isinstance(data, dict) else {}

    def num(key: str) -> int | None:
        v = u.get(key)
        return int(v) if isinstance(v, int | float) else None

    return Usage(
        input_tokens=num("input_tokens") or 0,
        output_tokens=num("output_tokens") or 0,
        cache_creation_input_tokens=num("cache_creation_input_tokens"),
        cache_read_input_tokens=num("cache_read_input_tokens"),
    )


class AnthropicStreamNormalizer:
    def __init__(self, message_id: str, model: str, input_estimate: int = 0) -> None:
        self._id = message_id
        self._model = model
        self._estimate = input_estimate
        self._map: dict[int, int] = {}  # upstream index → ours
        self._open: int | None = None  # our index of the open block
        self._next = 0
        self._started = False
        self._input: Usage | None = None
        self._tool_json: dict[int, list[str]] = {}  # our index → input fragments
        self.terminated = False
        self.saw_stop = False

    def feed(self, event_type: str | None, data: JSON) -> list[Event]:
        if self.terminated:
            return []
        kind = data.get("type") or event_type
        out: list[Event] = []
        if kind == "message_start":
            if not self._started:
                self._started = True
                self._input = usage_from((data.get("message") or {}).get("usage"))
                if not self._input.input_tokens:
                    self._input.input_tokens = self._estimate
                out.append(MessageStart(self._id, self._model, self._input))
        elif kind == "content_block_start":
            self._ensure_started(out)
            self._close(out)
            block = data.get("content_block")
            block = dict(block) if isinstance(block, dict) else {"type": "text", "text": ""}
            self._map[_index(data)] = self._next
            self._open = self._next
            self._next += 1
            if block.get("type") == "tool_use":
                self._tool_json[self._open] = []
            out.append(BlockStart(self._open, block))
        elif kind == "content_block_delta":
            ours = self._map.get(_index(data))
            delta = data.get("delta")
            if ours is None or ours != self._open or not isinstance(delta, dict):
                return out  # a delta for a block already closed or never started
            dkind = delta.get("type")
            if dkind in DELTA_FIELD:
                value = delta.get(DELTA_FIELD[dkind])
                if isinstance(value, str):
                    if dkind == "input_json_delta" and ours in self._tool_json:
                        self._tool_json[ours].append(value)
                    out.append(Delta(ours, dkind, value))
            else:
                out.append(RawDelta(ours, delta))
        elif kind == "content_block_stop":
            if self._map.get(_index(data)) == self._open:
                self._close(out)
        elif kind == "message_delta":
            self._ensure_started(out)
            self._close(out)
            delta = data.get("delta") or {}
            usage = usage_from(data.get("usage"))
            if self._input is not None and not usage.input_tokens:
                usage.input_tokens = self._input.input_tokens
            stop = delta.get("stop_reason") or "end_turn"
            # llama.cpp says max_tokens beside a whole tool call; a call that arrived
            # complete is a tool_use stop, as the openai_chat path decides too.
            whole = all(complete_json("".join(parts)) for parts in self._tool_json.values())
            if stop in ("end_turn", "max_tokens") and self._tool_json and whole:
                stop = "tool_use"
            out.append(MessageDelta(stop, usage, delta.get("stop_sequence")))
        elif kind == "message_stop":
            self._ensure_started(out)
            self._close(out)
            out.append(MessageStop())
            self.saw_stop = True
            self.terminated = True
        elif kind == "ping":
            if self._started:
                out.append(Ping())
        elif kind == "error":
            err = data.get("error") or {}
            self._close(out)
            out.append(
                ErrorEvent(str(err.get("type") or "api_error"), str(err.get("message") or "upstream error"))
            )
            self.terminated = True
        return out

    def finish(self) -> list[Event]:
        """End of body: a stream that never said message_stop ends in an error event."""
        if self.terminated:
            return []
        out: list[Event] = []
        self._close(out)
        out.append(ErrorEvent("api_error", "the upstream stream ended before the answer was complete"))
        self.terminated = True
        return out

    def _ensure_started(self, out: list[Event]) -> None:
        if not self._started:
            self._started = True
            out.append(MessageStart(self._id, self._model, Usage(self._estimate, 1)))

    def _close(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open))
            self._open = None


def _index(data: JSON) -> int:
    value = data.get("index")
    return value if isinstance(value, int) else -1
