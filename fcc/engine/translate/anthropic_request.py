"""Anthropic request → an Anthropic-compatible provider, under the policy its catalog declares."""

from __future__ import annotations

from typing import Any

from fcc.engine.catalog.providers import Quirks
from fcc.engine.translate.openai_request import BILLING_PREFIX, IMAGE_NOTE, text_of
from fcc.engine.types import JSON


def to_anthropic_upstream(
    body: JSON,
    model: str,
    quirks: Quirks,
    thinking_off: bool,
    cap: int | None,
    *,
    images_as_text: bool = False,
) -> JSON:
    """thinking_off: the route forces thinking off whatever the client asked; otherwise the
    request's own thinking (or none) and context edits pass through as sent. cap: the most
    output tokens this model may be asked for. images_as_text: it cannot see."""
    out: JSON = {k: v for k, v in body.items() if k not in quirks.drop_fields}
    out["model"] = model
    out["stream"] = True
    if isinstance(out.get("max_tokens"), int) and cap:
        out["max_tokens"] = min(out["max_tokens"], cap)
    if images_as_text:
        out["messages"] = [_without_images(m) for m in out["messages"]]
    if thinking_off and "thinking" in out:
        out.pop("thinking")
        _drop_thinking_edits(out)
    system = _strip_billing(out.get("system"))
    if quirks.fold_system_messages:
        late = [
            text_of(m.get("content"))
            for m in out["messages"]
            if isinstance(m, dict) and m.get("role") == "system"
        ]
        out["messages"] = [
            m for m in out["messages"] if not (isinstance(m, dict) and m.get("role") == "system")
        ]
        extra = [{"type": "text", "text": t} for t in late if t]
        if extra:
            system = (
                system if isinstance(system, list) else ([{"type": "text", "text": system}] if system else [])
            ) + extra
    if system is None or system == [] or system == "":
        out.pop("system", None)
    else:
        out["system"] = system
    return out


def _without_images(message: Any) -> Any:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return message
    return {**message, "content": [_no_image(b) for b in content]}


def _no_image(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    if block.get("type") == "image":
        return {"type": "text", "text": IMAGE_NOTE}
    if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
        return {**block, "content": [_no_image(b) for b in block["content"]]}
    return block


def _drop_thinking_edits(out: JSON) -> None:
    """Only the edits that need thinking on (clear_thinking_*) go; clear_tool_uses_* and any
    other edit still reach the upstream, which can apply them without thinking."""
    cm = out.get("context_management")
    if not isinstance(cm, dict) or not isinstance(cm.get("edits"), list):
        return
    edits: list[Any] = cm["edits"]
    kept = [
        e for e in edits if not (isinstance(e, dict) and str(e.get("type", "")).startswith("clear_thinking"))
    ]
    if len(kept) == len(edits):
        return
    rest = {k: v for k, v in cm.items() if k != "edits"}
    if kept:
        out["context_management"] = {**rest, "edits": kept}
    elif rest:
        out["context_management"] = rest
    else:
        out.pop("context_management")


def _strip_billing(system: Any) -> Any:
    if not isinstance(system, list):
        return system
    return [
        b for b in system if not (isinstance(b, dict) and str(b.get("text", "")).startswith(BILLING_PREFIX))
    ]


def forward_betas(value: str | None, drop: frozenset[str]) -> str | None:
    if not value or "*" in drop:
        return None
    kept = [b.strip() for b in value.split(",") if b.strip() and b.strip() not in drop]
    return ",".join(kept) or None
