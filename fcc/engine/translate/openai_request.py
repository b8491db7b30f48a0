"""Anthropic Messages request → OpenAI chat.completions request (PROTOCOL.md G.1, G.4).

Pure: the provider's quirks and the route decide every difference. Fields with no OpenAI
equivalent (context_management, cache_control, defer_loading, server tools…) are dropped,
never turned into errors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import msgspec

from fcc.engine.catalog.providers import ModelInfo, Quirks, sees_images
from fcc.engine.translate import toollist
from fcc.engine.translate.schema_clean import clean_schema
from fcc.engine.translate.signature import reasoning_from
from fcc.engine.translate.toolids import upstream_id as _upstream_id
from fcc.engine.types import JSON

BILLING_PREFIX = "x-anthropic-billing-header:"
_EFFORTS = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
    "minimal": "low",
}
_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
# What a model that cannot see gets instead of an image: it can tell the user.
IMAGE_NOTE = "[an image was attached, but this model cannot see images]"


class Target(msgspec.Struct, frozen=True):
    """What the request translator needs to know about where the request goes."""

    model: str
    quirks: Quirks
    info: ModelInfo | None = None
    output_cap: int | None = None
    thinking: bool = False  # ask the upstream for reasoning
    thought_signature: Callable[[str], str | None] | None = None  # Gemini: by tool id
    max_tokens: int | None = None  # lowered to fit the model's window (routing decided)
    images_as_text: bool = False  # the model cannot see: images become a note


# A tool call's arguments as the history had them, in json.dumps's own layout (a prompt-cache
# prefix must not change); one encoder, where json.dumps with an option builds one per call.
_arguments = json.JSONEncoder(ensure_ascii=False).encode


def text_of(content: Any) -> str:
    """The text of a content value (string or block list), blocks joined by blank lines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(
            b["text"] for b in content if isinstance(b, dict) and b.get("type") == "text" and b.get("text")
        )
    return ""


def system_text(system: Any) -> str:
    """Top-level system as one string, without Claude Code's per-session attribution block
    (it changes every session and would defeat the backend's prefix cache)."""
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        return ""
    texts = [
        b.get("text", "")
        for b in system
        if isinstance(b, dict)
        and b.get("type", "text") == "text"
        and not str(b.get("text", "")).startswith(BILLING_PREFIX)
    ]
    return "\n\n".join(t for t in texts if t)


def thinking_requested(body: JSON) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def to_openai(body: JSON, target: Target) -> JSON:
    q = target.quirks
    messages: list[JSON] = []
    system = system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in body["messages"]:
        _message(message, target, messages)
    if target.quirks.system_messages == "first_only":
        messages = _demote_late_system(messages)
    out: JSON = {"model": target.model, "messages": _merge_runs(messages), "stream": True}
    if q.stream_options:
        out["stream_options"] = {"include_usage": True}

    max_tokens = body.get("max_tokens")
    if target.max_tokens is not None and isinstance(max_tokens, int):
        max_tokens = min(max_tokens, target.max_tokens)
    if isinstance(max_tokens, int) and max_tokens > 0:
        if target.output_cap:
            max_tokens = min(max_tokens, target.output_cap)
        out[q.max_tokens_field] = max_tokens
    for key in ("temperature", "top_p"):
        if isinstance(body.get(key), int | float):
            out[key] = body[key]
    if q.top_k and isinstance(body.get("top_k"), int):
        out["top_k"] = body["top_k"]
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and stops:
        out["stop"] = [s for s in stops if isinstance(s, str)][:4]

    tools = _tools(body.get("tools") or (), q)
    if tools:
        out["tools"] = tools
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            kind = choice.get("type")
            if kind in _TOOL_CHOICE:
                out["tool_choice"] = _TOOL_CHOICE[kind]
            elif kind == "tool" and choice.get("name"):
                out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
            if choice.get("disable_parallel_tool_use") is True:
                out["parallel_tool_calls"] = False

    _reasoning_params(body, target, out)
    fmt = (body.get("output_config") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True},
        }
    user_id = (body.get("metadata") or {}).get("user_id")
    if q.user_field and isinstance(user_id, str) and user_id:
        out["user"] = hashlib.sha256(user_id.encode()).hexdigest()[:32]
    for name in q.drop_fields:
        out.pop(name, None)
    return out


