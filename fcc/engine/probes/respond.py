"""A probe's answer as the same typed events an upstream answer would produce."""

from __future__ import annotations

import math

from fcc.engine.probes.answers import ANSWERS
from fcc.engine.probes.model import Probe
from fcc.engine.translate.events import (
    BlockStart,
    BlockStop,
    Delta,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Usage,
)
from fcc.engine.types import JSON


def answer_text(probe: Probe, body: JSON) -> str:
    if probe.answer.empty:
        return ""
    if probe.answer.function is not None:
        return ANSWERS[probe.answer.function](body)
    return probe.answer.text or ""


def answer_events(probe: Probe, body: JSON, message_id: str, input_tokens: int) -> list[Event]:
    text = answer_text(probe, body)
    events: list[Event] = [MessageStart(message_id, str(body.get("model", "")), Usage(input_tokens, 1))]
    if text:
        events += [BlockStart(0, {"type": "text", "text": ""}), Delta(0, "text_delta", text), BlockStop(0)]
    output = max(1, math.ceil(len(text) / 4)) if text else 0
    events += [MessageDelta("end_turn", Usage(input_tokens, output)), MessageStop()]
    return events
