"""Property tests: the stream translators, the SSE decoder and the HTTP edge under random input.

Defaults keep the file well under a minute and deterministic (derandomized). Set
FCC_FUZZ_EXAMPLES=N to run every property with N random examples instead.

The bugs this suite found are kept as explicit cases (wrong JSON types from upstreams,
grammar breaks, request-side crashes) beside the random properties that found them.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from fcc.engine.catalog.providers import Quirks
from fcc.engine.translate.anthropic_stream import AnthropicStreamNormalizer
from fcc.engine.translate.events import Delta, ErrorEvent, Event
from fcc.engine.translate.openai_stream import OpenAIStreamTranslator, StreamOptions
from fcc.engine.translate.sse import SSEDecoder, SSEMessage
from fcc.engine.transports.anthropic_messages import _Events
from fcc.engine.transports.openai_chat import _Lines
from tests.conftest import Live
from tests.support.grammar import check_grammar, check_values, parse_sse

_RUNS = int(os.environ.get("FCC_FUZZ_EXAMPLES", "0"))


def budget(default: int) -> settings:
    return settings(
        max_examples=_RUNS or default,
        deadline=None,
        derandomize=not _RUNS,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


def opt(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts whose every key may be missing."""
    return st.fixed_dictionaries({}, optional=fields)


JSON_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
JSON_ANY = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
FRAGMENTS = ["<think>", "</think>", "<th", "ink>", "</th", "<think", "/think>", "<", ">", "\n", "\n\n"]
FRAGMENTS += [" ", "  \n", "\r\n", "\t", "", "hi", "world", "é😀", "a\u0000b"]
TEXT = st.sampled_from(FRAGMENTS) | st.text(max_size=12)
ARGS = st.sampled_from(['{"a": 1}', '{"', 'a": ', "1}", "", "}", "garbage", "[1,2]", "null", "{}"])
ARGS = ARGS | st.sampled_from(['{"command": "ls"}', '"x"', '{"s": "\\u00e9 \\"q\\""}']) | st.text(max_size=6)
WHOLE_ARGS = ['{"command": "ls"}', "{}", '{"s": "\\u00e9 \\"q\\""}', '{"a": [1, {"b": null}], "c": true}', ""]


# -- 1a. OpenAI chunks → Anthropic events ------------------------------------------------------

