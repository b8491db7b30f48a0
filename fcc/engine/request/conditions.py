"""Conditions on a request, as probe documents (`match:`) and routing rules (`when:`) write
them: one vocabulary, one schema (schemas/conditions.schema.json), one matcher.

Every condition given must hold. Conditions on what the request asks for read the
Features computed at the door; conditions on the conversation's wording read the body, and
only when the cheaper conditions have held.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, Literal

import msgspec

from fcc.engine.request.features import Features
from fcc.engine.translate.openai_request import system_text, text_of
from fcc.engine.types import JSON


class Count(msgspec.Struct, frozen=True):
    min: int | None = None
    max: int | None = None

    def holds(self, n: int) -> bool:
        return (self.min is None or n >= self.min) and (self.max is None or n <= self.max)


class TextRule(msgspec.Struct, frozen=True):
    equals: str | None = None
    starts_with: str | None = None
    ends_with: str | None = None
    contains: tuple[str, ...] = ()
    matches: re.Pattern[str] | None = None
    max_length: int | None = None

    def holds(self, text: str | None) -> bool:
        if text is None:
            return False
        return (
            (self.equals is None or text.strip() == self.equals)
            and (self.starts_with is None or text.lstrip().startswith(self.starts_with))
            and (self.ends_with is None or text.rstrip().endswith(self.ends_with))
            and all(c in text for c in self.contains)
            and (self.matches is None or self.matches.search(text) is not None)
            and (self.max_length is None or len(text) <= self.max_length)
        )


ToolsRule = Literal["none", "any"] | frozenset[str]


class Conditions(msgspec.Struct, frozen=True):
    # What the request asks for (read from Features).
    family: frozenset[str] | None = None
    model: tuple[str, ...] | None = None  # globs on the requested name, case-insensitive
    input_tokens_over: int | None = None
    has_images: bool | None = None
    has_documents: bool | None = None
    thinking: bool | None = None
    tools: ToolsRule | None = None  # none, any, or names/server-tool types that must all be there
    subagent: bool | None = None
    headers: tuple[tuple[str, str], ...] = ()  # lower-case name → glob on the value
    tiers: frozenset[str] | None = None  # the tier the model's family maps to
    max_tokens: Count | None = None
    # The conversation's shape and wording (read from the body).
    message_count: Count | None = None
    roles: tuple[str, ...] | None = None
    output_schema_properties: frozenset[str] | None = None
    system: TextRule | None = None
    first_user_text: TextRule | None = None
    last_user_text: TextRule | None = None
    prefill: TextRule | None = None

    @property
    def header_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.headers)


ALWAYS = Conditions()


def describe(c: Conditions) -> str:
    """The conditions in a line a person reads (fcc models, fcc route)."""
    parts: list[str] = []
    for name in Conditions.__struct_fields__:
        value = getattr(c, name)
        if value is None or value == ():
            continue
        if name == "headers":
            parts += [f"header {k}={v}" for k, v in value]
        elif isinstance(value, frozenset):
            parts.append(f"{name}={','.join(sorted(value))}")
        elif isinstance(value, tuple):
            parts.append(f"{name}={','.join(map(str, value))}")
        elif isinstance(value, TextRule):
            rule = {
                k: getattr(value, k)
                for k in TextRule.__struct_fields__
                if getattr(value, k) not in (None, ())
            }
            shown = ", ".join(
                f"{k} {v.pattern if isinstance(v, re.Pattern) else v!r}" for k, v in rule.items()
            )
            parts.append(f"{name} {shown}")
        elif isinstance(value, Count):
            low, high = ("" if n is None else n for n in (value.min, value.max))
            parts.append(f"{name} {low}..{high}")
        else:
            parts.append(f"{name}={str(value).lower() if isinstance(value, bool) else value}")
    return " and ".join(parts) or "always"


def holds(c: Conditions, body: JSON, features: Features, tier: str | None) -> bool:
    if c is ALWAYS:
        return True
    if c.family is not None and features.family not in c.family:
        return False
    if c.model is not None and not any(fnmatchcase(features.model.lower(), g) for g in c.model):
        return False
    if c.input_tokens_over is not None and features.input_tokens <= c.input_tokens_over:
        return False
    if c.has_images is not None and features.has_images != c.has_images:
        return False
    if c.has_documents is not None and features.has_documents != c.has_documents:
        return False
    if c.thinking is not None and features.thinking != c.thinking:
        return False
    if c.subagent is not None and features.subagent != c.subagent:
        return False
    if c.tools is not None and not _tools_hold(c.tools, features):
        return False
    for name, glob in c.headers:
        value = features.headers.get(name)
        if value is None or not fnmatchcase(value, glob):
            return False
    if c.tiers is not None and tier not in c.tiers:
        return False
    if c.max_tokens is not None and (
        features.max_tokens is None or not c.max_tokens.holds(features.max_tokens)
    ):
        return False
    return _body_holds(c, body)


def _tools_hold(rule: ToolsRule, features: Features) -> bool:
    if rule == "none":
        return features.tool_count == 0
    if rule == "any":
        return features.tool_count > 0
    return rule <= features.tools


def _user(messages: Iterable[Any]) -> dict[str, Any] | None:
    """The first user message in `messages` (reversed: the last)."""
    return next((m for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)


def _body_holds(c: Conditions, body: JSON) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    if c.message_count is not None and not c.message_count.holds(len(messages)):
        return False
    if c.roles is not None:
        if len(messages) != len(c.roles):  # most turns: no walk over a long history
            return False
        roles = tuple(m.get("role") if isinstance(m, dict) else None for m in messages)
        if roles != c.roles:
            return False
    if c.output_schema_properties is not None and _schema_properties(body) != c.output_schema_properties:
        return False
    if c.system is not None and not c.system.holds(system_text(body.get("system"))):
        return False
    if c.first_user_text is not None or c.last_user_text is not None:
        if c.first_user_text is not None:
            first = _user(messages)
            if first is None or not c.first_user_text.holds(text_of(first.get("content"))):
                return False
        if c.last_user_text is not None:
            last_user = _user(reversed(messages))
            if last_user is None or not c.last_user_text.holds(_last_text_block(last_user.get("content"))):
                return False
    if c.prefill is not None:
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "assistant":
            return False
        if not c.prefill.holds(text_of(last.get("content"))):
            return False
    return True


def _last_text_block(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for block in reversed(content):
            if isinstance(block, dict) and block.get("type") == "text":
                return str(block.get("text", ""))
    return None


def _schema_properties(body: JSON) -> frozenset[str] | None:
    fmt = (body.get("output_config") or {}).get("format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    props = (fmt.get("schema") or {}).get("properties")
    return frozenset(props) if isinstance(props, dict) else None


# -- from documents ----------------------------------------------------------------------------


def _count(value: Any) -> Count | None:
    if value is None:
        return None
    if isinstance(value, int):
        return Count(value, value)
    return Count(value.get("min"), value.get("max"))


def _text(value: Any) -> TextRule | None:
    if value is None:
        return None
    contains = value.get("contains", ())
    return TextRule(
        equals=value.get("equals"),
        starts_with=value.get("starts_with"),
        ends_with=value.get("ends_with"),
        contains=(contains,) if isinstance(contains, str) else tuple(contains),
        matches=re.compile(value["matches"]) if "matches" in value else None,
        max_length=value.get("max_length"),
    )


def _names(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def _tools(value: Any) -> ToolsRule | None:
    if value is None:
        return None
    if value == "present":  # the older spelling of "any" in probe documents
        return "any"
    if value in ("none", "any"):
        return "none" if value == "none" else "any"
    return frozenset(value)


def conditions_from_data(data: Mapping[str, Any] | None) -> Conditions:
    """A schema-valid `match:` or `when:` mapping as a frozen value."""
    if not data:
        return ALWAYS
    models = data.get("model")
    props = data.get("output_schema_properties")
    header = data.get("header") or {}
    return Conditions(
        family=_names(data.get("family")),
        model=tuple(g.lower() for g in ([models] if isinstance(models, str) else models))
        if models is not None
        else None,
        input_tokens_over=data.get("input_tokens_over"),
        has_images=data.get("has_images"),
        has_documents=data.get("has_documents"),
        thinking=data.get("thinking"),
        tools=_tools(data.get("tools")),
        subagent=data.get("subagent"),
        headers=tuple(sorted((str(k).lower(), str(v)) for k, v in header.items())),
        tiers=_names(data.get("tiers")),
        max_tokens=_count(data.get("max_tokens")),
        message_count=_count(data.get("message_count")),
        roles=tuple(data["roles"]) if "roles" in data else None,
        output_schema_properties=frozenset(props) if props is not None else None,
        system=_text(data.get("system")),
        first_user_text=_text(data.get("first_user_text")),
        last_user_text=_text(data.get("last_user_text")),
        prefill=_text(data.get("prefill")),
    )
