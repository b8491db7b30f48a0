"""Where a request goes: its routing rule (the first whose conditions hold), else its model's
family tier, else a direct PROVIDER/MODEL. Pure: the request's features, its body (for
the text conditions) and the settings in, a Route out; no I/O, no clock."""

from __future__ import annotations

import msgspec

from fcc.engine.catalog.config import ModelRef, Rule, Settings
from fcc.engine.catalog.providers import Provider
from fcc.engine.request.conditions import holds
from fcc.engine.request.features import Features, family_of
from fcc.engine.types import JSON, Strategy


class Candidate(msgspec.Struct, frozen=True):
    provider: Provider
    model: str

    @property
    def label(self) -> str:
        return f"{self.provider.id}/{self.model}"


class Route(msgspec.Struct, frozen=True):
    requested: str
    tier: str | None  # the tier it came from (None: a direct slug, or a rule's chain)
    candidates: tuple[Candidate, ...]
    thinking: bool | None  # None: follow the client's request
    rule: str | None = None  # the routing rule that decided, if one did
    strategy: Strategy = "ordered"

    @property
    def primary(self) -> Candidate:
        return self.candidates[0]

    @property
    def key(self) -> str:
        """What round-robin counts by: the rule, else the tier, else the name asked for."""
        return f"rule:{self.rule}" if self.rule else f"tier:{self.tier}" if self.tier else self.requested

    @property
    def decided_by(self) -> str:
        """For x-fcc-rule and the record: the rule's name, or how the family picked a tier."""
        if self.rule:
            return self.rule
        return f"tier:{self.tier}" if self.tier else "direct"


def tier_of(model_name: str) -> str:
    return family_of(model_name) or "default"


def _candidates(refs: list[ModelRef], settings: Settings) -> tuple[Candidate, ...]:
    seen: dict[str, Candidate] = {}
    for ref in refs:
        seen.setdefault(str(ref), Candidate(settings.providers[ref.provider], ref.model))
    return tuple(seen.values())


def _tier_route(requested: str, tier: str, settings: Settings) -> Route:
    spec = settings.tiers[tier]
    candidates = _candidates([spec.target, *spec.fallbacks], settings)
    return Route(requested, tier, candidates, spec.thinking, strategy=spec.strategy)


# The ids /v1/models advertises for each model (Claude Code keeps only ids with "claude" in
# them): claude-fcc/PROVIDER/MODEL, and its twin with thinking forced off.
MODEL_PREFIX = "claude-fcc/"
NO_THINKING_PREFIX = "claude-fcc-nothink/"


def model_id(ref: str, thinking: bool = True) -> str:
    return (MODEL_PREFIX if thinking else NO_THINKING_PREFIX) + ref


def direct(model_name: str, settings: Settings) -> Route | None:
    """A client naming PROVIDER/MODEL itself (or an advertised claude-fcc/PROVIDER/MODEL), or a
    tier alias claude-TIER-fcc."""
    thinking: bool | None = None
    name = model_name
    if name.startswith(NO_THINKING_PREFIX):
        name, thinking = name[len(NO_THINKING_PREFIX) :], False
    elif name.startswith(MODEL_PREFIX):
        name = name[len(MODEL_PREFIX) :]
    provider_id, sep, rest = name.partition("/")
    if sep and rest and provider_id in settings.providers:
        return Route(model_name, None, (Candidate(settings.providers[provider_id], rest),), thinking)
    if model_name.startswith("claude-") and model_name.endswith("-fcc"):
        tier = model_name[len("claude-") : -len("-fcc")]
        if tier in settings.tiers:
            return _tier_route(model_name, tier, settings)
    return None


def probe_tier(model_name: str, settings: Settings) -> str | None:
    """The tier probe documents' `tiers:` condition sees: None for a direct PROVIDER/MODEL."""
    chosen = direct(model_name, settings)
    if chosen is not None:
        return chosen.tier
    return tier_of(model_name)


def _from_rule(rule: Rule, requested: str, settings: Settings) -> Route:
    refs: list[ModelRef] = []
    tiers = [t for t in rule.use if "/" not in t]
    for target in rule.use:
        if "/" in target:
            refs.append(ModelRef.parse(target))
        else:
            spec = settings.tiers[target]
            refs += [spec.target, *spec.fallbacks]
    # One tier used alone brings its own settings; a rule's own say wins.
    single = settings.tiers[tiers[0]] if len(rule.use) == 1 and tiers else None
    thinking = rule.thinking if rule.thinking is not None else (single.thinking if single else None)
    strategy = rule.strategy or (single.strategy if single else "ordered")
    return Route(
        requested,
        single.tier if single else None,
        _candidates(refs, settings),
        thinking,
        rule=rule.name,
        strategy=strategy,
    )


def decide(features: Features, body: JSON, settings: Settings) -> Route:
    """A direct reference is what the client chose; otherwise the first rule that holds,
    else the family's tier."""
    chosen = direct(features.model, settings)
    if chosen is not None and chosen.tier is None:
        return chosen
    tier = chosen.tier if chosen is not None and chosen.tier else tier_of(features.model)
    for rule in settings.routes:
        if holds(rule.when, body, features, tier):
            return _from_rule(rule, features.model, settings)
    return chosen or _tier_route(features.model, tier, settings)
