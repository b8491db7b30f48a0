"""What the config documents refer to, checked in every layer, each problem at its own key:
providers in PROVIDER/MODEL references, tiers named by fallbacks and routing rules, probes
named by toggles, and routing rules that can never match.

Tolerant of shapes the schema already rejected, so one `fcc check` reports a bad port and a
rule naming a missing tier together.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from fcc.engine.catalog.documents import Document
from fcc.engine.errors import Problem

Where = list[str | int]


def _data(doc: Document | None) -> dict[str, Any]:
    return doc.data if doc is not None and isinstance(doc.data, dict) else {}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _problem(doc: Document | None, where: Where, message: str) -> Problem:
    if doc is None:
        return Problem("--tier", 1, 1, message)
    line, col = doc.locate(where)
    return Problem(doc.path, line, col, message)


def known_hint(name: str, known: set[str]) -> str:
    """The known names when they are few; else the likeliest ones and where to see them all."""
    if len(known) <= 12:
        return f"known: {', '.join(sorted(known)) or 'none'}"
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.7)
    also = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{also}`fcc models` lists all {len(known)}"


def check_references(
    defaults: Document,
    user: Document | None,
    flag_tiers: Mapping[str, str],
    catalog: set[str],
    probe_names: set[str],
    problems: list[Problem],
) -> None:
    providers = catalog | set(_mapping(_data(user).get("providers")))
    tiers = (
        set(_mapping(_data(defaults).get("tiers")))
        | set(_mapping(_data(user).get("tiers")))
        | set(flag_tiers)
    )
    for ref, doc, where, label in _references(defaults, user, flag_tiers):
        provider = ref.partition("/")[0]
        if provider not in providers:
            hint = known_hint(provider, providers)
            problems.append(_problem(doc, where, f"{label}: unknown provider {provider!r} in {ref} ({hint})"))
    if user is None:
        return
    data = _data(user)
    for tier in _mapping(data.get("fallbacks")):
        if tier not in tiers:
            problems.append(
                _problem(
                    user,
                    ["fallbacks", tier],
                    f"fallbacks/{tier}: no tier of that name ({known_hint(tier, tiers)})",
                )
            )
    routes = data.get("routes")
    for i, rule in enumerate(routes if isinstance(routes, list) else ()):
        for j, target in _targets(rule):
            if "/" not in target and target not in tiers:
                name = _rule_name(rule, i)
                message = f"routes/{name}: use names no tier {target!r} ({known_hint(target, tiers)})"
                problems.append(
                    _problem(user, ["routes", i, "use", *([j] if j is not None else [])], message)
                )
    _check_reachable(user, routes if isinstance(routes, list) else [], problems)
    for name in _mapping(data.get("probes")):
        if name not in probe_names:
            names = ", ".join(sorted(probe_names))
            problems.append(
                _problem(user, ["probes", name], f"probes/{name}: no probe of that name (known: {names})")
            )


def _rule_name(rule: Any, i: int) -> str:
    name = rule.get("name") if isinstance(rule, dict) else None
    return name if isinstance(name, str) else f"#{i + 1}"


def _targets(rule: Any) -> Iterator[tuple[int | None, str]]:
    use = rule.get("use") if isinstance(rule, dict) else None
    if isinstance(use, str):
        yield None, use
    elif isinstance(use, list):
        for j, target in enumerate(use):
            if isinstance(target, str):
                yield j, target


def _check_reachable(user: Document, routes: list[Any], problems: list[Problem]) -> None:
    """A rule whose conditions include all of an earlier rule's (the same keys, the same
    values) can never match: the earlier one takes every request it would."""
    seen: list[tuple[str, dict[str, Any]]] = []
    for i, rule in enumerate(routes):
        if not isinstance(rule, dict):
            continue
        when = rule.get("when")
        when = when if isinstance(when, dict) else {}
        name = _rule_name(rule, i)
        for earlier, conditions in seen:
            if all(k in when and when[k] == v for k, v in conditions.items()):
                why = "it has no conditions" if not conditions else "its conditions are a part of these"
                message = (
                    f"routes/{name}: can never match: routes/{earlier} comes first and takes every "
                    f"request this one would ({why}); move the narrower rule up"
                )
                problems.append(_problem(user, ["routes", i, "name"], message))
                break
        seen.append((name, when))


def _references(
    defaults: Document, user: Document | None, flag_tiers: Mapping[str, str]
) -> Iterator[tuple[str, Document | None, Where, str]]:
    """(PROVIDER/MODEL, its document, where in it, what refers to it) for every model reference."""
    for doc in (defaults, user):
        data = _data(doc)
        for tier, value in _mapping(data.get("tiers")).items():
            if isinstance(value, str):
                yield value, doc, ["tiers", tier], tier
            elif isinstance(value, dict):
                if isinstance(value.get("model"), str):
                    yield value["model"], doc, ["tiers", tier, "model"], tier
                yield from _ref_list(value.get("fallbacks"), doc, ["tiers", tier, "fallbacks"], tier)
        for tier, refs in _mapping(data.get("fallbacks")).items():
            yield from _ref_list(refs, doc, ["fallbacks", tier], tier)
        routes = data.get("routes")
        for i, rule in enumerate(routes if isinstance(routes, list) else ()):
            for j, target in _targets(rule):
                if "/" in target:
                    where: Where = ["routes", i, "use", *([j] if j is not None else [])]
                    yield target, doc, where, f"routes/{_rule_name(rule, i)}"
    for tier, ref in flag_tiers.items():
        yield ref, None, [], tier


def _ref_list(
    refs: Any, doc: Document | None, where: Where, label: str
) -> Iterator[tuple[str, Document | None, Where, str]]:
    for i, ref in enumerate(refs if isinstance(refs, list) else ()):
        if isinstance(ref, str):
            yield ref, doc, [*where, i], label
