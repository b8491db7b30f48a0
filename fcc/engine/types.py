"""Shared aliases and closed sets."""

from __future__ import annotations

from typing import Any, Literal

JSON = dict[str, Any]
TransportName = Literal["openai_chat", "anthropic_messages"]
AuthStyle = Literal["bearer", "x-api-key", "header", "none"]
# Tiers may have any name; these four are the ones Claude Code's model families pick.
FAMILY_TIERS: tuple[str, ...] = ("opus", "sonnet", "haiku", "default")
Strategy = Literal["ordered", "least_busy", "round_robin"]
Origin = Literal["default", "config", "flag"]
