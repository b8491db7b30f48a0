"""Anthropic request → an Anthropic-compatible provider, under the policy its catalog declares."""

from __future__ import annotations

from typing import Any

from fcc.engine.catalog.providers import Quirks
from fcc.engine.translate.openai_request import BILLING_PREFIX, text_of
from fcc.engine.types import JSON


def to_anthropic_upstream(
    body: JSON, model: str, quirks: Quirks, thinking: bool | None, cap: int | None
) -> JSON:
    out: JSON = {k: v for k, v in body.items() if k not in quirks.drop_fields}
    out["model"] = model
    out["stream"] = True
    if isinstance(out.get("max_tokens"), int) and cap:
        out["max_tokens"] = min(out["max_tokens"], cap)
    if thinking is False:
        out.pop("thinking", None)
        out.pop("context_management", None)  # clear_thinking edits need thinking on
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
