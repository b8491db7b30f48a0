"""Transport adapters, registered by the schema's `transport` enum.

The registry and the provider schema's enum must agree: a guard refuses to import the
engine when they do not (the schema is the package's own data file, read once).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import get_args

from fcc.engine.resources import schema_path
from fcc.engine.transports.anthropic_messages import AnthropicMessages
from fcc.engine.transports.base import Adapter
from fcc.engine.transports.openai_chat import OpenAIChat
from fcc.engine.types import TransportName

TRANSPORTS: Mapping[TransportName, Callable[[], Adapter]] = {
    "openai_chat": OpenAIChat,
    "anthropic_messages": AnthropicMessages,
}


class RegistryMismatch(ImportError):
    pass


def check_registry(registry: Collection[str], schema_enum: Collection[str], literal: Collection[str]) -> None:
    if set(registry) == set(schema_enum) == set(literal):
        return
    raise RegistryMismatch(
        "transport registry and provider schema disagree: "
        f"registry {sorted(registry)}, schema enum {sorted(schema_enum)}, TransportName {sorted(literal)}"
    )


def schema_transports() -> list[str]:
    schema = json.loads(schema_path("provider").read_text(encoding="utf-8"))
    enum: list[str] = schema["$defs"]["fields"]["properties"]["transport"]["enum"]
    return enum


check_registry(TRANSPORTS, schema_transports(), get_args(TransportName))
