"""The Anthropic SSE grammar (PROTOCOL.md B), checked on every stream the tests produce."""

from __future__ import annotations

import json
from typing import Any


def parse_sse(raw: str) -> list[tuple[str | None, dict[str, Any]]]:
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


def check_grammar(events: list[tuple[str | None, dict[str, Any]]]) -> None:
    """Raise AssertionError naming the first rule a stream breaks."""
    assert events, "empty stream"
    for i, (name, data) in enumerate(events):
        assert name == data.get("type"), f"event {i}: event name {name!r} != data.type {data.get('type')!r}"
    assert events[0][0] == "message_start", f"first event is {events[0][0]}, not message_start"
    usage = events[0][1]["message"]["usage"]
    assert isinstance(usage.get("input_tokens"), int) and isinstance(usage.get("output_tokens"), int)
    open_index: int | None = None
    open_type: object = None
    tool_json: list[str] = []
    next_index = 0
    ended = False
    for i, (name, data) in enumerate(events[1:], 1):
        assert not ended, f"event {i} ({name}) after the stream ended"
        if name == "message_start":
            raise AssertionError(f"event {i}: second message_start")
        if name == "content_block_start":
            assert open_index is None, f"event {i}: block {data['index']} opened while {open_index} is open"
            assert data["index"] == next_index, f"event {i}: index {data['index']}, expected {next_index}"
            open_index = next_index
            next_index += 1
            block = data["content_block"]
            _check_block_start(i, block)
            open_type = block.get("type")
            tool_json = []
        elif name == "content_block_delta":
            assert data["index"] == open_index, f"event {i}: delta for {data['index']}, open is {open_index}"
            delta = data["delta"]
            allowed = _DELTAS.get(str(open_type))
            assert allowed is None or delta.get("type") in allowed, (
                f"event {i}: {delta.get('type')} inside a {open_type} block"
            )
            if delta.get("type") == "input_json_delta":
                tool_json.append(delta["partial_json"])
        elif name == "content_block_stop":
            assert data["index"] == open_index, f"event {i}: stop for {data['index']}, open is {open_index}"
            if open_type in ("tool_use", "server_tool_use"):
                _check_tool_input(i, "".join(tool_json))
            open_index = None
        elif name == "message_delta":
            assert open_index is None, f"event {i}: message_delta with block {open_index} open"
            assert data["delta"].get("stop_reason"), f"event {i}: message_delta without stop_reason"
            assert isinstance(data["usage"].get("output_tokens"), int)
            assert i + 2 == len(events) and events[i + 1][0] == "message_stop", (
                "message_delta must be followed by message_stop, last"
            )
        elif name == "message_stop":
            ended = True
        elif name == "error":
            assert i == len(events) - 1, f"event {i}: error must be the last event"
            ended = True
        elif name == "ping":
            pass
        else:
            raise AssertionError(f"event {i}: unknown event {name}")
    assert ended, "stream ends without message_stop or error"
    _check_no_empty_text(events)


# What the SDK's accumulator needs in each content_block_start (PROTOCOL.md B).
_REQUIRED: dict[str, dict[str, type]] = {
    "text": {"text": str},
    "tool_use": {"id": str, "name": str, "input": dict},
    "server_tool_use": {"id": str, "name": str, "input": dict},
    "thinking": {"thinking": str, "signature": str},
    "redacted_thinking": {"data": str},
}
_DELTAS: dict[str, set[str]] = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
    "server_tool_use": {"input_json_delta"},
    "redacted_thinking": set(),
}


def _check_block_start(i: int, block: dict[str, Any]) -> None:
    kind = block.get("type")
    assert isinstance(kind, str), f"event {i}: content_block without a type"
    for key, wanted in _REQUIRED.get(kind, {}).items():
        assert isinstance(block.get(key), wanted), (
            f"event {i}: {kind} block starts without {key} as {wanted.__name__}: {block}"
        )
    if kind == "text":
        assert block["text"] == "", f"event {i}: text block starts non-empty"
    if kind in ("tool_use", "server_tool_use"):
        assert block["input"] == {}, f"event {i}: {kind} block starts with input {block['input']!r}"


def _check_tool_input(i: int, text: str) -> None:
    try:
        value = json.loads(text)
    except ValueError:
        raise AssertionError(f"event {i}: tool input does not parse as JSON: {text[:80]!r}") from None
    assert isinstance(value, dict), f"event {i}: tool input is {type(value).__name__}, not an object"


def _check_no_empty_text(events: list[tuple[str | None, dict[str, Any]]]) -> None:
    texts: dict[int, str] = {}
    for name, data in events:
        if name == "content_block_start" and data["content_block"].get("type") == "text":
            texts[data["index"]] = ""
        elif (
            name == "content_block_delta"
            and data["delta"].get("type") == "text_delta"
            and data["index"] in texts
        ):
            texts[data["index"]] += data["delta"]["text"]
    for index, text in texts.items():
        assert text.strip(), f"text block {index} is empty"


def check_values(events: list[Any]) -> None:
    """The grammar on typed event values (unit tests), via their wire form."""
    check_grammar([(e.type, e.wire()) for e in events])
