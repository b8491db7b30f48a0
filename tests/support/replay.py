"""Run corpus files through the translators directly (no network): for snapshots."""

from __future__ import annotations

from typing import Any

import msgspec

from fcc.engine.catalog.providers import Quirks
from fcc.engine.translate.anthropic_stream import AnthropicStreamNormalizer
from fcc.engine.translate.events import Event
from fcc.engine.translate.openai_stream import OpenAIStreamTranslator, StreamOptions
from fcc.engine.translate.sse import SSEDecoder
from fcc.engine.transports.anthropic_messages import _Events
from fcc.engine.transports.base import StreamTranslator
from fcc.engine.transports.openai_chat import _Lines
from tests.support.upstream import CORPUS

OPENAI_CASES = sorted(p.stem for p in (CORPUS / "openai").glob("*.sse"))
ANTHROPIC_CASES = sorted(p.stem for p in (CORPUS / "anthropic").glob("*.sse"))


def run(translator: StreamTranslator, raw: str, split: int | None = None) -> list[Event]:
    """Feed `raw` in pieces of `split` characters (None: whole events) and collect events."""
    decoder = SSEDecoder()
    events = translator.start()
    pieces = [raw] if split is None else [raw[i : i + split] for i in range(0, len(raw), split)]
    for piece in pieces:
        for message in decoder.feed(piece):
            events += translator.feed(message)
    for message in decoder.flush():
        events += translator.feed(message)
    return events + translator.finish()


def openai(name: str, split: int | None = None, **options: Any) -> list[Event]:
    raw = (CORPUS / "openai" / f"{name}.sse").read_text(encoding="utf-8")
    base = StreamOptions(message_id="msg_test", model="claude-test", quirks=Quirks(), input_estimate=100)
    return run(_Lines(OpenAIStreamTranslator(msgspec.structs.replace(base, **options))), raw, split)


def anthropic(name: str, split: int | None = None) -> list[Event]:
    raw = (CORPUS / "anthropic" / f"{name}.sse").read_text(encoding="utf-8")
    return run(_Events(AnthropicStreamNormalizer("msg_test", "claude-test", 100)), raw, split)
