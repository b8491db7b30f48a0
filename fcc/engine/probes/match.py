"""Is this request a probe? A pure function of the request and the probe documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fcc.engine.probes.model import Match, Probe
from fcc.engine.translate.openai_request import system_text, text_of
from fcc.engine.types import JSON, Tier


def _last_text_block(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for block in reversed(content):
            if isinstance(block, dict) and block.get("type") == "text":
                return str(block.get("text", ""))
    return None


def _schema_properties(body: JSON) -> frozenset[str] | None:
    fmt = (body.get("output_config") or {}).get("format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    props = (fmt.get("schema") or {}).get("properties")
    return frozenset(props) if isinstance(props, dict) else None


def matches(m: Match, body: JSON, tier: Tier | None) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    roles = [msg.get("role") if isinstance(msg, dict) else None for msg in messages]
    if m.message_count is not None and not m.message_count.holds(len(messages)):
        return False
    if m.roles is not None and tuple(roles) != m.roles:
        return False
    tools = body.get("tools")
    if m.tools == "none" and tools:
        return False
    if m.tools == "present" and not tools:
        return False
    if m.max_tokens is not None:
        mt = body.get("max_tokens")
        if not isinstance(mt, int) or not m.max_tokens.holds(mt):
            return False
    if m.tiers is not None and tier not in m.tiers:
        return False
    if m.output_schema_properties is not None and _schema_properties(body) != m.output_schema_properties:
        return False
    if m.system is not None and not m.system.holds(system_text(body.get("system"))):
        return False
    users = [msg for msg in messages if isinstance(msg, dict) and msg.get("role") == "user"]
    if m.first_user_text is not None and not (
        users and m.first_user_text.holds(text_of(users[0].get("content")))
    ):
        return False
    if m.last_user_text is not None and not (
        users and m.last_user_text.holds(_last_text_block(users[-1].get("content")))
    ):
        return False
    if m.prefill is not None:
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "assistant":
            return False
        if not m.prefill.holds(text_of(last.get("content"))):
            return False
    return True


def find_probe(probes: Sequence[Probe], body: JSON, tier: Tier | None) -> Probe | None:
    for probe in probes:
        if matches(probe.match, body, tier):
            return probe
    return None
