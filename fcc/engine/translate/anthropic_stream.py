"""An Anthropic-compatible upstream's events → a stream that obeys the grammar (PROTOCOL.md B).

Servers get it slightly wrong: llama.cpp stops block 0 after starting block 1 and starts a
tool_use block without its `input`, some start at index 1, some repeat message_start, some
open text blocks they never fill, a newer one may send events fcc does not know. What goes
out follows the same rules as the openai_chat path:
- blocks are re-indexed in start order, one open at a time, each start carrying the fields
  the SDK requires (`input: {}` on tool_use, `thinking` and `signature` on thinking);
- a text block opens only once it has text; a delta must suit its block;
- a tool_use block is held until its input is whole, then sent as one block whose input
  parses (translate/tool_input.py); one cut off by max_tokens is not sent at all;
- stop reasons are ones the client knows; nothing follows message_delta but message_stop;
- unknown events and unknown delta types are dropped.
"""

from __future__ import annotations

import json
from typing import Any, cast

import msgspec

from fcc.engine.translate.events import (
    DELTA_FIELD,
    BlockStart,
    BlockStop,
    Delta,
    DeltaKind,
    ErrorEvent,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    RawDelta,
    Usage,
    count,
)
from fcc.engine.translate.tool_input import ToolInput, tool_input
from fcc.engine.translate.toolids import to_anthropic
from fcc.engine.types import JSON

_SKIP = -1  # an upstream block fcc drops (not an object): its deltas and stop are ignored
_TOOL = -2  # an upstream tool block being held until its input is whole
STOP_REASONS = frozenset(
    (
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    )
)
_CUT = ("max_tokens", "model_context_window_exceeded")
_TOOL_BLOCKS = ("tool_use", "server_tool_use")
# The deltas each kind of block takes; anything else is dropped.
_DELTAS: dict[str, frozenset[str]] = {
    "text": frozenset({"text_delta", "citations_delta"}),
    "thinking": frozenset({"thinking_delta", "signature_delta"}),
}


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


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


class _HeldTool(msgspec.Struct):
    index: int  # upstream index
    block: JSON
    parts: list[str] = msgspec.field(default_factory=list)


