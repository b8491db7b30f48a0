"""A tool call's arguments as the JSON object a tool_use block must carry (PROTOCOL.md B, G.3).

The rule, one for both transports, streamed or not:
- arguments that parse as a JSON object are sent as they came;
- empty arguments are `{}`;
- arguments that are complete but not JSON are repaired only when that is unambiguous: a
  JSON string holding an object (double-encoded), or a Python literal dict (single quotes,
  True/False/None, trailing commas: what small models write) whose keys are strings;
- anything else becomes `{}`, and the raw text is kept for the operator's debug log (never
  logged at info level: it may quote the prompt).
Arguments cut off by the output limit never complete: the caller drops that call instead.
"""

from __future__ import annotations

import ast
import json
import math
from typing import Any, Literal

import msgspec

from fcc.engine.translate import wire

Outcome = Literal["json", "empty", "repaired", "replaced"]


class ToolInput(msgspec.Struct, frozen=True):
    text: str  # the JSON object text to send as the block's input
    outcome: Outcome
    raw: str  # what the upstream sent (for a debug log only)
    value: dict[str, Any] = msgspec.field(default_factory=dict)  # `text`, parsed

    @property
    def changed(self) -> bool:
        """Not as it came: the arguments did not arrive whole (or were cut off)."""
        return self.outcome in ("repaired", "replaced")


def tool_input(raw: str) -> ToolInput:
    if not raw.strip():
        return ToolInput("{}", "empty", raw)
    try:
        value = wire.loads(raw)
    except ValueError:
        value = _python_literal(raw)
        if value is None:
            return ToolInput("{}", "replaced", raw)
        return ToolInput(json.dumps(value, ensure_ascii=False), "repaired", raw, value)
    if isinstance(value, dict):
        return ToolInput(raw, "json", raw, value)
    if isinstance(value, str):
        inner = _json_object(value)
        if inner is not None:
            return ToolInput(json.dumps(inner, ensure_ascii=False), "repaired", raw, inner)
    return ToolInput("{}", "replaced", raw)


def input_object(raw: str) -> dict[str, Any]:
    """The parsed object, by the same rule (for a whole, non-streamed message)."""
    return tool_input(raw).value


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = wire.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _python_literal(text: str) -> dict[str, Any] | None:
    if len(text) > 1_000_000:  # literal_eval of a huge string is slow; no model writes one
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None
    if not isinstance(value, dict) or not _json_safe(value):
        return None
    return value


def _json_safe(value: Any, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_json_safe(v, depth + 1) for v in value)
    return False  # sets, bytes, complex numbers: not JSON, so not unambiguous
