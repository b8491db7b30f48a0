"""Built-in catalog ← user config ← command-line flags, merged into one frozen Settings."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from fcc.engine.catalog.documents import Document, iter_yaml, parse, validate
from fcc.engine.catalog.providers import Provider, provider_from_data
from fcc.engine.catalog.resources import catalog_dir
from fcc.engine.errors import ConfigError, Problem
from fcc.engine.probes.model import Probe, probe_from_data
from fcc.engine.types import JSON, TIERS, Origin, Tier

CONFIG_DIR_NAME = "free-claude-code"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / CONFIG_DIR_NAME


def default_config_path() -> Path:
    explicit = os.environ.get("FCC_CONFIG")
    return Path(explicit) if explicit else config_dir() / "config.yaml"


@dataclass(frozen=True, slots=True)
class ModelRef:
    provider: str
    model: str

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        provider, _, model = text.partition("/")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class TierRoute:
    tier: Tier
    target: ModelRef
    origin: Origin
    thinking: bool | None = None
    fallbacks: tuple[ModelRef, ...] = ()


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8082
    auth_token: str | None = None
    log_prompts: bool = False
    max_body_bytes: int = 32 * 1024 * 1024
    ping_interval: float = 10.0
    request_log: Path | None = None
    request_log_max_bytes: int = 10 * 1024 * 1024

    def __repr__(self) -> str:  # the token is a secret too
        token = "set" if self.auth_token else "unset"
        return f"ServerSettings(host={self.host!r}, port={self.port}, auth_token={token})"


@dataclass(frozen=True, slots=True)
class Overrides:
    """What the command line says; None means 'not given'."""

    host: str | None = None
    port: int | None = None
    tiers: Mapping[Tier, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings
    tiers: Mapping[Tier, TierRoute]
    providers: Mapping[str, Provider]
    probes: tuple[Probe, ...]  # every probe known, built-in and the user's
    disabled_probes: frozenset[str]
    config_path: str | None
    config_dir: Path

    @property
    def active_probes(self) -> tuple[Probe, ...]:
        return tuple(p for p in self.probes if p.name not in self.disabled_probes)


def _load_doc(path: Path, kind: str, problems: list[Problem]) -> Document | None:
    """A valid document, or None (its problems are in `problems`)."""
    doc, valid = _read_doc(path, kind, problems)
    return doc if valid else None


def _read_doc(path: Path, kind: str, problems: list[Problem]) -> tuple[Document | None, bool]:
    """The parsed document even when the schema rejects it (the references in it can still be
    checked, so one run reports every problem), and whether it is valid."""
    doc, found = parse(path)
    problems += found
    if doc is None:
        return None, False
    if doc.data is None:  # an empty file is an empty mapping
        doc = Document(doc.path, {}, doc.tree)
    errors = validate(doc, kind)
    problems += errors
    return doc, not errors


def load_catalog(folder: Path, problems: list[Problem]) -> dict[str, tuple[Document, JSON]]:
    """Every provider document in `folder`, by id (later duplicates are problems)."""
    found: dict[str, tuple[Document, JSON]] = {}
    for path in iter_yaml(folder):
        doc = _load_doc(path, "provider", problems)
        if doc is None:
            continue
        pid = doc.data["id"]
        line, col = doc.locate(["id"])
        if pid in found:
            other = found[pid][0].path
            problems.append(Problem(doc.path, line, col, f"duplicate provider id {pid!r} (also in {other})"))
            continue
        if path.stem != pid:
            problems.append(
                Problem(
                    doc.path,
                    line,
                    col,
                    f"id {pid!r} differs from the file name: rename the file to {pid}.yaml",
                )
            )
        found[pid] = (doc, doc.data)
    return found


def _load_probes(folders: list[Path], problems: list[Problem]) -> tuple[Probe, ...]:
    """Built-in probe documents, then the user's: a user probe replaces one of the same name."""
    found: dict[str, Probe] = {}
    for folder in folders:
        seen: dict[str, str] = {}
        for path in iter_yaml(folder):
            doc = _load_doc(path, "probe", problems)
            if doc is None:
                continue
            name = doc.data["name"]
            if name in seen:
                line, col = doc.locate(["name"])
                problems.append(
                    Problem(doc.path, line, col, f"duplicate probe name {name!r} (also in {seen[name]})")
                )
                continue
            seen[name] = doc.path
            found[name] = probe_from_data(doc.data, doc.path)
    return tuple(found.values())


