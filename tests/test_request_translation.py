"""Anthropic → upstream request translation, over the real Claude Code recordings and the
rules of PROTOCOL.md G.1/G.4 one by one."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.providers import ModelInfo, Quirks
from fcc.engine.translate.anthropic_request import forward_betas, to_anthropic_upstream
from fcc.engine.translate.openai_request import Target, to_openai
from fcc.engine.translate.signature import make_signature
from fcc.engine.translate.toolids import to_anthropic, to_upstream, upstream_id
from tests.conftest import FIXTURES

RECORDED = sorted(p for p in FIXTURES.glob("*.json") if json.loads(p.read_text())["method"] == "POST")


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())["body"]


def test_fixtures_are_present():
    assert len(RECORDED) >= 12, f"expected the recorded Claude Code requests in {FIXTURES}"


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_requests_translate_for_openai(path: Path, snapshot):
    body = json.loads(path.read_text())["body"]
    out = to_openai(body, Target("qwen/qwen3-coder", Quirks(), output_cap=65536, thinking=True))
    # Claude Code's per-session attribution block never reaches the upstream.
    assert "x-anthropic-billing-header" not in json.dumps(out)
    assert out == snapshot


@pytest.mark.parametrize("provider", ["gemini", "deepseek", "mistral", "lmstudio", "openrouter", "openai"])
def test_main_tool_turn_translates_for_each_provider_style(provider, snapshot):
    p = load_settings().providers[provider]
    model = p.models[0].id if p.models else "m"
    target = Target(model, p.quirks, p.model(model), p.output_cap(model), thinking=True)
    out = to_openai(recorded("cc2.1.330-main-tool-turn2-result"), target)
    for field in p.quirks.drop_fields:
        assert field not in out
    assert {k: v for k, v in out.items() if k != "messages" and k != "tools"} == snapshot
    assert [t["function"]["parameters"] for t in out["tools"]] == snapshot


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_requests_forward_to_anthropic_upstreams(path: Path):
    body = json.loads(path.read_text())["body"]
    out = to_anthropic_upstream(body, "qwen3-coder:30b", Quirks(fold_system_messages=True), False, 8192)
    assert out["model"] == "qwen3-coder:30b"
    assert out["stream"] is True
    assert out.get("max_tokens", 0) <= 8192
    assert all(m["role"] != "system" for m in out["messages"])
    assert "x-anthropic-billing-header" not in json.dumps(out.get("system", ""))


def _target(**quirks) -> Target:
    return Target("m", Quirks(**quirks))


def test_system_blocks_join_and_drop_billing_block():
    body = {
        "max_tokens": 10,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
            {"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Use tools."},
        ],
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert to_openai(body, _target())["messages"][0] == {
        "role": "system",
        "content": "Be terse.\n\nUse tools.",
    }


def test_mid_conversation_system_messages_stay_or_become_user_text():
    body = {
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "system", "content": [{"type": "text", "text": "env info"}]},
            {"role": "assistant", "content": "ok"},
        ],
    }
    anywhere = to_openai(body, _target())["messages"]
    assert anywhere[1] == {"role": "system", "content": "env info"}
    first_only = to_openai(body, _target(system_messages="first_only"))["messages"]
    assert first_only[0]["role"] == "user" and "env info" in first_only[0]["content"]
    assert [m["role"] for m in first_only] == ["user", "assistant"]


def test_tool_round_trip_pairs_ids_and_marks_errors():
    kimi_id = to_anthropic("functions.Bash:3")
    body = {
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "run it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Running."},
                    {"type": "tool_use", "id": kimi_id, "name": "Bash", "input": {"command": "false"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": kimi_id, "content": "exit 1", "is_error": True},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [
                            {"type": "text", "text": "line"},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                            },
                        ],
                    },
                    {"type": "text", "text": "now what?"},
                ],
            },
        ],
    }
    msgs = to_openai(body, _target())["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool", "user"]
    assert msgs[1]["content"] == "Running."
    assert [c["id"] for c in msgs[1]["tool_calls"]] == ["functions.Bash:3", "toolu_2"]
    assert json.loads(msgs[1]["tool_calls"][0]["function"]["arguments"]) == {"command": "false"}
    assert msgs[2] == {"role": "tool", "tool_call_id": "functions.Bash:3", "content": "[tool error] exit 1"}
    assert msgs[3] == {"role": "tool", "tool_call_id": "toolu_2", "content": "line"}
    # The tool result's image follows the tool messages, before the user's own text.
    assert msgs[4]["content"][0]["type"] == "image_url"
    assert msgs[4]["content"][0]["image_url"]["url"] == "data:image/png;base64,iVBO"
    assert msgs[4]["content"][1] == {"type": "text", "text": "now what?"}


def test_tool_ids_round_trip_and_alnum9():
    for original in ["call_abc", "functions.Bash:3", "fccx_looks_like_ours", "a b/c"]:
        assert to_upstream(to_anthropic(original)) == original
    assert to_anthropic("") != to_anthropic("")  # synthesized ids are unique
    nine = upstream_id(to_anthropic("functions.Read:1"), "alnum9")
    assert len(nine) == 9 and nine.isalnum()
    assert upstream_id(to_anthropic("functions.Read:1"), "alnum9") == nine  # stable
    assert upstream_id("aB3dE6gH9", "alnum9") == "aB3dE6gH9"


def test_tools_server_tools_dropped_and_choices_mapped():
    body = {
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [
            {
                "name": "Bash",
                "description": "run",
                "input_schema": {"type": "object", "properties": {}},
                "defer_loading": True,
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }
    out = to_openai(body, _target())
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Bash",
                "parameters": {"type": "object", "properties": {}},
                "description": "run",
            },
        }
    ]
    assert out["tool_choice"] == "required"
    assert out["parallel_tool_calls"] is False
    body["tool_choice"] = {"type": "tool", "name": "Bash"}
    assert to_openai(body, _target())["tool_choice"] == {"type": "function", "function": {"name": "Bash"}}
    body["tools"] = body["tools"][1:]
    out = to_openai(body, _target())
    assert "tools" not in out and "tool_choice" not in out


def test_schema_cleaning_by_policy():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "n": {"type": "integer", "exclusiveMinimum": 0},
            "const": {"const": "x"},  # a property *named* const survives
            "nested": {"type": "object", "properties": {}, "additionalProperties": False},
        },
        "required": ["n", "const"],
    }
    body = {
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "t", "input_schema": schema}],
    }
    strip = frozenset({"$schema", "additionalProperties", "exclusiveMinimum", "const"})
    params = to_openai(body, _target(strip_keywords=strip, drop_empty_properties=True))["tools"][0][
        "function"
    ]["parameters"]
    assert params == {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "const": {}, "nested": {"type": "object"}},
        "required": ["n", "const"],
    }
    untouched = to_openai(body, _target())["tools"][0]["function"]["parameters"]
    assert untouched == schema


def test_max_tokens_clamped_only_to_the_declared_cap():
    body = {"max_tokens": 128000, "messages": [{"role": "user", "content": "x"}]}
    assert to_openai(body, Target("m", Quirks(), output_cap=16384))["max_tokens"] == 16384
    assert to_openai(body, Target("m", Quirks()))["max_tokens"] == 128000
    field = to_openai(body, Target("m", Quirks(max_tokens_field="max_completion_tokens"), output_cap=8192))
    assert field["max_completion_tokens"] == 8192 and "max_tokens" not in field


def test_sampling_stop_sequences_and_stream_options():
    body = {
        "max_tokens": 5,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["a", "b", "c", "d", "e"],
        "messages": [{"role": "user", "content": "x"}],
    }
    out = to_openai(body, _target())
    assert out["temperature"] == 0.2 and out["top_p"] == 0.9 and "top_k" not in out
    assert out["stop"] == ["a", "b", "c", "d"]
    assert out["stream_options"] == {"include_usage": True}
    assert to_openai(body, _target(top_k=True))["top_k"] == 40
    assert "stream_options" not in to_openai(body, _target(stream_options=False))


@pytest.mark.parametrize(
    ("param", "on", "expected"),
    [
        ("reasoning_effort", True, {"reasoning_effort": "high"}),
        ("reasoning_effort", False, {}),
        ("openrouter", True, {"reasoning": {"effort": "high"}}),
        ("openrouter", False, {"reasoning": {"enabled": False}}),
        ("enable_thinking", True, {"chat_template_kwargs": {"enable_thinking": True}}),
        ("enable_thinking", False, {"chat_template_kwargs": {"enable_thinking": False}}),
        ("deepseek", True, {"thinking": {"type": "enabled"}}),
        ("none", True, {}),
    ],
)
def test_thinking_maps_to_the_providers_switch(param, on, expected):
    body = {
        "max_tokens": 5,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "xhigh"},
        "messages": [{"role": "user", "content": "x"}],
    }
    out = to_openai(body, Target("m", Quirks(reasoning_param=param), thinking=on))
    keys = ("reasoning_effort", "reasoning", "chat_template_kwargs", "thinking")
    assert {k: out[k] for k in keys if k in out} == expected


def test_budget_tokens_bucket_to_effort():
    body = {
        "max_tokens": 50000,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [{"role": "user", "content": "x"}],
    }
    assert (
        to_openai(body, Target("m", Quirks(reasoning_param="reasoning_effort"), thinking=True))[
            "reasoning_effort"
        ]
        == "low"
    )
    body["thinking"]["budget_tokens"] = 31999
    assert (
        to_openai(body, Target("m", Quirks(reasoning_param="reasoning_effort"), thinking=True))[
            "reasoning_effort"
        ]
        == "high"
    )


def test_reasoning_comes_back_to_deepseek_on_tool_turns():
    reasoning = "I should list the files first."
    body = {
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "list"},
            {
                "role": "assistant",
                "content": [
                    # display "omitted": the text is empty, the signature carries it
                    {"type": "thinking", "thinking": "", "signature": make_signature(reasoning, carry=True)},
                    {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt"}],
            },
        ],
    }
    msgs = to_openai(body, _target(reasoning_echo="reasoning_content"))["messages"]
    assert msgs[1]["reasoning_content"] == reasoning
    assert msgs[1]["content"] is None
    assert "reasoning_content" not in to_openai(body, _target())["messages"][1]
    assert to_openai(body, _target(assistant_null_content=False))["messages"][1]["content"] == ""


def test_gemini_thought_signatures_are_echoed():
    sigs = {"call_g": "c2lnbmF0dXJl"}
    body = {
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "call_g", "name": "Read", "input": {}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_g", "content": "ok"}]},
        ],
    }
    target = Target("m", Quirks(thought_signatures=True), thought_signature=sigs.get)
    call = to_openai(body, target)["messages"][1]["tool_calls"][0]
    assert call["extra_content"] == {"google": {"thought_signature": "c2lnbmF0dXJl"}}


def test_images_documents_and_blind_models():
    body = {
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                        "title": "N",
                    },
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
                    },
                    {"type": "text", "text": "describe"},
                ],
            }
        ],
    }
    parts = to_openai(body, _target())["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    assert parts[1] == {"type": "text", "text": "[document: N]\nnotes"}
    assert parts[2]["type"] == "file" and parts[2]["file"]["file_data"].startswith(
        "data:application/pdf;base64,"
    )
    blind = Target("m", Quirks(), info=ModelInfo("m", vision=False))
    assert "cannot see images" in to_openai(body, blind)["messages"][0]["content"][0]["text"]


def test_structured_output_and_user_field():
    body = {
        "max_tokens": 5,
        "metadata": {"user_id": '{"session_id":"s"}'},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "messages": [{"role": "user", "content": "x"}],
    }
    out = to_openai(body, _target(user_field=True))
    assert out["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert len(out["user"]) == 32 and "session" not in out["user"]
    assert "user" not in to_openai(body, _target())


def test_unknown_fields_are_dropped_not_errors():
    body = {
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "context_management": {"edits": []},
        "service_tier": "auto",
        "container": "c",
        "future_field": {"a": 1},
        "cache_control": {"type": "ephemeral"},
    }
    out = to_openai(body, _target())
    assert set(out) == {"model", "messages", "stream", "stream_options", "max_tokens"}


def test_same_role_runs_merge_but_not_across_tools():
    body = {
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
        ],
    }
    assert to_openai(body, _target())["messages"] == [{"role": "user", "content": "a\n\nb"}]


def test_anthropic_upstream_policy():
    body = recorded("cc2.1.330-main-tool-turn2-result")
    quirks = Quirks(drop_fields=frozenset({"context_management", "output_config"}), fold_system_messages=True)
    out = to_anthropic_upstream(body, "up-model", quirks, True, None)
    assert "context_management" not in out and "output_config" not in out and "thinking" not in out
    assert out["max_tokens"] == body["max_tokens"]
    assert any("# Environment" in b["text"] for b in out["system"])
    untouched = to_anthropic_upstream(body, "up-model", Quirks(), False, None)
    assert untouched["thinking"] == body["thinking"]
    assert any(m["role"] == "system" for m in untouched["messages"])
    assert forward_betas("a,b, c", frozenset({"b"})) == "a,c"
    assert forward_betas("a,b", frozenset({"*"})) is None


def test_translation_does_not_mutate_the_clients_request():
    body = recorded("cc2.1.330-main-tool-turn2-result")
    before = json.dumps(body, sort_keys=True)
    to_openai(body, msgspec.structs.replace(_target(), thinking=True))
    to_anthropic_upstream(
        body, "m", Quirks(fold_system_messages=True, drop_fields=frozenset({"tools"})), True, 10
    )
    assert json.dumps(body, sort_keys=True) == before


EDITS = [
    {"type": "clear_thinking_20251015", "keep": "all"},
    {"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": 30000}},
]


def test_context_edits_the_upstream_can_take_are_kept():
    body = {**recorded("cc2.1.330-main-say-hello"), "context_management": {"edits": EDITS}}
    sent = to_anthropic_upstream(body, "m", Quirks(), False, None)
    assert sent["context_management"] == {"edits": EDITS} and sent["thinking"] == body["thinking"]
    forced_off = to_anthropic_upstream(body, "m", Quirks(), True, None)
    assert "thinking" not in forced_off
    assert forced_off["context_management"] == {"edits": [EDITS[1]]}
    only_thinking = {**body, "context_management": {"edits": EDITS[:1]}}
    assert "context_management" not in to_anthropic_upstream(only_thinking, "m", Quirks(), True, None)
    never_asked = {k: v for k, v in body.items() if k != "thinking"}
    assert to_anthropic_upstream(never_asked, "m", Quirks(), True, None)["context_management"] == {
        "edits": EDITS
    }
