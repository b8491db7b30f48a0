"""GET /v1/models: every model a user can reach, in the shape Claude Code's /model picker
reads (PROTOCOL.md D, H).

Claude Code keeps an entry only when its id contains "claude" or "anthropic", and keeps only
id, display_name and description. So each tier is `claude-TIER-fcc`, and each model is
`claude-fcc/PROVIDER/MODEL` — an id the router reads back as that PROVIDER/MODEL — with a
`(no thinking)` twin `claude-fcc-nothink/PROVIDER/MODEL` for models that reason. The window
and output cap go in max_input_tokens / max_tokens for other clients (Claude Code ignores
them; `fcc claude` tells it the window instead).

Listed: the tiers, every model the routes and fallbacks name, and the catalog models of
every provider that has a key or runs locally. Built once per settings, answered from memory.
"""

from __future__ import annotations

import msgspec

from fcc.engine.catalog.config import ModelRef, Settings
from fcc.engine.catalog.providers import ModelInfo, Provider
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.routing.router import model_id
from fcc.engine.types import JSON

CREATED = "2026-01-01T00:00:00Z"


def _entry(id_: str, display: str, description: str, info: ModelInfo | None, cap: int | None) -> JSON:
    entry: JSON = {
        "type": "model",
        "id": id_,
        "display_name": display,
        "description": description,
        "created_at": CREATED,
    }
    if info is not None and info.context_window:
        entry["max_input_tokens"] = info.context_window
    if cap:
        entry["max_tokens"] = cap
    return entry


def _words(provider: Provider, model: str, info: ModelInfo | None) -> str:
    """`Qwen3 Coder 480B · NVIDIA NIM`: the model as people call it, and where it runs."""
    return f"{(info.display_name if info and info.display_name else model)} · {provider.display_name}"


def _facts(ref: str, info: ModelInfo | None, extra: str = "") -> str:
    parts = [ref]
    if info is not None and info.context_window:
        parts.append(f"{info.context_window // 1000}k context")
    if extra:
        parts.append(extra)
    return " · ".join(parts)


class ModelList(msgspec.Struct, frozen=True):
    entries: tuple[JSON, ...]

    def page(self, limit: int, after: str | None, before: str | None) -> JSON:
        """Anthropic's paging: up to `limit` after after_id, or the `limit` before before_id."""
        ids = [e["id"] for e in self.entries]
        if after is not None and after in ids:
            start = ids.index(after) + 1
            chosen, more = self.entries[start : start + limit], start + limit < len(ids)
        elif before is not None and before in ids:
            end = ids.index(before)
            start = max(0, end - limit)
            chosen, more = self.entries[start:end], start > 0
        else:
            chosen, more = self.entries[:limit], limit < len(ids)
        return {
            "data": list(chosen),
            "has_more": more,
            "first_id": chosen[0]["id"] if chosen else None,
            "last_id": chosen[-1]["id"] if chosen else None,
        }


def reachable(settings: Settings, keys: KeyStore) -> list[ModelRef]:
    """The routed models first, then the catalog models of providers with a key or local."""
    out: dict[str, ModelRef] = {str(r): r for r in settings.routed()}
    for p in sorted(settings.providers.values(), key=lambda p: p.id):
        if p.local or (p.api_key_env and keys.get(p.api_key_env) is not None):
            for m in p.models:
                out.setdefault(f"{p.id}/{m.id}", ModelRef(p.id, m.id))
    return list(out.values())


def build(settings: Settings, keys: KeyStore) -> ModelList:
    entries: list[JSON] = []
    for tier, spec in settings.tiers.items():
        provider = settings.providers[spec.target.provider]
        info = provider.model(spec.target.model)
        ref = str(spec.target)
        entries.append(
            _entry(
                f"claude-{tier}-fcc",
                f"{tier.capitalize()} tier → {_words(provider, spec.target.model, info)}",
                _facts(ref, info, f"fcc tier {tier}"),
                info,
                provider.output_cap(spec.target.model),
            )
        )
    for model in reachable(settings, keys):
        where = settings.providers.get(model.provider)
        if where is None:
            continue
        about = where.model(model.model)
        limit = where.output_cap(model.model)
        words = _words(where, model.model, about)
        entries.append(_entry(model_id(str(model)), words, _facts(str(model), about), about, limit))
        if about is not None and about.reasoning:
            entries.append(
                _entry(
                    model_id(str(model), thinking=False),
                    f"{words} (no thinking)",
                    _facts(str(model), about, "thinking off"),
                    about,
                    limit,
                )
            )
    return ModelList(tuple(entries))