def _merge(base: JSON, over: JSON) -> JSON:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_settings(
    config_path: Path | None = None,
    overrides: Overrides | None = None,
    *,
    user_config: bool = True,
) -> Settings:
    """Everything fcc needs to run; raises ConfigError listing every problem at once.
    user_config=False: the shipped catalog and defaults alone (no config.yaml, no user probes)."""
    overrides = overrides or Overrides()
    problems: list[Problem] = []
    cat = catalog_dir()
    catalog = load_catalog(cat / "providers", problems)
    defaults = _load_doc(cat / "defaults.yaml", "config", problems)
    path = config_path or default_config_path()
    user: Document | None = None
    user_valid = True
    if user_config and (path.exists() or config_path is not None):
        user, user_valid = _read_doc(path, "config", problems)
    probes = _load_probes([cat / "probes", *([path.parent / "probes"] if user_config else [])], problems)
    if defaults is None:
        raise ConfigError(problems)
    # What the documents refer to is checked even when one breaks the schema, so a single
    # `fcc check` names a bad port and a tier's unknown provider together.
    _check_references(defaults, user, overrides, catalog, {p.name for p in probes}, problems)
    if problems or not user_valid:
        raise ConfigError(problems)
    user_data: JSON = user.data if user else {}
    providers = _merge_providers(catalog, user, problems)
    if problems:
        raise ConfigError(problems)
    server = _server(defaults.data.get("server", {}), user_data.get("server", {}), overrides)
    tiers = _tiers(defaults, user, overrides)
    toggles: dict[str, bool] = user_data.get("probes", {})
    return Settings(
        server=server,
        tiers=MappingProxyType(tiers),
        providers=MappingProxyType(providers),
        probes=probes,
        disabled_probes=frozenset(name for name, on in toggles.items() if not on),
        config_path=str(path) if user else None,
        config_dir=path.parent,
    )


def _merge_providers(
    catalog: Mapping[str, tuple[Document, JSON]], user: Document | None, problems: list[Problem]
) -> dict[str, Provider]:
    merged = {pid: data for pid, (_, data) in catalog.items()}
    sources = {pid: doc.path for pid, (doc, _) in catalog.items()}
    entries: JSON = user.data.get("providers", {}) if user else {}
    for pid, entry in entries.items():
        assert user is not None
        where = ["providers", pid]
        if "id" in entry and entry["id"] != pid:
            line, col = user.locate([*where, "id"])
            problems.append(Problem(user.path, line, col, f"id {entry['id']!r} must equal its key {pid!r}"))
            continue
        data = _merge(merged[pid], entry) if pid in merged else {"id": pid, "display_name": pid, **entry}
        # The merged result must be a whole provider (a new one needs transport, base_url…).
        merged_doc = Document(user.path, {"p": data}, user.tree)
        line, col = user.locate(where)
        for p in validate(merged_doc, "provider", at=["p"]):
            detail = p.message.split(": ", 1)[-1]
            problems.append(Problem(user.path, line, col, f"providers/{pid}: {detail}"))
        merged[pid] = data
        sources[pid] = user.path
    if problems:
        return {}
    return {pid: provider_from_data(data, sources[pid]) for pid, data in merged.items()}


def _server(defaults: JSON, user: JSON, overrides: Overrides) -> ServerSettings:
    values: dict[str, Any] = {**defaults, **user}
    if overrides.host is not None:
        values["host"] = overrides.host
    if overrides.port is not None:
        values["port"] = overrides.port
    return ServerSettings(
        host=str(values["host"]),
        port=int(values["port"]),
        auth_token=values.get("auth_token"),
        log_prompts=bool(values.get("log_prompts", False)),
        max_body_bytes=int(float(values.get("max_body_mb", 32)) * 1024 * 1024),
        ping_interval=float(values.get("ping_interval", 10)),
        request_log=Path(values["request_log"]).expanduser() if values.get("request_log") else None,
        request_log_max_bytes=int(float(values.get("request_log_max_mb", 10)) * 1024 * 1024),
    )


