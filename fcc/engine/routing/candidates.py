"""Can this candidate take this request? Checked against what the catalog (and the doctor)
knows of its model before anything is sent: a window too small for the prompt plus the
output asked for, images to a model that cannot see, tools to one that cannot call them.

A candidate that cannot take the request is skipped, with the reason. When none can, the
session is kept alive where that is honest: a window that fits the prompt but not the
output asked for takes the request with max_tokens lowered to what fits; a model without
vision gets the images replaced by a note saying so. Otherwise the client hears why: a
prompt too long for every window is a 400 worded so Claude Code compacts. Models the
catalog knows nothing about are assumed to fit.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from fcc.engine.catalog.providers import sees_images
from fcc.engine.errors import ClientError
from fcc.engine.request.features import Features
from fcc.engine.routing.router import Candidate, Route

# Below this much room for the answer, lowering max_tokens would only produce cut answers:
# the prompt counts as too long for that window instead.
MIN_OUTPUT = 1024


class Learned(msgspec.Struct, frozen=True):
    """Evidence from elsewhere (the doctor's last run) against a candidate."""

    reason: str
    hard: bool  # True: never sent such a request; False: tried only when nothing else can be


Evidence = Callable[[Candidate, Features], Learned | None]


class Attempt(msgspec.Struct, frozen=True):
    """A candidate to try, and how the request must be changed for it."""

    candidate: Candidate
    max_tokens: int | None = None  # lowered to fit the window
    images_as_text: bool = False  # the model cannot see: images become a note


class Verdict(msgspec.Struct, frozen=True):
    model: str  # PROVIDER/MODEL
    ok: bool
    reason: str | None = None

    def wire(self) -> dict[str, object]:
        return {"model": self.model, "ok": self.ok, "reason": self.reason}


class Plan(msgspec.Struct, frozen=True):
    attempts: tuple[Attempt, ...]  # what to try, in the route's order (strategies reorder)
    verdicts: tuple[Verdict, ...]  # one per candidate of the route, for the record and fcc route
    error: ClientError | None = None  # nothing can take the request: what the client hears

    @property
    def skipped(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if not v.ok)


class _Fit(msgspec.Struct, frozen=True):
    reasons: tuple[str, ...]  # why it cannot take the request as sent
    max_tokens: int | None = None  # it can, with this many output tokens at most
    images_as_text: bool = False  # it can, without the images
    too_long: int | None = None  # the prompt exceeds this window (or leaves too little room)
    hard: bool = False  # a reason no change to the request removes (window, tools, the doctor)

    @property
    def degradable(self) -> bool:
        """Every reason is one a lower max_tokens or a note for the images removes."""
        return bool(self.reasons) and not self.hard


def _fit(candidate: Candidate, features: Features) -> _Fit:
    provider, model = candidate.provider, candidate.model
    info = provider.model(model)
    reasons: list[str] = []
    hard = False
    clamp: int | None = None
    too_long: int | None = None
    window = info.context_window if info is not None else None
    if window:
        prompt = features.input_tokens
        cap = provider.output_cap(model)
        wanted = min(features.max_tokens or 0, cap) if cap else (features.max_tokens or 0)
        room = window - prompt
        if room < MIN_OUTPUT:
            reasons.append(f"context: prompt of ~{prompt} tokens leaves no room in its {window}-token window")
            too_long, hard = window - MIN_OUTPUT, True
        elif prompt + wanted > window:
            reasons.append(f"output: ~{prompt} + {wanted} tokens exceed its {window}-token window")
            clamp = room
    images = features.has_images and not sees_images(info, provider.quirks)
    if images:
        reasons.append("vision: the model cannot see images")
    if features.tool_count and info is not None and info.tools is False:
        reasons.append("tools: the model cannot call tools")
        hard = True
    return _Fit(tuple(reasons), clamp, images, too_long, hard)


def plan(route: Route, features: Features, evidence: Evidence | None = None) -> Plan:
    """The attempts for `route`: every candidate that fits, in order; when none does, the
    ones that fit once degraded; when none of those either, no attempt and the error."""
    fits: list[tuple[Candidate, _Fit]] = []
    doubts: dict[str, str] = {}  # candidates the doctor found unreachable: a last resort
    for candidate in route.candidates:
        fit = _fit(candidate, features)
        learned = evidence(candidate, features) if evidence is not None else None
        if learned is not None and learned.hard:
            fit = _Fit((*fit.reasons, learned.reason), hard=True)
        elif learned is not None:
            doubts[candidate.label] = learned.reason
        fits.append((candidate, fit))
    trusted = [(c, f) for c, f in fits if c.label not in doubts]
    whole = [Attempt(c) for c, f in trusted if not f.reasons]
    degraded = [Attempt(c, f.max_tokens, f.images_as_text) for c, f in trusted if f.degradable]
    resort = [Attempt(c, f.max_tokens, f.images_as_text) for c, f in fits if c.label in doubts and not f.hard]
    attempts = tuple(whole or degraded or resort)
    verdicts = []
    for candidate, fit in fits:
        doubt = doubts.get(candidate.label)
        if doubt is not None:
            used = any(a.candidate == candidate for a in attempts)
            verdicts.append(Verdict(candidate.label, used, f"last resort ({doubt})" if used else doubt))
        elif not fit.reasons:
            verdicts.append(Verdict(candidate.label, True))
        elif fit.degradable and not whole:
            how = "; ".join(fit.reasons)
            fix = f"max_tokens lowered to {fit.max_tokens}" if fit.max_tokens is not None else ""
            fix += (", " if fix else "") + ("images replaced by a note" if fit.images_as_text else "")
            verdicts.append(Verdict(candidate.label, True, f"degraded ({how}): {fix}"))
        else:
            verdicts.append(Verdict(candidate.label, False, "; ".join(fit.reasons)))
    error = None if attempts else _no_fit(route, features, [f for _, f in fits])
    return Plan(attempts, tuple(verdicts), error)


def _no_fit(route: Route, features: Features, fits: list[_Fit]) -> ClientError:
    windows = [f.too_long for f in fits if f.too_long is not None]
    where = (route.rule and f"rule {route.rule}") or (f"tier {route.tier}" if route.tier else route.requested)
    if windows:
        # The wording Claude Code compacts on (PROTOCOL.md J).
        return ClientError(
            f"prompt is too long: {features.input_tokens} tokens > {max(windows)} maximum "
            f"(the most any model on {where}'s route can take and still answer)"
        )
    reasons = sorted({r for f in fits for r in f.reasons})
    return ClientError(
        f"no backend on {where}'s route can take this request ({'; '.join(reasons)}): "
        "add one that can to the route, or route such requests elsewhere with a rule in config.yaml"
    )
