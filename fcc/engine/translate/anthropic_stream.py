"""An Anthropic-compatible upstream's events → a stream that obeys the grammar.

Servers get it slightly wrong: llama.cpp stops block 0 after starting block 1, some start
at index 1, some repeat message_start, some open text blocks they never fill. Blocks are
re-indexed in start order, one is open at a time, a text block opens only once it has
text, nothing follows message_delta but message_stop, and unknown events are dropped.
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
    count,
)
from fcc.engine.types import JSON

_SKIP = -1  # an upstream block fcc drops (not an object): its deltas and stop are ignored


def usage_from(data: Any) -> Usage:
    u = data if isinstance(data, dict) else {}
    return Usage(
        input_tokens=count(u.get("input_tokens")),
        output_tokens=count(u.get("output_tokens")),
        cache_creation_input_tokens=count(u["cache_creation_input_tokens"])
        if "cache_creation_input_tokens" in u
        else None,
        cache_read_input_tokens=count(u["cache_read_input_tokens"])
        if "cache_read_input_tokens" in u
        else None,
    )


def _obj(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


class AnthropicStreamNormalizer:
    def __init__(self, message_id: str, model: str, input_estimate: int = 0) -> None:
        self._id = message_id
        self._model = model
        self._estimate = input_estimate
        self._map: dict[int, int] = {}  # upstream index → ours (or _SKIP)
        self._open: int | None = None  # our index of the open block
        self._held: int | None = None  # upstream index of a text block waiting for text
        self._held_text = ""
        self._next = 0
        self._started = False
        self._delta_sent = False
        self._input: Usage | None = None
        self._tool_json: dict[int, list[str]] = {}  # our index → input fragments
        self.terminated = False

    def feed(self, event_type: str | None, data: JSON) -> list[Event]:
        if self.terminated:
            return []
        kind = data.get("type") or event_type
        out: list[Event] = []
        if self._delta_sent and kind != "message_stop":
            return out  # after message_delta only message_stop may come
        if kind == "message_start":
            if not self._started:
                self._started = True
                self._input = usage_from(_obj(data.get("message")).get("usage"))
                if not self._input.input_tokens:
                    self._input.input_tokens = self._estimate
                out.append(MessageStart(self._id, self._model, self._input))
        elif kind == "content_block_start":
            self._start_block(out, _index(data), data.get("content_block"))
        elif kind == "content_block_delta":
            self._delta(out, _index(data), data.get("delta"))
        elif kind == "content_block_stop":
            index = _index(data)
            if index == self._held:
                self._held, self._held_text = None, ""  # a text block that never had text
            elif self._open is not None and self._map.get(index) == self._open:
                self._close(out)
        elif kind == "message_delta":
            self._ensure_started(out)
            self._close(out)
            delta = _obj(data.get("delta"))
            usage = usage_from(data.get("usage"))
            if self._input is not None and not usage.input_tokens:
                usage.input_tokens = self._input.input_tokens
            stop = delta.get("stop_reason") if isinstance(delta.get("stop_reason"), str) else "end_turn"
            # llama.cpp says max_tokens beside a whole tool call; a call that arrived
            # complete is a tool_use stop, as the openai_chat path decides too.
            whole = all(complete_json("".join(parts)) for parts in self._tool_json.values())
            if stop in ("end_turn", "max_tokens") and self._tool_json and whole:
                stop = "tool_use"
            sequence = delta.get("stop_sequence")
            out.append(MessageDelta(stop, usage, sequence if isinstance(sequence, str) else None))
            self._delta_sent = True
        elif kind == "message_stop":
            if not self._delta_sent:
                return self.feed("message_delta", {"type": "message_delta"}) + self.feed("message_stop", data)
            out.append(MessageStop())
            self.terminated = True
        elif kind == "ping":
            if self._started:
                out.append(Ping())
        elif kind == "error":
            err = data.get("error")
            err = err if isinstance(err, dict) else {"message": str(err or "upstream error")}
            self._close(out)
            error_type = str(err["type"]) if isinstance(err.get("type"), str) else "api_error"
            out.append(ErrorEvent(error_type, str(err.get("message") or "upstream error")))
            self.terminated = True
        return out

    def finish(self) -> list[Event]:
        """End of body. A stream that said message_delta was complete; any other is cut off."""
        if self.terminated:
            return []
        if self._delta_sent:
            self.terminated = True
            return [MessageStop()]
        out: list[Event] = []
        self._close(out)
        out.append(ErrorEvent("api_error", "the upstream stream ended before the answer was complete"))
        self.terminated = True
        return out

    def _start_block(self, out: list[Event], index: int, block: Any) -> None:
        self._ensure_started(out)
        self._close(out)
        self._held, self._held_text = None, ""
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            self._map[index] = _SKIP
            return
        if block["type"] == "text":
            # Opened once it has text: an empty text block is rejected when replayed.
            self._held = index
            self._held_text = str(block["text"]) if isinstance(block.get("text"), str) else ""
            self._map[index] = _SKIP
            self._release_text(out, "")
            return
        self._open = self._next
        self._map[index] = self._next
        self._next += 1
        if block["type"] == "tool_use":
            self._tool_json[self._open] = []
        out.append(BlockStart(self._open, dict(block)))

    def _release_text(self, out: list[Event], text: str) -> None:
        pending = self._held_text + text
        if not pending.strip():
            self._held_text = pending
            return
        assert self._held is not None
        self._open = self._next
        self._map[self._held] = self._next
        self._next += 1
        self._held, self._held_text = None, ""
        out.append(BlockStart(self._open, {"type": "text", "text": ""}))
        out.append(Delta(self._open, "text_delta", pending))

    def _delta(self, out: list[Event], index: int, delta: Any) -> None:
        if not isinstance(delta, dict) or not isinstance(delta.get("type"), str):
            return
        dkind = delta["type"]
        if index == self._held and self._held is not None:
            if dkind == "text_delta" and isinstance(delta.get("text"), str):
                self._release_text(out, delta["text"])
            return
        ours = self._map.get(index)
        if ours is None or ours == _SKIP or ours != self._open:
            return  # a delta for a block already closed, dropped, or never started
        if dkind in DELTA_FIELD:
            value = delta.get(DELTA_FIELD[dkind])
            if isinstance(value, str):
                if dkind == "input_json_delta" and ours in self._tool_json:
                    self._tool_json[ours].append(value)
                out.append(Delta(ours, dkind, value))
        else:
            out.append(RawDelta(ours, delta))

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
    return value if isinstance(value, int) and not isinstance(value, bool) else -2
