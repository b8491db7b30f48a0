"""The client's request checked at the door: every field the translators read has the type
they expect, or the client hears exactly which one is wrong. Unknown fields and block types
pass; they are the client's business (and a future release's).

One walk over the structure, no schema engine: this runs on every request.
"""

from __future__ import annotations

import math
from typing import Any

from fcc.engine.errors import ClientError
from fcc.engine.translate import toollist
from fcc.engine.types import JSON

_ROLES = ("user", "assistant", "system")


Key = str | int  # a field's name, or an item's index


def _fail(where: str, what: str) -> ClientError:
    return ClientError(f"{where}: {what}")


def _at(where: str, path: tuple[Key, ...]) -> str:
    """The field's path as the client's error names it, e.g. messages[3].content[0].text.
    Built only for an error: a valid request's walk formats nothing."""
    return where + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)


def _wrong(value: Any, expected: str, where: str, path: tuple[Key, ...]) -> ClientError:
    return _fail(_at(where, path), f"must be {expected}, not {_kind(value)}")


def _str(value: Any, where: str, *path: Key, optional: bool = False) -> None:
    if not isinstance(value, str) and not (value is None and optional):
        raise _wrong(value, "a string", where, path)


def _dict(value: Any, where: str, *path: Key, optional: bool = False) -> JSON:
    if isinstance(value, dict):
        return value
    if value is None and optional:
        return {}
    raise _wrong(value, "an object", where, path)


def _number(value: Any, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, f"must be a finite number, not {_kind(value)}")


def _int(value: Any, where: str, minimum: int = 0) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, f"must be a whole number ≥ {minimum}, not {_kind(value)}")


def _kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


def check_request(body: JSON, *, need_max_tokens: bool) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ClientError("model: required, a string such as claude-sonnet-4-5")
    if need_max_tokens:
        mt = body.get("max_tokens")
        if isinstance(mt, bool) or not isinstance(mt, int) or mt < 0:
            raise ClientError("max_tokens: required, a non-negative integer")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ClientError("stream: must be true or false")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ClientError("messages: required, a non-empty list of {role, content}")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _blocks(system, "system")
    for i, message in enumerate(messages):
        message = _dict(message, "messages", i)
        if message.get("role") not in _ROLES:
            role = repr(message.get("role"))[:40]
            raise _fail(_at("messages", (i, "role")), f"unknown role {role}: use user, assistant or system")
        content = message.get("content")
        if not isinstance(content, str):
            _blocks(content, "messages", i, "content")
    _tools(body)
    for key in ("temperature", "top_p"):
        _number(body.get(key), key)
    _int(body.get("top_k"), "top_k")
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise _fail("stop_sequences", "must be a list of strings")
    metadata = _dict(body.get("metadata"), "metadata", optional=True)
    _str(metadata.get("user_id"), "metadata.user_id", optional=True)
    thinking = _dict(body.get("thinking"), "thinking", optional=True)
    _str(thinking.get("type"), "thinking.type", optional=True)
    _int(thinking.get("budget_tokens"), "thinking.budget_tokens")
    output = _dict(body.get("output_config"), "output_config", optional=True)
    _str(output.get("effort"), "output_config.effort", optional=True)
    fmt = _dict(output.get("format"), "output_config.format", optional=True)
    _dict(fmt.get("schema"), "output_config.format.schema", optional=True)


def _blocks(content: Any, where: str, *path: Key) -> None:
    if not isinstance(content, list):
        raise _fail(_at(where, path), f"must be a string or a list of content blocks, not {_kind(content)}")
    for i, block in enumerate(content):
        _block(block, where, (*path, i))


def _block(block: Any, where: str, at: tuple[Key, ...]) -> None:
    # Every message's blocks go through here: the checks are inline, and a path is formatted
    # only for the error (a call per field cost twice the time on a 400-message history).
    if not isinstance(block, dict):
        raise _wrong(block, "an object", where, at)
    kind = block.get("type")
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise _wrong(block.get("text"), "a string", where, (*at, "text"))
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str):
            raise _wrong(block.get("id"), "a string", where, (*at, "id"))
        if not isinstance(block.get("name"), str):
            raise _wrong(block.get("name"), "a string", where, (*at, "name"))
        if not isinstance(block.get("input"), dict | None):
            raise _wrong(block.get("input"), "an object", where, (*at, "input"))
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise _wrong(block.get("tool_use_id"), "a string", where, (*at, "tool_use_id"))
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            _blocks(content, where, *at, "content")
        if "is_error" in block and not isinstance(block["is_error"], bool | None):
            raise _fail(_at(where, (*at, "is_error")), "must be true or false")
    elif not isinstance(kind, str):
        raise _wrong(kind, "a string", where, (*at, "type"))
    elif kind in ("image", "document"):
        source = _dict(block.get("source"), where, *at, "source")
        _str(source.get("type"), where, *at, "source", "type")
        for key in ("data", "url", "media_type"):
            if key in source and source.get("type") != "content":
                _str(source[key], where, *at, "source", key)
        _str(block.get("title"), where, *at, "title", optional=True)
    elif kind == "thinking":
        _str(block.get("thinking"), where, *at, "thinking", optional=True)
        _str(block.get("signature"), where, *at, "signature", optional=True)
    elif kind == "redacted_thinking":
        _str(block.get("data"), where, *at, "data", optional=True)


def _tools(body: JSON) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _fail("tools", f"must be a list, not {_kind(tools)}")
    known = toollist.shared(tools)
    if known is None or not known.checked:
        for i, tool in enumerate(tools):
            tool = _dict(tool, "tools", i)
            _str(tool.get("name"), "tools", i, "name")
            _str(tool.get("type"), "tools", i, "type", optional=True)
            _str(tool.get("description"), "tools", i, "description", optional=True)
            _dict(tool.get("input_schema"), "tools", i, "input_schema", optional=True)
        if known is not None:
            known.checked = True
    choice = body.get("tool_choice")
    if choice is not None:
        choice = _dict(choice, "tool_choice")
        _str(choice.get("type"), "tool_choice.type")
        _str(choice.get("name"), "tool_choice.name", optional=True)