TOOL_IDS = st.sampled_from(["call_1", "call_2", "functions.Bash:0", "c/3", "", "toolu_x"]) | st.none()
FINISH = st.sampled_from(
    [None, "stop", "length", "tool_calls", "function_call", "content_filter", "error", "eos", "", "STOP"]
)
TOOL_CALL = opt(
    {
        "index": st.integers(0, 3) | st.none(),
        "id": TOOL_IDS,
        "type": st.just("function"),
        "function": opt(
            {
                "name": st.sampled_from(["Bash", "Read", ""]) | st.none(),
                "arguments": ARGS | st.none() | st.just({"k": "v"}),
            }
        ),
    }
)
DELTA = opt(
    {
        "role": st.just("assistant"),
        "content": TEXT | st.none() | st.lists(opt({"type": st.just("text"), "text": TEXT}), max_size=2),
        "reasoning_content": TEXT | st.none(),
        "reasoning": TEXT | st.none(),
        "refusal": TEXT | st.none(),
        "tool_calls": st.lists(TOOL_CALL, max_size=3) | st.none(),
    }
)
TOKENS = st.integers(0, 10**6)
USAGE = opt(
    {
        "prompt_tokens": TOKENS | st.none(),
        "completion_tokens": TOKENS | st.none(),
        "total_tokens": TOKENS,
        "prompt_tokens_details": opt({"cached_tokens": TOKENS | st.none(), "cache_write_tokens": TOKENS})
        | st.none(),
        "prompt_cache_hit_tokens": TOKENS,
        # Wrong-but-harmless numeric types: floats and bools are numbers to int().
        "cached_tokens": st.floats(0, 1000) | st.booleans(),
    }
)
CHOICE = opt({"index": st.just(0), "delta": DELTA, "finish_reason": FINISH})
CHUNK = st.one_of(
    opt(
        {
            "id": st.just("chatcmpl-1"),
            "object": st.just("chat.completion.chunk"),
            "choices": st.lists(CHOICE, max_size=2),
            "usage": USAGE | st.none(),
        }
    ),
    st.fixed_dictionaries({"error": opt({"message": TEXT, "type": TEXT, "code": st.integers()})}),
    st.fixed_dictionaries({"object": st.just("error"), "message": TEXT}),
)
# What the transport feeds the translator: SSE data strings ([DONE], junk, comments).
LINE = CHUNK.map(json.dumps) | st.sampled_from(["[DONE]", "not json", "{", "", "[1, 2]", "null"])
OPTIONS = st.builds(
    lambda tags, field, emit, show, carry: StreamOptions(
        message_id="msg_fuzz",
        model="claude-fuzz",
        quirks=Quirks(think_tags=tags, reasoning_field=field),
        emit_thinking=emit,
        show_thinking=show,
        carry_reasoning=carry,
        input_estimate=7,
    ),
    st.booleans(),
    st.sampled_from(["auto", "none", "reasoning_content", "reasoning"]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
END = st.sampled_from(["finish", "abort"])


def run_openai(options: StreamOptions, lines: list[str], end: str) -> list[Event]:
    lines_in = _Lines(OpenAIStreamTranslator(options))
    events = lines_in.start()
    for data in lines:
        events += lines_in.feed(SSEMessage(None, data))
    events += lines_in.abort("connection lost") if end == "abort" else lines_in.finish()
    return events


@budget(400)
@given(OPTIONS, st.lists(LINE, max_size=14), END)
def test_openai_translator_is_total_and_grammatical(options: StreamOptions, lines: list[str], end: str):
    check_values(run_openai(options, lines, end))


def reference_think_split(text: str) -> tuple[str, str]:
    """(text, thinking) of a whole string: <think> opens outside, </think> closes inside, a
    stray </think> outside is dropped, a <think> inside is literal."""
    visible, thinking, inside = [], [], False
    while text:
        if inside:
            head, tag, text = text.partition("</think>")
            thinking.append(head)
            inside = not tag
        else:
            opened, closed = text.find("<think>"), text.find("</think>")
            if closed != -1 and (opened == -1 or closed < opened):
                visible.append(text[:closed])
                text = text[closed + len("</think>") :]
                continue
            head, tag, text = text.partition("<think>")
            visible.append(head)
            inside = bool(tag)
    return "".join(visible), "".join(thinking)


@budget(300)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=20))
def test_think_tags_cut_anywhere_lose_no_text(pieces: list[str]):
    """Content cut at random points: the text and thinking out are those of the whole string."""
    options = StreamOptions(
        message_id="m", model="c", quirks=Quirks(think_tags=True), emit_thinking=True, input_estimate=1
    )
    chunks = [json.dumps({"choices": [{"delta": {"content": p}}]}) for p in pieces]
    events = run_openai(options, [*chunks, "[DONE]"], "finish")
    check_values(events)
    deltas = [e for e in events if isinstance(e, Delta)]
    text = "".join(e.value for e in deltas if e.kind == "text_delta")
    thinking = "".join(e.value for e in deltas if e.kind == "thinking_delta")
    want_text, want_thinking = reference_think_split("".join(pieces))
    # Whitespace may go: leading blank lines, whitespace-only text runs.
    squash = lambda s: re.sub(r"\s", "", s)  # noqa: E731
    assert (squash(text), squash(thinking)) == (squash(want_text), squash(want_thinking))


