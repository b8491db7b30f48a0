"""Model name → Route: a pure function of the name and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from fcc.engine.catalog.config import ModelRef, Settings
from fcc.engine.catalog.providers import Provider
from fcc.engine.types import Tier

# Claude Code names models by family (claude-opus-5-5, claude-3-5-haiku-latest, "sonnet"…);
# the family decides the tier. Order matters only for names that mention two families.
_FAMILIES: tuple[Tier, ...] = ("opus", "sonnet", "haiku")


@dataclass(frozen=True, slots=True)
class Candidate:
    provider: Provider
    model: str

    @property
    def label(self) -> str:
        return f"{self.provider.id}/{self.model}"


@dataclass(frozen=True, slots=True)
class Route:
    requested: str
    tier: Tier | None  # None: a direct provider/model slug
    candidates: tuple[Candidate, ...]
    thinking: bool | None  # None: follow the client's request

    @property
    def primary(self) -> Candidate:
        return self.candidates[0]


def tier_of(model_name: str) -> Tier:
    lowered = model_name.lower()
    for family in _FAMILIES:
        if family in lowered:
            return family
    return "default"


def resolve(model_name: str, settings: Settings) -> Route:
    provider_id, sep, rest = model_name.partition("/")
    if sep and rest and provider_id in settings.providers:
        return Route(model_name, None, (Candidate(settings.providers[provider_id], rest),), None)
    tier = tier_of(model_name)
    spec = settings.tiers[tier]
    refs: tuple[ModelRef, ...] = (spec.target, *spec.fallbacks)
    candidates = tuple(Candidate(settings.providers[r.provider], r.model) for r in refs)
    return Route(model_name, tier, candidates, spec.thinking)
