"""Probe documents frozen into typed values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from fcc.engine.types import JSON, Tier


@dataclass(frozen=True, slots=True)
class Count:
    min: int | None = None
    max: int | None = None

    def holds(self, n: int) -> bool:
        return (self.min is None or n >= self.min) and (self.max is None or n <= self.max)


@dataclass(frozen=True, slots=True)
class TextRule:
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


@dataclass(frozen=True, slots=True)
class Match:
    message_count: Count | None = None
    roles: tuple[str, ...] | None = None
    tools: Literal["none", "present", "any"] = "any"
    max_tokens: Count | None = None
    system: TextRule | None = None
    first_user_text: TextRule | None = None
    last_user_text: TextRule | None = None
    prefill: TextRule | None = None
    output_schema_properties: frozenset[str] | None = None
    tiers: frozenset[Tier] | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    text: str | None = None
    function: str | None = None  # a name in answers.ANSWERS
    empty: bool = False


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    match: Match
    answer: Answer
    description: str = ""
    source: str = "<builtin>"


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


def probe_from_data(data: JSON, source: str) -> Probe:
    m = data["match"]
    props = m.get("output_schema_properties")
    tiers = m.get("tiers")
    match = Match(
        message_count=_count(m.get("message_count")),
        roles=tuple(m["roles"]) if "roles" in m else None,
        tools=m.get("tools", "any"),
        max_tokens=_count(m.get("max_tokens")),
        system=_text(m.get("system")),
        first_user_text=_text(m.get("first_user_text")),
        last_user_text=_text(m.get("last_user_text")),
        prefill=_text(m.get("prefill")),
        output_schema_properties=frozenset(props) if props is not None else None,
        tiers=frozenset(tiers) if tiers is not None else None,
    )
    a = data["answer"]
    answer = Answer(text=a.get("text"), function=a.get("function"), empty=bool(a.get("empty", False)))
    return Probe(data["name"], match, answer, data.get("description", ""), source)
