"""OpenAI chat.completion.chunk stream → Anthropic events (PROTOCOL.md F, G.2, G.3).

A pure state machine: feed() each decoded chunk, finish() at end of body. One block is open
at a time, indices run 0,1,2…, empty text blocks are never opened, and every stream ends in
message_delta + message_stop or in one error event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from fcc.engine.catalog.providers import Quirks
from fcc.engine.translate.events import (
    BlockStart,
    BlockStop,
    Delta,
    ErrorEvent,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Usage,
    count,
)
from fcc.engine.translate.signature import make_signature
from fcc.engine.translate.think import ThinkSplitter
from fcc.engine.translate.tool_input import ToolInput, tool_input
from fcc.engine.translate.toolids import to_anthropic
from fcc.engine.types import JSON

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


class _Call(msgspec.Struct):
    index: int | None
    upstream_id: str | None = None
    name: str | None = None
    args: list[str] = msgspec.field(default_factory=list)
    sent: bool = False  # its block went out (or it was dropped)
    thought_signature: str | None = None


class StreamOptions(msgspec.Struct, frozen=True):
    message_id: str
    model: str
    quirks: Quirks
    emit_thinking: bool = True  # the client asked for thinking, or the provider needs it back
    show_thinking: bool = True  # False: display "omitted" (the signature still carries it)
    carry_reasoning: bool = False  # put the reasoning into the signature for the next turn
    input_estimate: int = 0
    on_thought_signature: Callable[[str, str], None] | None = None


class OpenAIStreamTranslator:
    def __init__(self, options: StreamOptions) -> None:
        self._o = options
        self._split = ThinkSplitter() if options.quirks.think_tags else None
        self._open: Literal["text", "thinking"] | None = None
        self._next = 0
        self._reasoning: list[str] = []
        self._pending_ws = ""
        self._calls: list[_Call] = []
        self._dropped = 0  # calls cut off mid-arguments: never delivered
        self.notes: list[tuple[str, ToolInput]] = []  # (tool name, input) of repaired calls
        self._finish: str | None = None
        self._usage: JSON | None = None
        self._refusal = False
        self._out_chars = 0
        self.terminated = False

    def start(self) -> list[Event]:
        return [MessageStart(self._o.message_id, self._o.model, Usage(self._o.input_estimate, 1))]

    # -- input -------------------------------------------------------------------------------

    def feed(self, chunk: JSON) -> list[Event]:
        if self.terminated:
            return []
        out: list[Event] = []
        error = chunk.get("error")
        if error or chunk.get("object") == "error":
            return self._fail(out, _error_text(error if isinstance(error, dict) else chunk))
        groq = chunk.get("x_groq")
        usage = chunk.get("usage") or (groq.get("usage") if isinstance(groq, dict) else None)
        if isinstance(usage, dict):
            self._usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return out
        choice = choices[0]
        delta = choice.get("delta") or choice.get("message") or {}
        if not isinstance(delta, dict):
            return out
        reasoning = self._reasoning_of(delta)
        if reasoning:
            self._thinking(out, reasoning)
        content = delta.get("content")
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if content and isinstance(content, str):
            if self._split is None:
                self._text(out, content)
            else:
                for kind, text in self._split.feed(content):
                    (self._text if kind == "text" else self._thinking)(out, text)
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            self._refusal = True
            self._text(out, refusal)
        calls = delta.get("tool_calls")
        for position, tc in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(tc, dict):
                self._tool_fragment(out, tc, position)
        reason = choice.get("finish_reason")
        if reason == "error":
            return self._fail(out, "the upstream reported an error while generating")
        if reason and isinstance(reason, str):
            self._finish = reason
        return out

    def finish(self, saw_done: bool) -> list[Event]:
        if self.terminated:
            return []
        out: list[Event] = []
        if self._split is not None:
            for kind, text in self._split.flush():
                (self._text if kind == "text" else self._thinking)(out, text)
        if self._finish is None and not saw_done:
            return self._fail(out, "the upstream stream ended before the answer was complete")
        self._close(out)
        # Cut by the output limit: a call whose arguments never completed is not delivered
        # (the client could not parse it), and the stop stays max_tokens.
        self._send_calls(out, cut=self._finish == "length")
        stop = _STOP_REASONS.get(self._finish or "stop", "end_turn")
        if self._calls and not self._dropped:
            # A call emitted means tool_use, whatever the server said.
            stop = "tool_use"
        elif self._refusal:
            stop = "refusal"
        if self._o.on_thought_signature is not None:
            for call in self._calls:
                if call.thought_signature and call.upstream_id is not None:
                    self._o.on_thought_signature(to_anthropic(call.upstream_id), call.thought_signature)
        out.append(MessageDelta(stop, self._final_usage()))
        out.append(MessageStop())
        self.terminated = True
        return out

    def abort(self, message: str) -> list[Event]:
        """The transport lost the upstream mid-stream: end with an error event."""
        return [] if self.terminated else self._fail([], message)

    # -- blocks ------------------------------------------------------------------------------

    def _reasoning_of(self, delta: JSON) -> str | None:
        where = self._o.quirks.reasoning_field
        if where == "none":
            return None
        if where == "auto":
            value = delta.get("reasoning_content") or delta.get("reasoning")
        else:
            value = delta.get(where)
        return value if isinstance(value, str) else None

    def _text(self, out: list[Event], text: str) -> None:
        if self._open != "text":
            if not text.strip():
                # Never open a block that could end up whitespace-only.
                self._pending_ws += text
                return
            self._close(out)
            self._send_calls(out, cut=False)
            out.append(BlockStart(self._next, {"type": "text", "text": ""}))
            self._open = "text"
            # Models put blank lines after their reasoning; a block never starts with them.
            text, self._pending_ws = (self._pending_ws + text).lstrip("\r\n"), ""
        self._out_chars += len(text)
        out.append(Delta(self._next, "text_delta", text))

    def _thinking(self, out: list[Event], text: str) -> None:
        if not self._o.emit_thinking:
            return
        if self._open != "thinking":
            self._close(out)
            self._send_calls(out, cut=False)
            out.append(BlockStart(self._next, {"type": "thinking", "thinking": "", "signature": ""}))
            self._open = "thinking"
        self._reasoning.append(text)
        self._out_chars += len(text)
        if self._o.show_thinking:
            out.append(Delta(self._next, "thinking_delta", text))

    def _tool_fragment(self, out: list[Event], tc: JSON, position: int) -> None:
        # Calls are buffered until they are whole (Claude Code does not stream tool input
        # from custom base URLs, PROTOCOL.md G.3): each goes out as one block once the model
        # has moved on to other content, or at the end.
        self._close(out)  # the text or thinking before it is over: what follows goes after it
        call = self._call_for(tc, position)
        fn = tc.get("function")
        fn = fn if isinstance(fn, dict) else {}
        if fn.get("name") and isinstance(fn["name"], str) and not call.name:
            call.name = fn["name"]
        extra_content = tc.get("extra_content")
        google = extra_content.get("google") if isinstance(extra_content, dict) else None
        extra = google.get("thought_signature") if isinstance(google, dict) else None
        if isinstance(extra, str):
            call.thought_signature = extra
        args: Any = fn.get("arguments")
        if isinstance(args, dict):  # some servers send the object itself
            args = json.dumps(args, ensure_ascii=False)
        if isinstance(args, str) and args:
            call.args.append(args)
            self._out_chars += len(args)

    def _call_for(self, tc: JSON, position: int) -> _Call:
        index = tc.get("index")
        raw_id = tc.get("id")
        upstream_id = str(raw_id) if isinstance(raw_id, str | int) and raw_id != "" else None
        if upstream_id is not None:
            for call in self._calls:
                if call.upstream_id == upstream_id:
                    return call
            # A new id at a known index with an id already set is a new call (some proxies
            # give every parallel call index 0).
            same = self._last_at(index)
            if same is not None and same.upstream_id is None:
                same.upstream_id = upstream_id
                return same
        elif index is not None:
            same = self._last_at(index)
            if same is not None:
                return same
        elif self._calls:
            return self._calls[-1]
        call = _Call(index=index if isinstance(index, int) else position, upstream_id=upstream_id)
        self._calls.append(call)
        return call

    def _last_at(self, index: Any) -> _Call | None:
        if index is None:
            return None
        for call in reversed(self._calls):
            if call.index == index:
                return call
        return None

    def _send_calls(self, out: list[Event], *, cut: bool) -> None:
        """Every call not yet sent, in the order they began, each as one whole block."""
        for call in self._calls:
            if call.sent:
                continue
            call.sent = True
            arguments = tool_input("".join(call.args))
            if cut and arguments.changed:  # cut off mid-arguments: not a call at all
                self._dropped += 1
                continue
            if arguments.changed:
                self.notes.append((call.name or "unknown_tool", arguments))
            if call.upstream_id is None:
                call.upstream_id = to_anthropic(None)
            block = {
                "type": "tool_use",
                "id": to_anthropic(call.upstream_id),
                "name": call.name or "unknown_tool",
                "input": {},
            }
            out.append(BlockStart(self._next, block))
            out.append(Delta(self._next, "input_json_delta", arguments.text))
            out.append(BlockStop(self._next))
            self._next += 1

    def _close(self, out: list[Event]) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            carry = self._o.carry_reasoning
            out.append(Delta(self._next, "signature_delta", make_signature("".join(self._reasoning), carry)))
            self._reasoning.clear()
        out.append(BlockStop(self._next))
        self._next += 1
        self._open = None

    def _fail(self, out: list[Event], message: str) -> list[Event]:
        self._close(out)
        out.append(ErrorEvent("api_error", message))
        self.terminated = True
        return out

    def _final_usage(self) -> Usage:
        u = self._usage
        if not u:
            return Usage(self._o.input_estimate, max(1, self._out_chars // 4))
        details = u.get("prompt_tokens_details")
        details = details if isinstance(details, dict) else {}
        prompt = count(u.get("prompt_tokens"))
        cached = (
            count(details.get("cached_tokens"))
            or count(u.get("prompt_cache_hit_tokens"))
            or count(u.get("cached_tokens"))
        )
        written = count(details.get("cache_write_tokens")) or count(u.get("cache_write_tokens"))
        return Usage(
            input_tokens=max(prompt - cached - written, 0),
            output_tokens=count(u.get("completion_tokens")),
            cache_creation_input_tokens=written,
            cache_read_input_tokens=cached,
        )


def _error_text(error: JSON) -> str:
    message = error.get("message") or error.get("detail") or "the upstream reported an error"
    return f"upstream error: {message}"
