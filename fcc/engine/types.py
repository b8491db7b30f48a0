"""Shared aliases and closed sets."""

from __future__ import annotations

from typing import Any, Literal

JSON = dict[str, Any]
TransportName = Literal["openai_chat", "anthropic_messages"]
AuthStyle = Literal["bearer", "x-api-key", "header", "none"]
Tier = Literal["opus", "sonnet", "haiku", "default"]
TIERS: tuple[Tier, ...] = ("opus", "sonnet", "haiku", "default")
Origin = Literal["default", "config", "flag"]
