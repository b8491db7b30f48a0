"""Guards for the places where code and schema name the same closed set.

A registry of implementations (transports, probe answer functions) is keyed by an enum in
a JSON Schema; when the two disagree, importing the engine fails at once instead of a
document validating and then finding no code behind it.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from fcc.engine.catalog.resources import schema_path


class RegistryMismatch(ImportError):
    pass


def schema_enum(kind: str, *where: str) -> list[str]:
    """The enum at `where` inside schemas/{kind}.schema.json (fcc's own data, read once)."""
    node: Any = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    for step in where:
        node = node[int(step)] if isinstance(node, list) else node[step]
    return list(node["enum"])


def check_registry(
    registry: Collection[str],
    schema_enum: Collection[str],
    literal: Collection[str] | None = None,
    literal_name: str = "TransportName",
) -> None:
    """Registry keys, schema enum (and a typing.Literal's values, when given) must be one set."""
    sets = [set(registry), set(schema_enum)] + ([set(literal)] if literal is not None else [])
    if all(s == sets[0] for s in sets):
        return
    also = f", {literal_name} {sorted(literal)}" if literal is not None else ""
    raise RegistryMismatch(
        f"registry and schema disagree: registry {sorted(registry)}, schema enum {sorted(schema_enum)}{also}"
    )
