"""Transport adapters, registered by the schema's `transport` enum.

The registry and the provider schema's enum must agree: a guard refuses to import the
engine when they do not (the schema is the package's own data file, read once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import get_args

from fcc.engine.catalog.registry import RegistryMismatch, check_registry, schema_enum
from fcc.engine.transports.anthropic_messages import AnthropicMessages
from fcc.engine.transports.base import Adapter
from fcc.engine.transports.openai_chat import OpenAIChat
from fcc.engine.types import TransportName

__all__ = ["TRANSPORTS", "RegistryMismatch", "check_registry", "schema_transports"]

TRANSPORTS: Mapping[TransportName, Callable[[], Adapter]] = {
    "openai_chat": OpenAIChat,
    "anthropic_messages": AnthropicMessages,
}


def schema_transports() -> list[str]:
    return schema_enum("provider", "$defs", "fields", "properties", "transport")


check_registry(TRANSPORTS, schema_transports(), get_args(TransportName))
