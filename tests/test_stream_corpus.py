"""Every upstream stream in the corpus, translated and pinned by a snapshot of the event values.

The grammar checker runs on each; the translation must not depend on where the bytes were cut.
"""

from __future__ import annotations

import pytest

from tests.support import replay
from tests.support.grammar import check_values


@pytest.mark.parametrize("name", replay.OPENAI_CASES)
def test_openai_stream(name, snapshot):
    events = replay.openai(name)
    check_values(events)
    assert events == snapshot


@pytest.mark.parametrize("name", replay.OPENAI_CASES)
def test_openai_stream_any_byte_split(name):
    whole = replay.openai(name)
    for split in (1, 7, 64):
        assert replay.openai(name, split=split) == whole


@pytest.mark.parametrize("name", replay.ANTHROPIC_CASES)
def test_anthropic_stream(name, snapshot):
    events = replay.anthropic(name)
    check_values(events)
    assert events == snapshot


@pytest.mark.parametrize("name", replay.ANTHROPIC_CASES)
def test_anthropic_stream_any_byte_split(name):
    whole = replay.anthropic(name)
    assert replay.anthropic(name, split=5) == whole


def test_the_corpus_is_there():
    assert len(replay.OPENAI_CASES) >= 30
    assert len(replay.ANTHROPIC_CASES) >= 10
