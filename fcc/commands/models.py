"""What `fcc models` shows, as plain data (the CLI renders it; --json prints it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from fcc.engine.catalog.config import Settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.request.conditions import describe

if TYPE_CHECKING:
    from fcc.engine.routing.evidence import Finding


class TierRow(msgspec.Struct, frozen=True):
    tier: str
    route: str
    origin: str
    thinking: str
    fallbacks: tuple[str, ...]
    strategy: str = "ordered"


class RuleRow(msgspec.Struct, frozen=True):
    name: str
    when: str
    use: tuple[str, ...]
    strategy: str
    thinking: str


class DoctorRow(msgspec.Struct, frozen=True):
    model: str
    verdict: str
    failing: str | None
    reason: str | None
    age: str
    checked: float


class ProviderRow(msgspec.Struct, frozen=True):
    id: str
    name: str
    transport: str
    base_url: str
    auth: str  # the effective style: a document without `auth` gets bearer or none
    key_env: str | None
    key_set: bool | None  # None: the provider needs no key
    models: tuple[str, ...]
    free_tier: str | None


class ProbeRow(msgspec.Struct, frozen=True):
    name: str
    active: bool
    answer: str
    source: str


def probe_rows(settings: Settings) -> list[ProbeRow]:
    rows = []
    for p in settings.probes:
        a = p.answer
        answer = "empty" if a.empty else (f"computed ({a.function})" if a.function else repr(a.text))
        rows.append(ProbeRow(p.name, p.name not in settings.disabled_probes, answer, p.source))
    return rows


def tier_rows(settings: Settings) -> list[TierRow]:
    thinking = {None: "client", True: "on", False: "off"}
    return [
        TierRow(
            t.tier,
            str(t.target),
            t.origin,
            thinking[t.thinking],
            tuple(str(f) for f in t.fallbacks),
            t.strategy,
        )
        for t in settings.tiers.values()
    ]


def rule_rows(settings: Settings) -> list[RuleRow]:
    thinking = {None: "-", True: "on", False: "off"}
    return [
        RuleRow(r.name, describe(r.when), r.use, r.strategy or "-", thinking[r.thinking])
        for r in settings.routes
    ]


def provider_rows(settings: Settings, keys: KeyStore, only: str | None = None) -> list[ProviderRow]:
    rows = []
    for p in sorted(settings.providers.values(), key=lambda p: p.id):
        if only is not None and p.id != only:
            continue
        rows.append(
            ProviderRow(
                id=p.id,
                name=p.display_name,
                transport=p.transport,
                base_url=p.base_url,
                auth=p.auth if p.auth != "header" else f"header {p.auth_header}",
                key_env=p.api_key_env,
                key_set=None if not p.api_key_env else keys.get(p.api_key_env) is not None,
                models=tuple(m.id for m in p.models),
                free_tier=p.free_tier,
            )
        )
    return rows


def live_health(settings: Settings, timeout: float = 0.5) -> dict[str, object] | None:
    """The running fcc's own view of provider health (GET /health), or None if none runs."""
    import httpx

    s = settings.server
    headers = {"x-api-key": s.auth_token} if s.auth_token else {}
    try:
        response = httpx.get(f"{s.url}/health", headers=headers, timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    data = response.json()
    return data if isinstance(data, dict) else None


def doctor_findings(settings: Settings) -> dict[str, Finding]:
    """The last fcc doctor result of each model, from the state store (none if it cannot be read)."""
    import asyncio

    from fcc.engine.routing.evidence import NAMESPACE, findings
    from fcc.engine.state import opened
    from fcc.engine.state.store import StoreError

    async def read() -> dict[str, str]:
        async with opened(settings.state) as backend:
            return await backend.get(NAMESPACE)

    try:
        return findings(asyncio.run(read()))
    except StoreError:
        return {}


def doctor_rows(settings: Settings) -> list[DoctorRow]:
    return [
        DoctorRow(model, f.verdict, f.failing, f.reason, f.age(), f.checked)
        for model, f in sorted(doctor_findings(settings).items())
    ]
