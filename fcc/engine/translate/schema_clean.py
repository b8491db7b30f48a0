"""Tool parameter schemas made acceptable to a provider, by its catalog policy."""

from __future__ import annotations

from typing import Any

from fcc.engine.types import JSON

# Keywords whose values are maps of name → schema, or lists of schemas: recursed into, and
# their keys are property names, never keywords to strip.
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_EMPTY_OBJECT: JSON = {"type": "object", "properties": {}}


def clean_schema(schema: Any, strip: frozenset[str], drop_empty_properties: bool) -> JSON:
    if not isinstance(schema, dict):
        return dict(_EMPTY_OBJECT)
    if not strip and not drop_empty_properties:
        return schema
    cleaned = _clean(schema, strip, drop_empty_properties)
    return cleaned if isinstance(cleaned, dict) else dict(_EMPTY_OBJECT)


def _clean(node: Any, strip: frozenset[str], drop_empty: bool) -> Any:
    if not isinstance(node, dict):
        return node
    out: JSON = {}
    for key, value in node.items():
        if key in strip:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            value = {name: _clean(sub, strip, drop_empty) for name, sub in value.items()}
            if drop_empty and key == "properties" and not value:
                continue
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            value = [_clean(sub, strip, drop_empty) for sub in value]
        elif key in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
            value = _clean(value, strip, drop_empty)
        out[key] = value
    if "required" in out and isinstance(out.get("properties"), dict):
        # Required names must exist once properties were cleaned (Gemini checks this).
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    elif "required" in out and "properties" not in out and drop_empty:
        out.pop("required")
    return out