def _tools(listed: Any, q: Quirks) -> list[JSON]:
    # A list Claude Code sent before is translated once per policy, and its JSON is encoded
    # once (translate/toollist.py); the policy's fields are all _tool and clean_schema read.
    known = toollist.shared(listed)
    if known is None:
        return [_tool(t, q) for t in listed if _is_custom_tool(t)]
    key = ("openai", q.strip_keywords, q.drop_empty_properties, q.strict_tools)
    return known.on_wire(key, lambda tools: [_tool(t, q) for t in tools if _is_custom_tool(t)])


def _is_custom_tool(tool: Any) -> bool:
    # Server tools (web_search_20250305 …) have a versioned type and no schema: the upstream
    # cannot run them, so they are left out.
    return isinstance(tool, dict) and bool(tool.get("name")) and tool.get("type") in (None, "custom")


def _tool(tool: JSON, q: Quirks) -> JSON:
    fn: JSON = {
        "name": tool["name"],
        "parameters": clean_schema(tool.get("input_schema"), q.strip_keywords, q.drop_empty_properties),
    }
    if tool.get("description"):
        fn["description"] = tool["description"]
    if q.strict_tools and isinstance(tool.get("strict"), bool):
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _reasoning_params(body: JSON, target: Target, out: JSON) -> None:
    param = target.quirks.reasoning_param
    if param == "none":
        return
    raw = body.get("thinking")
    thinking: JSON = raw if isinstance(raw, dict) else {}
    on = target.thinking
    effort = _effort(body, thinking)
    if param == "reasoning_effort":
        if on:
            out["reasoning_effort"] = effort
    elif param == "openrouter":
        if on:
            budget = thinking.get("budget_tokens")
            out["reasoning"] = {"max_tokens": budget} if isinstance(budget, int) else {"effort": effort}
        else:
            out["reasoning"] = {"enabled": False}
    elif param == "enable_thinking":
        out["chat_template_kwargs"] = {"enable_thinking": on}
    elif param == "deepseek":
        out["thinking"] = {"type": "enabled" if on else "disabled"}


def _effort(body: JSON, thinking: JSON) -> str:
    effort = (body.get("output_config") or {}).get("effort")
    if isinstance(effort, str) and effort in _EFFORTS:
        return _EFFORTS[effort]
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int):
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    return "medium"


# -- messages ----------------------------------------------------------------------------------


# The request was checked at the door (validate.check_request): messages are objects with a
# known role, content is a string or a list, blocks have the types the code reads.
def _message(message: JSON, target: Target, out: list[JSON]) -> None:
    role, content = message["role"], message.get("content")
    if role == "system":
        text = text_of(content)
        if text:
            out.append({"role": "system", "content": text})
    elif role == "assistant":
        _assistant(content, target, out)
    else:
        _user(content, target, out)


def _user(content: Any, target: Target, out: list[JSON]) -> None:
    if isinstance(content, str):
        out.append({"role": "user", "content": content})
        return
    parts: list[JSON] = []
    follow: list[JSON] = []  # images from tool results go in a user message after the tools
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "tool_result":
            text, images = _tool_result(block, target)
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": _upstream_id(
                        str(block.get("tool_use_id", "")), target.quirks.tool_call_ids
                    ),
                    "content": text,
                }
            )
            follow += images
        else:
            part = _part(block, target)
            if part is not None:
                parts.append(part)
    parts = follow + parts
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        value: Any = "\n\n".join(p["text"] for p in parts) if only_text else parts
        out.append({"role": "user", "content": value})