class AnthropicStreamNormalizer:
    def __init__(self, message_id: str, model: str, input_estimate: int = 0) -> None:
        self._id = message_id
        self._model = model
        self._estimate = input_estimate
        self._map: dict[int, int] = {}  # upstream index → ours (or _SKIP, _TOOL)
        self._open: int | None = None  # our index of the open block
        self._open_kind: str | None = None
        self._held: int | None = None  # upstream index of a text block waiting for text
        self._held_text = ""
        self._tool: _HeldTool | None = None  # a tool block still receiving its input
        self._unparsed: tuple[_HeldTool, ToolInput] | None = None  # stopped, input not JSON: cut?
        self._next = 0
        self._started = False
        self._delta_sent = False
        self._input: Usage | None = None
        self._tools_sent = 0
        self._dropped = 0
        self.notes: list[tuple[str, ToolInput]] = []  # (tool name, input) of repaired calls
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
            self._stop_block(out, _index(data))
        elif kind == "message_delta":
            self._message_delta(out, data)
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
            self._tool = self._unparsed = None
            self._close(out)
            error_type = str(err["type"]) if isinstance(err.get("type"), str) else "api_error"
            out.append(ErrorEvent(error_type, str(err.get("message") or "upstream error")))
            self.terminated = True
        elif kind == "message":
            # A server that ignored stream: true answered with the whole message.
            for event_type_, event in _as_events(data):
                out += self.feed(event_type_, event)
        return out

    def finish(self) -> list[Event]:
        """End of body. A stream that said message_delta was complete; any other is cut off."""
        if self.terminated:
            return []
        if self._delta_sent:
            self.terminated = True
            return [MessageStop()]
        out: list[Event] = []
        self._tool = self._unparsed = None
        self._close(out)
        out.append(ErrorEvent("api_error", "the upstream stream ended before the answer was complete"))
        self.terminated = True
        return out

    # -- blocks ------------------------------------------------------------------------------

    def _start_block(self, out: list[Event], index: int, block: Any) -> None:
        self._ensure_started(out)
        self._settle_tools(out, cut=False)  # another block begins: the one before was whole
        self._close(out)
        self._held, self._held_text = None, ""
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            self._map[index] = _SKIP
            return
        kind = block["type"]
        if kind == "text":
            # Opened once it has text: an empty text block is rejected when replayed.
            self._held = index
            self._held_text = _str(block.get("text"))
            self._map[index] = _SKIP
            self._release_text(out, "")
            return
        if kind in _TOOL_BLOCKS:
            self._tool = _HeldTool(index, block)
            self._map[index] = _TOOL
            initial = block.get("input")
            if isinstance(initial, dict) and initial:  # a server that sent the input whole
                self._tool.parts.append(json.dumps(initial, ensure_ascii=False))
            return
        if kind == "thinking":
            block = {
                **block,
                "thinking": _str(block.get("thinking")),
                "signature": _str(block.get("signature")),
            }
        elif kind == "redacted_thinking" and not isinstance(block.get("data"), str):
            self._map[index] = _SKIP
            return
        self._open, self._open_kind = self._next, kind
        self._map[index] = self._next
        self._next += 1
        out.append(BlockStart(self._open, dict(block)))

    def _stop_block(self, out: list[Event], index: int) -> None:
        if index == self._held:
            self._held, self._held_text = None, ""  # a text block that never had text
        elif self._tool is not None and self._tool.index == index:
            self._settle_tool(out)
        elif self._open is not None and self._map.get(index) == self._open:
            self._close(out)

    def _release_text(self, out: list[Event], text: str) -> None:
        pending = self._held_text + text
        if not pending.strip():
            self._held_text = pending
            return
        assert self._held is not None
        self._open, self._open_kind = self._next, "text"
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
        if ours == _TOOL:
            held = self._tool
            value = delta.get("partial_json")
            if (
                held is not None
                and held.index == index
                and dkind == "input_json_delta"
                and isinstance(value, str)
            ):
                held.parts.append(value)
            return
        if ours is None or ours == _SKIP or ours != self._open:
            return  # a delta for a block already closed, dropped, or never started
        allowed = _DELTAS.get(self._open_kind or "")
        if allowed is None or dkind not in allowed:
            return  # a thinking_delta in a text block, a delta for a whole block, a new kind
        if dkind in DELTA_FIELD:
            value = delta.get(DELTA_FIELD[dkind])
            if isinstance(value, str):
                out.append(Delta(ours, _kind(dkind), value))
        else:
            out.append(RawDelta(ours, delta))

    def _message_delta(self, out: list[Event], data: JSON) -> None:
        self._ensure_started(out)
        self._close(out)
        delta = _obj(data.get("delta"))
        stop = delta.get("stop_reason")
        stop = stop if stop in STOP_REASONS else "end_turn"
        self._settle_tools(out, cut=stop in _CUT)
        usage = usage_from(data.get("usage"))
        if self._input is not None and not usage.input_tokens:
            usage.input_tokens = self._input.input_tokens
        # llama.cpp says max_tokens beside a whole tool call; a call delivered whole is a
        # tool_use stop, as the openai_chat path decides too. One cut off keeps max_tokens.
        if stop in ("end_turn", "max_tokens") and self._tools_sent and not self._dropped:
            stop = "tool_use"
        sequence = delta.get("stop_sequence")
        out.append(MessageDelta(stop, usage, sequence if isinstance(sequence, str) else None))
        self._delta_sent = True

    # -- tool blocks -------------------------------------------------------------------------

    def _settle_tool(self, out: list[Event]) -> None:
        """The held tool block has stopped: send it if its input parses; otherwise wait for
        what comes next to say whether it was cut off (message_delta max_tokens) or not."""
        held, self._tool = self._tool, None
        if held is None:
            return
        arguments = tool_input("".join(held.parts))
        if not arguments.changed:
            self._send_tool(out, held, arguments)
            return
        self._settle_unparsed(out, cut=False)
        self._unparsed = (held, arguments)

    def _settle_tools(self, out: list[Event], *, cut: bool) -> None:
        self._settle_tool(out)
        self._settle_unparsed(out, cut=cut)

    def _settle_unparsed(self, out: list[Event], *, cut: bool) -> None:
        if self._unparsed is None:
            return
        held, arguments = self._unparsed
        self._unparsed = None
        if cut:
            self._dropped += 1
            return
        self.notes.append((_str(held.block.get("name")) or "unknown_tool", arguments))
        self._send_tool(out, held, arguments)

    def _send_tool(self, out: list[Event], held: _HeldTool, arguments: ToolInput) -> None:
        block = dict(held.block)
        block["id"] = _str(block.get("id")) or to_anthropic(None)
        block["name"] = _str(block.get("name")) or "unknown_tool"
        block["input"] = {}
        out.append(BlockStart(self._next, block))
        out.append(Delta(self._next, "input_json_delta", arguments.text))
        out.append(BlockStop(self._next))
        self._next += 1
        # A server tool (web search) ran upstream: only the client's own tools make tool_use.
        self._tools_sent += block["type"] == "tool_use"

    def _ensure_started(self, out: list[Event]) -> None:
        if not self._started:
            self._started = True
            out.append(MessageStart(self._id, self._model, Usage(self._estimate, 1)))

    def _close(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open))
            self._open = self._open_kind = None


def _kind(name: str) -> DeltaKind:
    return cast(DeltaKind, name)  # a key of DELTA_FIELD, checked by the caller


def _index(data: JSON) -> int:
    value = data.get("index")
    return value if isinstance(value, int) and not isinstance(value, bool) else -3


def _as_events(message: JSON) -> list[tuple[str, JSON]]:
    """A whole Messages response as the events that would have streamed it."""
    content = message.get("content")
    start = {**message, "content": []}
    events: list[tuple[str, JSON]] = [("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        head = dict(block)
        deltas: list[JSON] = []
        if kind == "text":
            head["text"] = ""
            deltas.append({"type": "text_delta", "text": _str(block.get("text"))})
        elif kind == "thinking":
            head["thinking"] = head["signature"] = ""
            deltas.append({"type": "thinking_delta", "thinking": _str(block.get("thinking"))})
            deltas.append({"type": "signature_delta", "signature": _str(block.get("signature"))})
        elif kind in _TOOL_BLOCKS:
            head["input"] = {}
            deltas.append({"type": "input_json_delta", "partial_json": json.dumps(block.get("input") or {})})
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": i, "content_block": head})
        )
        events += [
            ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d}) for d in deltas
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": message.get("usage")}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events