# Chunks whose fields have the wrong JSON type. Each one crashes the translator; each is a bug
# (the transport maps a translator exception to HTTP 500 / a generic stream error, and no
# fallback candidate is tried). Expected: ignore the field, or end with an error event.
WRONG_TYPED_CHUNKS = {
    "choices_null_item": [{"choices": [None]}],
    "choices_object": [{"choices": {"0": {"delta": {"content": "a"}}}}],
    "delta_string": [{"choices": [{"delta": "hi"}]}],
    "x_groq_list": [{"x_groq": ["usage"]}],
    "content_number": [{"choices": [{"delta": {"content": 5}}]}],
    "content_object": [{"choices": [{"delta": {"content": {"text": "a"}}}]}],
    "refusal_list": [{"choices": [{"delta": {"refusal": ["no"]}}]}],
    "tool_calls_number": [{"choices": [{"delta": {"tool_calls": 5}}]}],
    "function_string": [{"choices": [{"delta": {"tool_calls": [{"index": 0, "function": "f"}]}}]}],
    "tool_id_number": [
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": 7, "function": {"name": "a"}}]}}]}
    ],
    "extra_content_string": [
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "extra_content": "x", "function": {}}]}}]}
    ],
    "finish_reason_list": [{"choices": [{"delta": {"content": "a"}, "finish_reason": ["stop"]}]}],
    "usage_tokens_word": [
        {"choices": [{"delta": {"content": "a"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": "n"}}
    ],
    "usage_details_string": [
        {
            "choices": [{"delta": {"content": "a"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "prompt_tokens_details": "none"},
        }
    ],
    # Python's json module (used by the transport) accepts the non-standard literal Infinity.
    "usage_infinity": [
        {"choices": [{"delta": {"content": "a"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1e999}}
    ],
}


@pytest.mark.parametrize("chunks", WRONG_TYPED_CHUNKS.values(), ids=WRONG_TYPED_CHUNKS.keys())
def test_openai_translator_survives_wrong_json_types(chunks: list[dict[str, Any]]):
    lines = [json.dumps(c) for c in chunks] + ["[DONE]"]
    check_values(run_openai(_plain_options(), lines, "finish"))


def _plain_options() -> StreamOptions:
    return StreamOptions(message_id="m", model="c", quirks=Quirks(), input_estimate=1)


G = JSON_ANY
GARBAGE_TOOL_CALL = opt({"index": G, "id": G, "function": G | opt({"name": G, "arguments": G})})
GARBAGE_DELTA = G | opt(
    {
        "content": G,
        "reasoning_content": G,
        "refusal": G,
        "tool_calls": G | st.lists(G | GARBAGE_TOOL_CALL, max_size=3),
    }
)
GARBAGE_CHUNK = G | opt(
    {
        "choices": G | st.lists(G | opt({"delta": GARBAGE_DELTA, "finish_reason": G}), max_size=2),
        "usage": G | opt({"prompt_tokens": G, "completion_tokens": G, "prompt_tokens_details": G}),
        "error": G,
        "object": G,
    }
)


@budget(200)
@given(st.lists(GARBAGE_CHUNK.map(json.dumps) | LINE, max_size=8))
@example([json.dumps({"choices": [None]})])
def test_openai_translator_survives_random_json(lines: list[str]):
    check_values(run_openai(_plain_options(), lines, "finish"))


# -- 1a. Anthropic events → normalized Anthropic events ---------------------------------------

MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "up",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    },
}
STOPS = ["end_turn", "max_tokens", "tool_use", "stop_sequence", "pause_turn", "refusal"]


@st.composite
def anthropic_stream(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A well-formed upstream stream, as the real API writes it."""
    out: list[dict[str, Any]] = [MESSAGE_START]
    for i in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            out.append({"type": "ping"})
        kind = draw(st.sampled_from(["text", "thinking", "tool_use", "redacted_thinking"]))

        def delta(d: dict[str, Any], i: int = i) -> dict[str, Any]:
            return {"type": "content_block_delta", "index": i, "delta": d}

        if kind == "text":
            block: dict[str, Any] = {"type": "text", "text": ""}
            texts = draw(st.lists(TEXT, min_size=1, max_size=4))
            if not "".join(texts).strip():
                texts.append("x")
            deltas = [delta({"type": "text_delta", "text": t}) for t in texts]
            if draw(st.booleans()):
                deltas.append(delta({"type": "citations_delta", "citation": {"x": 1}}))
        elif kind == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                delta({"type": "thinking_delta", "thinking": t}) for t in draw(st.lists(TEXT, max_size=3))
            ]
            deltas.append(delta({"type": "signature_delta", "signature": "sig"}))
        elif kind == "redacted_thinking":
            block, deltas = {"type": "redacted_thinking", "data": "abc"}, []
        else:
            block = {"type": "tool_use", "id": f"toolu_{i}", "name": "Bash", "input": {}}
            # The real API streams a whole object in pieces cut anywhere (often "" first).
            whole = draw(st.sampled_from(WHOLE_ARGS))
            cuts = sorted(draw(st.lists(st.integers(0, len(whole)), max_size=3)))
            parts = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
            deltas = [delta({"type": "input_json_delta", "partial_json": p}) for p in parts]
        out.append({"type": "content_block_start", "index": i, "content_block": block})
        out += deltas
        out.append({"type": "content_block_stop", "index": i})
    usage = {"output_tokens": draw(st.integers(0, 500))}
    stop = draw(st.sampled_from(STOPS))
    out.append(
        {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage}
    )
    out.append({"type": "message_stop"})
    return out


MUTATIONS = ["drop", "dup", "reindex", "delfield", "unknown", "swap", "truncate", "error", "nulltype"]


@st.composite
def mutated_anthropic_stream(draw: st.DrawFn, garbage: bool = False) -> list[dict[str, Any]]:
    """A well-formed stream with 1-4 mutations: wrong indices, missing fields, unknown types,
    duplicated or dropped starts/stops, reordering, truncation, error events."""
    events = draw(anthropic_stream())
    for _ in range(draw(st.integers(1, 4))):
        if not events:
            events = [{"type": draw(st.sampled_from(["ping", "message_stop", "content_block_stop", "x"]))}]
            continue
        op = draw(st.sampled_from([*MUTATIONS, "garbage"] if garbage else MUTATIONS))
        i = draw(st.integers(0, len(events) - 1))
        event = dict(events[i])
        fields = [k for k in event if k != "type"]
        if op == "drop":
            events = events[:i] + events[i + 1 :]
        elif op == "dup":
            events = [*events[: i + 1], event, *events[i + 1 :]]
        elif op == "reindex":
            event["index"] = draw(st.integers(-2, 6) | st.none() | st.just("0"))
            events = [*events[:i], event, *events[i + 1 :]]
        elif op == "delfield" and fields:
            del event[draw(st.sampled_from(fields))]
            events = [*events[:i], event, *events[i + 1 :]]
        elif op == "unknown":
            name = draw(st.sampled_from(["foo", "content_block_foo", "message_foo", ""]))
            events = [*events[:i], {"type": name, "index": 0}, *events[i:]]
        elif op == "swap":
            j = draw(st.integers(0, len(events) - 1))
            events = list(events)
            events[i], events[j] = events[j], events[i]
        elif op == "truncate":
            events = events[:i]
        elif op == "error":
            err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            events = [*events[:i], err, *events[i:]]
        elif op == "nulltype":
            event["type"] = None
            events = [*events[:i], event, *events[i + 1 :]]
        elif op == "garbage" and fields:
            event[draw(st.sampled_from(fields))] = draw(JSON_ANY)
            events = [*events[:i], event, *events[i + 1 :]]
    return events


def run_anthropic(events: list[dict[str, Any]], named: bool) -> list[Event]:
    normalizer = _Events(AnthropicStreamNormalizer("msg_fuzz", "claude-fuzz", 7))
    out = normalizer.start()
    for data in events:
        name = data.get("type") if named and isinstance(data.get("type"), str) else None
        out += normalizer.feed(SSEMessage(name, json.dumps(data)))
    return out + normalizer.finish()


def check_normalized(out: list[Event]) -> None:
    # A stream that errs before message_start is a refusal: the dispatcher turns a leading
    # error event into an HTTP error (dispatch.py, in_stream), so it never reaches a client.
    if out and isinstance(out[0], ErrorEvent):
        assert len(out) == 1, out
        return
    check_values(out)


@budget(300)
@given(anthropic_stream(), st.booleans())
def test_anthropic_normalizer_passes_valid_streams_through(events: list[dict[str, Any]], named: bool):
    out = run_anthropic(events, named)
    check_values(out)
    # The same message comes out: blocks, their text and input, the stop reason (whitespace
    # before a text block's first word may be merged into one delta; pings may be dropped).
    blocks, stop = _message_of([(e["type"], e) for e in events])
    # fcc's rule: a tool block's input always parses, so an empty one is sent as {}.
    blocks = tuple((k, t, j or "{}") if k == "tool_use" else (k, t, j) for k, t, j in blocks)
    tools = [b for b in blocks if b[0] == "tool_use"]
    if stop in ("end_turn", "max_tokens") and tools and all(_whole_json(b[2]) for b in tools):
        stop = "tool_use"  # fcc's rule: complete tool calls mean a tool_use stop
    assert _message_of([(e.type, e.wire()) for e in out]) == (blocks, stop)


def _whole_json(text: str) -> bool:
    if not text.strip():
        return True
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _message_of(events: list[tuple[str, dict[str, Any]]]) -> tuple[Any, ...]:
    blocks: list[list[Any]] = []
    stop = None
    for kind, data in events:
        if kind == "content_block_start":
            blocks.append([data["content_block"]["type"], "", ""])
        elif kind == "content_block_delta":
            delta = data["delta"]
            slot = 2 if delta["type"] == "input_json_delta" else 1
            blocks[-1][slot] += "".join(str(v) for k, v in delta.items() if k != "type")
        elif kind == "message_delta":
            stop = data["delta"]["stop_reason"]
    kept = tuple(tuple(b) for b in blocks if b[0] != "text" or b[1].strip())
    return kept, stop


@budget(500)
@given(mutated_anthropic_stream(), st.booleans())
def test_anthropic_normalizer_is_total_and_grammatical(events: list[dict[str, Any]], named: bool):
    check_normalized(run_anthropic(events, named))  # must never raise


def _block(i: int, block: Any) -> dict[str, Any]:
    return {"type": "content_block_start", "index": i, "content_block": block}


_TEXT0 = _block(0, {"type": "text", "text": ""})
_DELTA0 = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}
_STOP0 = {"type": "content_block_stop", "index": 0}
_MDELTA = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}
_MSTOP = {"type": "message_stop"}
NORMALIZER_BUGS = {
    # llama.cpp-style servers open a text block and close it without a delta; the Anthropic
    # API then rejects the replayed turn ("text content blocks must be non-empty").
    "empty_text_block_passed_through": [MESSAGE_START, _TEXT0, _STOP0, _MDELTA, _MSTOP],
    "non_object_content_block_becomes_empty_text": [MESSAGE_START, _block(0, "x"), _STOP0, _MDELTA, _MSTOP],
    "text_block_starting_non_empty": [
        MESSAGE_START,
        _block(0, {"type": "text", "text": "Hello"}),
        _STOP0,
        _MDELTA,
        _MSTOP,
    ],
    "block_after_message_delta": [MESSAGE_START, _MDELTA, _TEXT0, _DELTA0, _STOP0, _MSTOP],
    "message_delta_twice": [MESSAGE_START, _TEXT0, _DELTA0, _STOP0, _MDELTA, _MDELTA, _MSTOP],
}


@pytest.mark.parametrize("events", NORMALIZER_BUGS.values(), ids=NORMALIZER_BUGS.keys())
def test_anthropic_normalizer_known_grammar_breaks(events: list[dict[str, Any]]):
    check_normalized(run_anthropic(events, True))


NORMALIZER_WRONG_TYPES = {
    "message_not_object": [{"type": "message_start", "message": "m"}, _MSTOP],
    "message_delta_delta_string": [MESSAGE_START, {"type": "message_delta", "delta": "end_turn"}, _MSTOP],
    "error_is_string": [MESSAGE_START, {"type": "error", "error": "Overloaded"}],
    "delta_type_list": [
        MESSAGE_START,
        _TEXT0,
        {"type": "content_block_delta", "index": 0, "delta": {"type": []}},
    ],
    "usage_infinity": [
        {"type": "message_start", "message": {"usage": {"input_tokens": 1e999}}},
        _MSTOP,
    ],
}


@pytest.mark.parametrize("events", NORMALIZER_WRONG_TYPES.values(), ids=NORMALIZER_WRONG_TYPES.keys())
def test_anthropic_normalizer_survives_wrong_json_types(events: list[dict[str, Any]]):
    check_normalized(run_anthropic(events, True))


@budget(200)
@given(mutated_anthropic_stream(garbage=True), st.booleans())
@example([{"type": "message_start", "message": "m"}], True)
def test_anthropic_normalizer_survives_random_field_types(events: list[dict[str, Any]], named: bool):
    check_normalized(run_anthropic(events, named))


# -- 1b. SSE decoding --------------------------------------------------------------------------

FIELD_TEXT = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=10)


@st.composite
def sse_messages(draw: st.DrawFn) -> list[SSEMessage]:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        event = draw(st.none() | FIELD_TEXT)
        lines = draw(st.lists(FIELD_TEXT, min_size=0 if event is not None else 1, max_size=3))
        out.append(SSEMessage(event, "\n".join(lines)))
    return out


def encode_sse(messages: list[SSEMessage], comments: list[str], eol: str) -> str:
    parts = []
    for i, m in enumerate(messages):
        if comments and i < len(comments):
            parts.append(f":{comments[i]}{eol}")
        if m.event is not None:
            parts.append(f"event: {m.event}{eol}")
        if m.data or m.event is None:
            parts += [f"data: {line}{eol}" for line in m.data.split("\n")]
        parts.append(f"id: {i}{eol}retry: 10{eol}{eol}")
    return "".join(parts)


def decode_bytes(raw: bytes, cuts: list[int]) -> list[SSEMessage]:
    """As the transport does it: bytes in arbitrary pieces (feed_bytes), then flush."""
    decoder = SSEDecoder()
    out: list[SSEMessage] = []
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    for a, b in itertools.pairwise(points):
        out += decoder.feed_bytes(raw[a:b])
    return out + decoder.flush()


@budget(300)
@given(
    sse_messages(),
    st.lists(FIELD_TEXT, max_size=3),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.lists(st.integers(0, 10**6), max_size=12),
)
def test_sse_any_byte_split_decodes_the_same(
    messages: list[SSEMessage], comments: list[str], eol: str, cuts: list[int]
):
    raw = encode_sse(messages, comments, eol).encode()
    assert decode_bytes(raw, cuts) == decode_bytes(raw, []) == messages


@budget(200)
@given(
    st.lists(st.binary(max_size=40), max_size=5),
    st.lists(st.integers(0, 10**6), max_size=12),
)
def test_sse_any_bytes_cut_anywhere_decode_as_one_whole_decode(payloads: list[bytes], cuts: list[int]):
    # Bytes no UTF-8 has and characters cut across reads: what feed_bytes gives, in pieces,
    # is what decoding the whole stream at once (bad bytes as U+FFFD) gives.
    raw = b"".join(b"data: " + p.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n\n" for p in payloads)
    whole = SSEDecoder()
    assert decode_bytes(raw, cuts) == whole.feed(raw.decode("utf-8", "replace")) + whole.flush()


@budget(200)
@given(sse_messages(), st.lists(FIELD_TEXT, max_size=3), st.lists(st.integers(0, 10**6), max_size=8))
def test_sse_line_endings_are_equivalent(messages: list[SSEMessage], comments: list[str], cuts: list[int]):
    decoded = {
        eol: decode_bytes(encode_sse(messages, comments, eol).encode(), cuts) for eol in ("\n", "\r\n", "\r")
    }
    assert decoded["\n"] == decoded["\r\n"] == decoded["\r"] == messages


@budget(200)
@given(sse_messages(), st.data())
def test_sse_mixed_line_endings(messages: list[SSEMessage], data: st.DataObject):
    lf = encode_sse(messages, [], "\n")
    lines = lf.split("\n")[:-1]
    out, previous = [], ""
    for line in lines:
        # A CR then a lone LF would be one CRLF terminator, not two line ends.
        choices = ["\r\n", "\r"] if previous == "\r" and not line else ["\n", "\r\n", "\r"]
        previous = data.draw(st.sampled_from(choices))
        out.append(line + previous)
    assert decode_bytes("".join(out).encode(), data.draw(st.lists(st.integers(0, 10**6)))) == messages


def decode_by_character(text: str) -> list[SSEMessage]:
    """The general path alone: no feed ever holds a whole event."""
    decoder = SSEDecoder()
    out: list[SSEMessage] = []
    for character in text:
        out += decoder.feed(character)
    return out + decoder.flush()


# Reads as servers send them: mostly one whole `data:` event each (the decoder's fast path),
# between events with a type, comments, multi-line data, CRLF, a read ending on a lone CR and
# one ending inside an event.
READ = st.one_of(
    FIELD_TEXT.map(lambda text: f"data: {text}\n\n"),
    sse_messages().map(lambda messages: encode_sse(messages, [], "\n")),
    st.sampled_from(["\r\n", ": comment\n", "data: cut\r", "data: held\n", "\n", "event: ping\n"]),
    st.sampled_from(["data:x\n\n", "data: crlf\r\n\n", "data: a\rdata: b\n\n"]),  # look alike, are not
)


@budget(200)
@given(st.lists(READ, max_size=10))
def test_sse_whole_events_per_read_decode_as_the_general_path_does(reads: list[str]):
    decoder = SSEDecoder()
    out: list[SSEMessage] = []
    for read in reads:
        out += decoder.feed_bytes(read.encode())
    assert out + decoder.flush() == decode_by_character("".join(reads))


def test_sse_unterminated_last_event_is_flushed():
    assert decode_bytes(b"data: a\r\n\r\ndata: b", []) == [SSEMessage(None, "a"), SSEMessage(None, "b")]
    assert decode_bytes(b"data: x\r", []) == [SSEMessage(None, "x")]


# -- 1c. Request bodies against the running app -----------------------------------------------

SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(str.strip)
MODELS = st.sampled_from(
    [
        "replay/text:ok",
        "replay/text:hello_world",
        "replay_anthropic/text:ok",
        "claude-haiku-4-5",
        "claude-3-5-haiku-latest",
        "claude-sonnet-4-5",
        "claude-opus-4-1",
        "default-model",
    ]
) | SAFE_TEXT.filter(lambda m: not m.startswith(("replay/", "replay_anthropic/")))
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
SCHEMA = st.recursive(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "boolean", "number"])}),
    lambda inner: (
        st.fixed_dictionaries(
            {
                "type": st.just("object"),
                "properties": st.dictionaries(
                    st.from_regex(r"[a-z]{1,6}", fullmatch=True), inner, max_size=3
                ),
            }
        )
        | st.fixed_dictionaries({"type": st.just("array"), "items": inner})
    ),
    max_leaves=5,
)
TOOL_NAMES = st.sampled_from(["Bash", "Read", "get_weather", "mcp__x__y"])
CACHE = st.just({"cache_control": {"type": "ephemeral"}}) | st.just({})
TEXT_BLOCK = st.builds(lambda t, c: {"type": "text", "text": t, **c}, SAFE_TEXT, CACHE)
IMAGE_BLOCK = st.sampled_from(
    [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    ]
)
DOCUMENT_BLOCK = st.sampled_from(
    [
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
            "title": "t",
        },
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
    ]
)
TOOL_ID = st.from_regex(r"toolu_[A-Za-z0-9]{4,12}", fullmatch=True)
TOOL_USE = st.builds(
    lambda i, n, inp: {"type": "tool_use", "id": i, "name": n, "input": inp},
    TOOL_ID,
    TOOL_NAMES,
    st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), JSON_SCALAR, max_size=3),
)
TOOL_RESULT = st.builds(
    lambda i, c, e: {"type": "tool_result", "tool_use_id": i, "content": c, **e},
    TOOL_ID,
    SAFE_TEXT | st.lists(TEXT_BLOCK | IMAGE_BLOCK, max_size=2),
    st.just({}) | st.just({"is_error": True}),
)
THINKING_BLOCK = st.builds(lambda t: {"type": "thinking", "thinking": t, "signature": "sig"}, SAFE_TEXT)
THINKING_BLOCK = THINKING_BLOCK | st.just({"type": "redacted_thinking", "data": "abc"})
UNKNOWN_BLOCK = st.builds(
    lambda k: {"type": k, "payload": 1}, st.sampled_from(["container_upload", "future_x"])
)
USER_BLOCKS = st.lists(
    TEXT_BLOCK | IMAGE_BLOCK | DOCUMENT_BLOCK | TOOL_RESULT | UNKNOWN_BLOCK, min_size=1, max_size=4
)
ASSISTANT_BLOCKS = st.lists(TEXT_BLOCK | TOOL_USE | THINKING_BLOCK | UNKNOWN_BLOCK, min_size=1, max_size=4)
MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": st.just("user"), "content": SAFE_TEXT | USER_BLOCKS}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": SAFE_TEXT | ASSISTANT_BLOCKS}),
)
TOOL = st.builds(
    lambda n, s, d: {"name": n, "input_schema": {"type": "object", "properties": {"p": s}}, **d},
    TOOL_NAMES,
    SCHEMA,
    st.just({}) | st.just({"description": "does things"}) | st.just({"type": "custom", "strict": True}),
)
OPTIONAL_FIELDS = {
    "system": SAFE_TEXT | st.lists(TEXT_BLOCK, min_size=1, max_size=3),
    "tools": st.lists(TOOL | st.just({"type": "web_search_20250305", "name": "web_search"}), max_size=3),
    "tool_choice": st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"}])
    | st.builds(lambda n: {"type": "tool", "name": n, "disable_parallel_tool_use": True}, TOOL_NAMES),
    "thinking": st.sampled_from(
        [
            {"type": "enabled", "budget_tokens": 1024},
            {"type": "adaptive"},
            {"type": "adaptive", "display": "omitted"},
            {"type": "disabled"},
        ]
    ),
    "stream": st.booleans(),
    "temperature": st.floats(0, 1),
    "top_p": st.floats(0, 1),
    "top_k": st.integers(1, 100),
    "stop_sequences": st.lists(SAFE_TEXT, max_size=5),
    "metadata": st.fixed_dictionaries({"user_id": SAFE_TEXT}),
    "output_config": st.sampled_from([{"effort": "high"}, {"effort": "low"}, {}]),
    "context_management": st.just({"edits": [{"type": "clear_thinking_20251015"}]}),
    "service_tier": st.just("auto"),
    "x_unknown_field": JSON_ANY,
}
VALID_BODY = st.builds(
    lambda model, messages, max_tokens, extra: {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        **extra,
    },
    MODELS,
    st.lists(MESSAGE, min_size=1, max_size=4),
    st.integers(1, 64000),
    opt(OPTIONAL_FIELDS),
)


_CLIENT = httpx.Client(timeout=30)  # one pool: a new client per request costs ~50 ms (TLS setup)


def _post(url: str, raw: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return _CLIENT.post(
        f"{url}/v1/messages",
        content=raw,
        # A 500 makes uvicorn drop the connection after answering; a pooled connection would
        # then race that close. A fresh connection each time keeps failures deterministic.
        headers={"content-type": "application/json", "connection": "close", **(headers or {})},
    )


def assert_anthropic_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["type"] == "error", body
    assert isinstance(body["error"]["type"], str) and body["error"]["type"], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"].strip(), body
    assert response.headers["request-id"].startswith("req_")
    return body


def assert_good_answer(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:500]
    if response.headers["content-type"].startswith("text/event-stream"):
        check_grammar(parse_sse(response.text))
    else:
        message = response.json()
        assert message["type"] == "message" and isinstance(message["content"], list), message


def assert_still_serving(url: str) -> None:
    body = {
        "model": "replay/text:still_here",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    raw = json.dumps(body).encode()
    response = _post(url, raw)
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "still here"


def test_valid_bodies_are_answered(fcc_url: str):
    @budget(150)
    @given(VALID_BODY)
    def run(body: dict[str, Any]) -> None:
        assert_good_answer(_post(fcc_url, json.dumps(body).encode()))

    run()
    assert_still_serving(fcc_url)


# Mutations of a valid body. Each yields (label, raw bytes, the parsed body or None).
WRONG = st.sampled_from([None, 0, -1, 1.5, True, "", "x", [], {}, [None], {"a": None}, 10**30])


def _nulled(node: Any, draw: st.DrawFn) -> Any:
    if isinstance(node, dict):
        return {k: None if draw(st.integers(0, 3)) == 0 else _nulled(v, draw) for k, v in node.items()}
    if isinstance(node, list):
        return [None if draw(st.integers(0, 3)) == 0 else _nulled(v, draw) for v in node]
    return node


@st.composite
def mutated_request(draw: st.DrawFn) -> tuple[str, bytes, Any]:
    body = copy.deepcopy(draw(VALID_BODY))  # strategies share constants (st.just): never edit them
    body["stream"] = draw(st.booleans())
    op = draw(
        st.sampled_from(
            [
                "top_wrong",
                "top_missing",
                "empty_messages",
                "role",
                "message_wrong",
                "content_wrong",
                "block_wrong",
                "block_field",
                "nulls",
                "deep",
                "non_object",
                "bad_utf8",
                "truncated",
            ]
        )
    )
    messages = body["messages"]
    i = draw(st.integers(0, len(messages) - 1))
    if op == "top_wrong":
        key = draw(
            st.sampled_from(["model", "messages", "max_tokens", "stream", "system", "tools", "thinking"])
        )
        body[key] = draw(WRONG | JSON_ANY)
    elif op == "top_missing":
        del body[draw(st.sampled_from(["model", "messages", "max_tokens"]))]
    elif op == "empty_messages":
        body["messages"] = []
    elif op == "role":
        messages[i]["role"] = draw(st.sampled_from(["tool", "function", "developer", "", "USER"]) | WRONG)
    elif op == "message_wrong":
        messages[i] = draw(WRONG | JSON_ANY)
    elif op == "content_wrong":
        messages[i]["content"] = draw(WRONG | JSON_ANY)
    elif op == "block_wrong":
        messages[i]["content"] = [
            draw(WRONG | JSON_ANY | opt({"type": st.sampled_from(["text", "image"]) | G}))
        ]
    elif op == "block_field":
        block = copy.deepcopy(
            draw(TEXT_BLOCK | IMAGE_BLOCK | TOOL_RESULT | TOOL_USE | DOCUMENT_BLOCK | THINKING_BLOCK)
        )
        keys = sorted(block)
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()):
            del block[key]
        else:
            block[key] = draw(WRONG | JSON_ANY)
        messages[i]["content"] = [block]
    elif op == "nulls":
        body = _nulled(body, draw)
    elif op == "deep":
        depth = draw(st.integers(50, 800))
        raw = json.dumps(body)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
        return op, raw.encode(), {**body, "deep": "…"}
    elif op == "non_object":
        raw = json.dumps(draw(st.lists(JSON_ANY, max_size=2) | JSON_SCALAR | st.just([body])))
        return op, raw.encode(), None
    elif op == "bad_utf8":
        raw = json.dumps(body).encode()
        at = draw(st.integers(0, len(raw)))
        return (
            op,
            raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + raw[at:],
            None,
        )
    elif op == "truncated":
        raw = json.dumps(body).encode()
        return op, raw[: draw(st.integers(0, len(raw) - 1))], None
    return op, json.dumps(body).encode(), body


def _walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_mutated_bodies_are_refused_cleanly(fcc_url: str, live_upstream: Live):
    @budget(300)
    @given(mutated_request())
    def run(case: tuple[str, bytes, Any]) -> None:
        op, raw, _body = case
        seen = len(live_upstream.upstream.requests)
        response = _post(fcc_url, raw)
        note(f"{op}: {response.status_code} {response.text[:300]}")
        event(f"{op} -> {response.status_code}")
        if response.status_code == 500:
            time.sleep(0.25)  # let the server log its traceback first (see test_hostile_input.settle)
        assert response.status_code != 500, response.text
        if 400 <= response.status_code < 500:
            assert_anthropic_error(response)
            assert len(live_upstream.upstream.requests) == seen, "a refused request reached the upstream"
        else:
            assert_good_answer(response)

    run()
    assert_still_serving(fcc_url)


def test_sse_data_lines_with_and_without_the_space_after_the_colon():
    # The spec strips one space after the colon, if there is one: "data: x" and "data:x" are
    # the same line, "data:  x" keeps one space, and a bare "data" is an empty line of data.
    raw = "data:x\ndata: y\ndata:  z\ndata\ndata: \n\nevent:e\ndata:{}\n\n"
    assert SSEDecoder().feed(raw) == [SSEMessage(None, "x\ny\n z\n\n"), SSEMessage("e", "{}")]