def _tool_result(block: JSON, target: Target) -> tuple[str, list[JSON]]:
    content = block.get("content")
    images: list[JSON] = []
    if isinstance(content, list):
        texts = []
        for sub in content:
            if not isinstance(sub, dict):
                continue
            if sub.get("type") == "text":
                texts.append(sub.get("text", ""))
            else:
                part = _part(sub, target)
                if part is not None and part["type"] == "text":
                    texts.append(part["text"])
                elif part is not None:
                    images.append(part)
        text = "\n\n".join(t for t in texts if t)
    else:
        text = content if isinstance(content, str) else ""
    if block.get("is_error") is True:
        text = f"[tool error] {text}" if text else "[tool error]"
    return text, images


def _part(block: JSON, target: Target) -> JSON | None:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return {"type": "text", "text": text} if text else None
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
        elif source.get("type") == "url":
            url = str(source.get("url", ""))
        else:
            return None
        if not _vision(target):
            return {"type": "text", "text": IMAGE_NOTE}
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "document":
        source = block.get("source") or {}
        title = block.get("title")
        head = f"[document: {title}]\n" if title else ""
        if source.get("type") == "text":
            return {"type": "text", "text": head + str(source.get("data", ""))}
        if source.get("type") == "url":
            return {"type": "text", "text": f"{head}[document at {source.get('url')}]"}
        if source.get("type") == "base64":
            media = source.get("media_type", "application/pdf")
            name = title or "document.pdf"
            return {
                "type": "file",
                "file": {"filename": name, "file_data": f"data:{media};base64,{source.get('data', '')}"},
            }
        if source.get("type") == "content":
            return {"type": "text", "text": head + text_of(source.get("content"))}
        return None
    if kind == "search_result":
        return {"type": "text", "text": f"{block.get('title', '')}\n{text_of(block.get('content'))}".strip()}
    return None  # thinking in a user turn, container uploads, unknown future blocks


def _vision(target: Target) -> bool:
    return not target.images_as_text and sees_images(target.info, target.quirks)


def _assistant(content: Any, target: Target, out: list[JSON]) -> None:
    if isinstance(content, str):
        if content:
            out.append({"role": "assistant", "content": content})
        return
    texts: list[str] = []
    calls: list[JSON] = []
    reasoning: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            texts.append(block["text"])
        elif kind == "tool_use":
            call: JSON = {
                "id": _upstream_id(str(block.get("id", "")), target.quirks.tool_call_ids),
                "type": "function",
                "function": {
                    "name": block.get("name", ""),
                    "arguments": _arguments(block.get("input") or {}),
                },
            }
            if target.thought_signature is not None:
                sig = target.thought_signature(str(block.get("id", "")))
                if sig:
                    call["extra_content"] = {"google": {"thought_signature": sig}}
            calls.append(call)
        elif kind == "thinking":
            text = reasoning_from(block.get("signature")) or block.get("thinking") or ""
            if text:
                reasoning.append(text)
    message: JSON = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if message["content"] is None and (not calls or not target.quirks.assistant_null_content):
        message["content"] = ""
    echo = target.quirks.reasoning_echo
    if echo != "none" and reasoning:
        message[echo] = "\n\n".join(reasoning)
    if message["content"] == "" and not calls and echo == "none":
        return  # a turn that only held thinking: nothing to say upstream
    out.append(message)


def _demote_late_system(messages: list[JSON]) -> list[JSON]:
    """Providers that accept system only first: later system messages become user text."""
    out: list[JSON] = []
    for i, m in enumerate(messages):
        if m["role"] == "system" and i > 0:
            out.append({"role": "user", "content": f"<system-reminder>\n{m['content']}\n</system-reminder>"})
        else:
            out.append(m)
    return out


def _merge_runs(messages: list[JSON]) -> list[JSON]:
    """Consecutive user (or system) messages become one; chat templates often require it."""
    out: list[JSON] = []
    for m in messages:
        prev = out[-1] if out else None
        if prev is not None and prev["role"] == m["role"] and m["role"] in ("user", "system"):
            prev["content"] = _join(prev["content"], m["content"])
        else:
            out.append(m)
    return out


def _join(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        return f"{a}\n\n{b}"
    left = [{"type": "text", "text": a}] if isinstance(a, str) else list(a)
    right = [{"type": "text", "text": b}] if isinstance(b, str) else list(b)
    return left + right