def _tier_spec(value: Any) -> JSON:
    return {"model": value} if isinstance(value, str) else dict(value)


def _tiers(defaults: Document, user: Document | None, overrides: Overrides) -> dict[Tier, TierRoute]:
    """Each tier from its highest layer (the references were checked before)."""
    out: dict[Tier, TierRoute] = {}
    for tier in TIERS:
        origin: Origin = "default"
        value = defaults.data.get("tiers", {}).get(tier)
        if user is not None and user.data.get("tiers", {}).get(tier) is not None:
            origin, value = "config", user.data["tiers"][tier]
        if tier in overrides.tiers:
            origin, value = "flag", overrides.tiers[tier]
        spec = _tier_spec(value)
        fallbacks = list(spec.get("fallbacks", ()))
        if user is not None:
            fallbacks += user.data.get("fallbacks", {}).get(tier, [])
        out[tier] = TierRoute(
            tier=tier,
            target=ModelRef.parse(spec["model"]),
            origin=origin,
            thinking=cast("bool | None", spec.get("thinking")),
            fallbacks=tuple(ModelRef.parse(f) for f in fallbacks),
        )
    return out


def _check_references(
    defaults: Document,
    user: Document | None,
    overrides: Overrides,
    catalog: Mapping[str, tuple[Document, JSON]],
    probe_names: set[str],
    problems: list[Problem],
) -> None:
    """Every PROVIDER/MODEL names a known provider and every probe toggle a known probe, in
    every layer, each at its own key. Tolerant of shapes the schema already rejected."""
    known = set(catalog)
    entries = user.data.get("providers") if user is not None and isinstance(user.data, dict) else None
    if isinstance(entries, dict):
        known |= set(entries)
    for ref, doc, where, tier in _references(defaults, user, overrides):
        provider = ref.partition("/")[0]
        if provider in known:
            continue
        message = f"{tier}: unknown provider {provider!r} in {ref} ({_known_hint(provider, known)})"
        if doc is None:
            problems.append(Problem("--tier", 1, 1, message))
        else:
            line, col = doc.locate(where)
            problems.append(Problem(doc.path, line, col, message))
    toggles = user.data.get("probes") if user is not None and isinstance(user.data, dict) else None
    if isinstance(toggles, dict):
        assert user is not None
        for name in toggles:
            if name not in probe_names:
                line, col = user.locate(["probes", name])
                names = ", ".join(sorted(probe_names))
                problems.append(
                    Problem(user.path, line, col, f"probes/{name}: no probe of that name (known: {names})")
                )


Where = list[str | int]


def _known_hint(name: str, known: set[str]) -> str:
    """The known names when they are few; else the likeliest ones and where to see them all."""
    if len(known) <= 12:
        return f"known: {', '.join(sorted(known)) or 'none'}"
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.7)
    also = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{also}`fcc models` lists all {len(known)}"


def _references(
    defaults: Document, user: Document | None, overrides: Overrides
) -> Iterator[tuple[str, Document | None, Where, str]]:
    """(PROVIDER/MODEL, its document, where in it, its tier) for every model reference."""
    for doc in (defaults, user):
        data = doc.data if doc is not None and isinstance(doc.data, dict) else {}
        tiers = data.get("tiers")
        for tier, value in tiers.items() if isinstance(tiers, dict) else ():
            if isinstance(value, str):
                yield value, doc, ["tiers", tier], tier
            elif isinstance(value, dict):
                if isinstance(value.get("model"), str):
                    yield value["model"], doc, ["tiers", tier, "model"], tier
                yield from _ref_list(value.get("fallbacks"), doc, ["tiers", tier, "fallbacks"], tier)
        fallbacks = data.get("fallbacks")
        for tier, refs in fallbacks.items() if isinstance(fallbacks, dict) else ():
            yield from _ref_list(refs, doc, ["fallbacks", tier], tier)
    for tier, ref in overrides.tiers.items():
        yield ref, None, [], tier


def _ref_list(
    refs: Any, doc: Document | None, where: Where, tier: str
) -> Iterator[tuple[str, Document | None, Where, str]]:
    for i, ref in enumerate(refs if isinstance(refs, list) else ()):
        if isinstance(ref, str):
            yield ref, doc, [*where, i], tier
