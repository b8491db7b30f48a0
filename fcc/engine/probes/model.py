"""Probe documents frozen into typed values."""

from __future__ import annotations

import msgspec

from fcc.engine.request.conditions import Conditions, conditions_from_data
from fcc.engine.types import JSON


class Answer(msgspec.Struct, frozen=True):
    text: str | None = None
    function: str | None = None  # a name in answers.ANSWERS
    empty: bool = False


class Probe(msgspec.Struct, frozen=True):
    name: str
    match: Conditions
    answer: Answer
    description: str = ""
    source: str = "<builtin>"


def probe_from_data(data: JSON, source: str) -> Probe:
    a = data["answer"]
    answer = Answer(text=a.get("text"), function=a.get("function"), empty=bool(a.get("empty", False)))
    return Probe(
        data["name"], conditions_from_data(data["match"]), answer, data.get("description", ""), source
    )
