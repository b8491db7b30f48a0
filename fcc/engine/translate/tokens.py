"""An honest token estimate without a tokenizer: every part of the request counts (system,
text, tool calls and results, thinking, tool schemas), not only the text blocks, so the
client compacts on time. Roughly 3.5 characters a token for English, code and JSON.

The same estimate answers count_tokens and feeds routing (input_tokens_over, context
windows), computed once per request at the door; it also finds the images and documents
on the way. It must be cheap: a tool's schema is measured once and remembered by its name
and description (Claude Code sends the same 12-25 tools on every turn), and tool inputs are
measured by walking them, not by serializing them again.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

import msgspec

from fcc.engine.translate import toollist
from fcc.engine.types import JSON

_CHARS_PER_TOKEN = 3.5
_PER_MESSAGE = 4
_PER_TOOL = 8
_PER_IMAGE = 1600  # Anthropic bills a ~1.15-megapixel image at ~1,600 tokens
_TOOL_CACHE_SIZE = 512


class Tally(msgspec.Struct, frozen=True):
    tokens: int
    images: int
    documents: int


class ToolSizes:
    """Serialized size of tool definitions, remembered by (name, description, schema shape):
    one per server, so a session's repeated tools are measured once."""

    def __init__(self) -> None:
        self._sizes: OrderedDict[tuple[Any, ...], int] = OrderedDict()

    def size(self, tool: Any) -> int:
        if not isinstance(tool, dict):
            return _tool_size(tool)
        schema = tool.get("input_schema")
        props = schema.get("properties") if isinstance(schema, dict) else None
        key = (
            tool.get("name"),
            tool.get("type"),
            tool.get("description"),
            len(schema) if isinstance(schema, dict) else -1,
            tuple(props) if isinstance(props, dict) else (),
        )
        try:
            found = self._sizes.get(key)
        except TypeError:  # an unhashable name or description: measure, do not remember
            return _tool_size(tool)
        if found is None:
            found = _tool_size(tool)
            self._sizes[key] = found
            if len(self._sizes) > _TOOL_CACHE_SIZE:
                self._sizes.popitem(last=False)
        return found


def _tools_size(tools: list[Any], sizes: ToolSizes | None) -> int:
    if sizes is None:
        return sum(_tool_size(tool) for tool in tools)
    return sum(sizes.size(tool) for tool in tools)


def _tool_size(tool: Any) -> int:
    return len(json.dumps(tool, separators=(",", ":")))


def _walk_size(node: Any, depth: int = 0) -> int:
    """About the length of json.dumps(node), without building it."""
    if isinstance(node, str):
        return len(node) + 2
    if isinstance(node, dict):
        if depth > 32:
            return 0
        return sum(len(str(k)) + 4 + _walk_size(v, depth + 1) for k, v in node.items()) + 2
    if isinstance(node, list):
        if depth > 32:
            return 0
        return sum(_walk_size(v, depth + 1) + 1 for v in node) + 2
    return 5  # numbers, true/false/null


class _Counter:
    __slots__ = ("chars", "documents", "images")

    def __init__(self) -> None:
        self.chars = self.images = self.documents = 0

    def content(self, node: Any, depth: int = 0) -> None:
        if isinstance(node, str):
            self.chars += len(node)
        elif isinstance(node, list):
            if depth > 32:
                return
            for item in node:
                self.content(item, depth + 1)
        elif isinstance(node, dict):
            self.block(node, depth)

    def block(self, node: JSON, depth: int) -> None:
        kind = node.get("type")
        if kind == "text":
            text = node.get("text")
            self.chars += len(text) if isinstance(text, str) else 0
        elif kind == "image":
            self.images += 1
        elif kind == "thinking":
            text = node.get("thinking")
            self.chars += len(text) if isinstance(text, str) else 0
        elif kind == "tool_use":
            name = node.get("name")
            self.chars += (len(name) if isinstance(name, str) else 0) + _walk_size(node.get("input") or {})
        elif kind == "tool_result":
            self.content(node.get("content"), depth + 1)
        elif kind == "document":
            self.documents += 1
            source = node.get("source")
            source = source if isinstance(source, dict) else {}
            data = source.get("data")
            if source.get("type") == "base64" and isinstance(data, str):
                self.chars += len(data) // 3  # a PDF's text is a fraction of its bytes
            else:
                self.content(data if isinstance(data, str) else source.get("content"), depth + 1)
        else:
            self.chars += _walk_size(node)


def tally(body: JSON, sizes: ToolSizes | None = None) -> Tally:
    counter = _Counter()
    counter.content(body.get("system") or "")
    messages = body.get("messages") or []
    for message in messages:
        if isinstance(message, dict):
            counter.content(message.get("content"))
    tools = body.get("tools") or []
    known = toollist.shared(tools)
    if known is not None:
        counter.chars += known.derived("chars", lambda listed: _tools_size(listed, sizes))
    else:
        counter.chars += _tools_size(tools, sizes)
    overhead = _PER_MESSAGE * len(messages) + _PER_TOOL * len(tools) + _PER_IMAGE * counter.images
    return Tally(math.ceil(counter.chars / _CHARS_PER_TOKEN) + overhead, counter.images, counter.documents)


def count_tokens(body: JSON, sizes: ToolSizes | None = None) -> int:
    return tally(body, sizes).tokens
