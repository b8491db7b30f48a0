"""fcc/engine/translate/wire.py: msgspec on the hot path must accept exactly what the standard library
accepts, with the same values, and write JSON the standard library reads back unchanged."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fcc.engine.translate import wire

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)  # past 64 bits too: they stay integers
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # lone surrogates included
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)


def same(a: object, b: object) -> bool:
    """Equal, with types (1 and 1.0 and True differ), -0.0 apart from 0.0, NaN like NaN."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_what_fcc_writes_reads_back_as_the_same_value(value: object):
    assert same(json.loads(wire.dumps(value)), value)
    assert same(wire.loads(wire.dumps(value)), value)


@settings(max_examples=400, deadline=None)
@given(VALUES, st.sampled_from([None, 2]))
def test_any_json_document_parses_as_the_standard_library_parses_it(value: object, indent: int | None):
    text = json.dumps(value, indent=indent, ensure_ascii=indent is None)
    assert same(wire.loads(text), json.loads(text))
    assert same(wire.loads(text.encode("utf-8", "surrogatepass")), json.loads(text))


JSONISH = st.text(alphabet='{}[]",:0123456789.eE+-truefalsnul \\\n\tabc\u00e9', max_size=40)


@settings(max_examples=2000, deadline=None)
@given(JSONISH)
def test_text_that_is_not_json_is_refused_as_the_standard_library_refuses_it(text: str):
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            wire.loads(text)
        return
    assert same(wire.loads(text), expected)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":NaN}',
        '{"a":Infinity}',
        '{"a":1e999}',
        '{"a":[1,]}',
        '{"a":01}',
        '\ufeff{"a":1}',
        "[" * 5000 + "]" * 5000,
    ],
)
def test_edge_documents(text: str):
    try:
        expected: object = json.loads(text)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)):
            wire.loads(text)
    else:
        assert same(wire.loads(text), expected)
