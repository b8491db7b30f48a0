"""The client's request checked at the door: every field the translators read has the type
they expect, or the client hears exactly which one is wrong. Unknown fields and block types
pass; they are the client's business (and a future release's).

One walk over the structure, no schema engine: this runs on every request.
"""

from __future__ import annotations

import math
from typing import Any

from fcc.engine.errors import ClientError
from fcc.engine.types import JSON

_ROLES = ("user", "assistant", "system")


def _fail(where: str, what: str) -> ClientError:
    return ClientError(f"{where}: {what}")


def _str(value: Any, where: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise _fail(where, f"must be a string, not {_kind(value)}")


def _dict(value: Any, where: str, *, optional: bool = False) -> JSON:
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, f"must be an object, not {_kind(value)}")
    return value


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
        where = f"messages[{i}]"
        message = _dict(message, where)
        if message.get("role") not in _ROLES:
            role = repr(message.get("role"))[:40]
            raise _fail(f"{where}.role", f"unknown role {role}: use user, assistant or system")
        content = message.get("content")
        if not isinstance(content, str):
            _blocks(content, f"{where}.content")
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


def _blocks(content: Any, where: str) -> None:
    if not isinstance(content, list):
        raise _fail(where, f"must be a string or a list of content blocks, not {_kind(content)}")
    for i, block in enumerate(content):
        _block(block, f"{where}[{i}]")


def _block(block: Any, where: str) -> None:
    block = _dict(block, where)
    kind = block.get("type")
    _str(kind, f"{where}.type")
    if kind == "text":
        _str(block.get("text"), f"{where}.text")
    elif kind in ("image", "document"):
        source = _dict(block.get("source"), f"{where}.source")
        _str(source.get("type"), f"{where}.source.type")
        for key in ("data", "url", "media_type"):
            if key in source and source.get("type") != "content":
                _str(source[key], f"{where}.source.{key}")
        _str(block.get("title"), f"{where}.title", optional=True)
    elif kind == "tool_use":
        _str(block.get("id"), f"{where}.id")
        _str(block.get("name"), f"{where}.name")
        _dict(block.get("input"), f"{where}.input", optional=True)
    elif kind == "tool_result":
        _str(block.get("tool_use_id"), f"{where}.tool_use_id")
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            _blocks(content, f"{where}.content")
        if "is_error" in block and not isinstance(block["is_error"], bool | None):
            raise _fail(f"{where}.is_error", "must be true or false")
    elif kind == "thinking":
        _str(block.get("thinking"), f"{where}.thinking", optional=True)
        _str(block.get("signature"), f"{where}.signature", optional=True)
    elif kind == "redacted_thinking":
        _str(block.get("data"), f"{where}.data", optional=True)


def _plain_tool(tool: Any) -> bool:
    """A tool every check below passes (Claude Code sends 15-20 a turn)."""
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        return False
    kind, about, schema = tool.get("type"), tool.get("description"), tool.get("input_schema")
    return (
        (kind is None or isinstance(kind, str))
        and (about is None or isinstance(about, str))
        and (schema is None or isinstance(schema, dict))
    )


def _tools(body: JSON) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _fail("tools", f"must be a list, not {_kind(tools)}")
    for i, tool in enumerate(tools):
        if _plain_tool(tool):  # the shape of nearly every tool: nothing to say, no paths built
            continue
        where = f"tools[{i}]"
        tool = _dict(tool, where)
        _str(tool.get("name"), f"{where}.name")
        _str(tool.get("type"), f"{where}.type", optional=True)
        _str(tool.get("description"), f"{where}.description", optional=True)
        _dict(tool.get("input_schema"), f"{where}.input_schema", optional=True)
    choice = body.get("tool_choice")
    if choice is not None:
        choice = _dict(choice, "tool_choice")
        _str(choice.get("type"), "tool_choice.type")
        _str(choice.get("name"), "tool_choice.name", optional=True)
