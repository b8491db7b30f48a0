"""Events become SSE bytes exactly once; the fast path for deltas must not change a byte."""

from __future__ import annotations

import json

import pytest

from fcc.engine.translate.events import Delta, encode
from fcc.engine.translate.wire import dumps

VALUES = ["", "plain", 'quotes " and \\ slashes', "emoji 🎉 and 你好\n\ttabs", "\u2028\u0000", "lone \ud800"]


@pytest.mark.parametrize("kind", ["text_delta", "input_json_delta", "thinking_delta", "signature_delta"])
@pytest.mark.parametrize("value", VALUES)
def test_delta_fast_path_matches_the_generic_encoding(kind: str, value: str):
    event = Delta(7, kind, value)  # type: ignore[arg-type]
    generic = b"event: " + event.type.encode() + b"\ndata: " + dumps(event.wire()) + b"\n\n"
    assert encode(event) == generic
    assert json.loads(encode(event).decode().split("data: ", 1)[1])["delta"] == event.wire()["delta"]
