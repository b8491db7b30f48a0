"""Built-in catalog ← user config ← command-line flags, merged into one frozen Settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

import msgspec

from fcc.engine.catalog.cache import MISS, DocumentCache, NoCache
from fcc.engine.catalog.documents import Document, iter_yaml, parse, validate
from fcc.engine.catalog.providers import Provider, provider_from_data
from fcc.engine.catalog.references import check_references
from fcc.engine.catalog.resources import catalog_dir
from fcc.engine.errors import ConfigError, Problem
from fcc.engine.probes.model import Probe, probe_from_data
from fcc.engine.request.conditions import Conditions, conditions_from_data
from fcc.engine.types import JSON, Origin, Strategy

CONFIG_DIR_NAME = "free-claude-code"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / CONFIG_DIR_NAME


def default_config_path() -> Path:
    explicit = os.environ.get("FCC_CONFIG")
    return Path(explicit) if explicit else config_dir() / "config.yaml"


class ModelRef(msgspec.Struct, frozen=True):
    provider: str
    model: str

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        provider, _, model = text.partition("/")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


class TierRoute(msgspec.Struct, frozen=True):
    tier: str
    target: ModelRef
    origin: Origin
    thinking: bool | None = None
    fallbacks: tuple[ModelRef, ...] = ()
    strategy: Strategy = "ordered"


class Rule(msgspec.Struct, frozen=True):
    """One routing rule of config.yaml's routes: (routing/rules.py interprets it)."""

    name: str
    when: Conditions
    use: tuple[str, ...]  # tier names and PROVIDER/MODEL references, in order
    strategy: Strategy | None = None
    thinking: bool | None = None
    description: str = ""


class ServerSettings(msgspec.Struct, frozen=True):
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

    @property
    def url(self) -> str:
        """Where a client on this machine reaches the server (a wildcard bind is loopback)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"


StoreBackend = Literal["memory", "sqlite", "redis"]


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / CONFIG_DIR_NAME


class StateSettings(msgspec.Struct, frozen=True):
    backend: StoreBackend = "sqlite"
    path: Path | None = None  # sqlite; None: state_dir()/fcc.db
    url: str | None = None  # redis: redis://host:port/db
    retention_days: int = 30
    prefix: str = "fcc"  # redis: key prefix, so several fcc installations can share one server

    @property
    def db_path(self) -> Path:
        return self.path or state_dir() / "fcc.db"

    @property
    def shown(self) -> str:
        """The store and where it is, fit to print: a Redis URL's password stays out."""
        if self.backend == "memory":
            return "memory (nothing kept on disk)"
        if self.backend == "redis" and self.url:
            return f"redis ({without_password(self.url)})"
        return f"sqlite ({self.db_path})"

    def __repr__(self) -> str:  # a Redis URL may carry a password
        where = without_password(self.url) if self.url else None
        return f"StateSettings(backend={self.backend!r}, path={self.path}, url={where!r})"


def without_password(url: str) -> str:
    """redis://user:secret@host:6379/0 -> redis://…@host:6379/0"""
    head, sep, tail = url.partition("@")
    return f"{head.split('//')[0]}//…@{tail}" if sep else url


class Overrides(msgspec.Struct, frozen=True):
    """What the command line says; None means 'not given'."""

    host: str | None = None
    port: int | None = None
    tiers: Mapping[str, str] = msgspec.field(default_factory=dict)


class Settings(msgspec.Struct, frozen=True):
    server: ServerSettings
    tiers: Mapping[str, TierRoute]
    providers: Mapping[str, Provider]
    probes: tuple[Probe, ...]  # every probe known, built-in and the user's
    disabled_probes: frozenset[str]
    config_path: str | None
    config_dir: Path
    routes: tuple[Rule, ...] = ()
    state: StateSettings = msgspec.field(default_factory=StateSettings)

    def routed(self) -> list[ModelRef]:
        """Every model the config can send to (tiers, their fallbacks, rules), in order, once."""
        out: dict[ModelRef, None] = {}
        for tier in self.tiers.values():
            out.update(dict.fromkeys((tier.target, *tier.fallbacks)))
        for rule in self.routes:
            out.update(dict.fromkeys(ModelRef.parse(t) for t in rule.use if "/" in t))
        return list(out)

    @property
    def header_names(self) -> frozenset[str]:
        """The request headers routing rules look at (the only ones kept in Features)."""
        return frozenset(name for rule in self.routes for name in rule.when.header_names)

    @property
    def active_probes(self) -> tuple[Probe, ...]:
        return tuple(p for p in self.probes if p.name not in self.disabled_probes)


def _load_doc(path: Path, kind: str, problems: list[Problem], cache: DocumentCache) -> Document | None:
    """A valid document, or None (its problems are in `problems`)."""
    doc, valid = _read_doc(path, kind, problems, cache)
    return doc if valid else None


def _read_doc(
    path: Path, kind: str, problems: list[Problem], cache: DocumentCache
) -> tuple[Document | None, bool]:
    """The parsed document even when the schema rejects it (the references in it can still be
    checked, so one run reports every problem), and whether it is valid."""
    data, before = cache.get(path, kind)
    if data is not MISS:
        return Document(str(path), data), True
    doc, found = parse(path)
    problems += found
    if doc is None:
        return None, False
    if doc.data is None:  # an empty file is an empty mapping
        doc = Document(doc.path, {}, doc.tree)
    errors = validate(doc, kind)
    problems += errors
    if not errors:
        cache.put(path, kind, before, doc.data)
    return doc, not errors


def load_catalog(
    folder: Path, problems: list[Problem], cache: DocumentCache
) -> dict[str, tuple[Document, JSON]]:
    """Every provider document in `folder`, by id (later duplicates are problems)."""
    found: dict[str, tuple[Document, JSON]] = {}
    for path in iter_yaml(folder):
        doc = _load_doc(path, "provider", problems, cache)
        if doc is None:
            continue
        pid = doc.data["id"]
        if pid in found:
            other = found[pid][0].path
            line, col = doc.locate(["id"])  # only now: a cached document is parsed to say where
            problems.append(Problem(doc.path, line, col, f"duplicate provider id {pid!r} (also in {other})"))
            continue
        if path.stem != pid:
            line, col = doc.locate(["id"])
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


def _load_probes(folders: list[Path], problems: list[Problem], cache: DocumentCache) -> tuple[Probe, ...]:
    """Built-in probe documents, then the user's: a user probe replaces one of the same name."""
    found: dict[str, Probe] = {}
    for folder in folders:
        seen: dict[str, str] = {}
        for path in iter_yaml(folder):
            doc = _load_doc(path, "probe", problems, cache)
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
    cached: bool = True,
) -> Settings:
    """Everything fcc needs to run; raises ConfigError listing every problem at once.
    user_config=False: the shipped catalog and defaults alone (no config.yaml, no user probes).
    cached=False: parse and validate every document even if it validated before (fcc check)."""
    cache = DocumentCache() if cached else NoCache()
    try:
        return _load_settings(config_path, overrides or Overrides(), user_config, cache)
    finally:
        cache.save()


def _load_settings(
    config_path: Path | None, overrides: Overrides, user_config: bool, cache: DocumentCache
) -> Settings:
    problems: list[Problem] = []
    cat = catalog_dir()
    catalog = load_catalog(cat / "providers", problems, cache)
    defaults = _load_doc(cat / "defaults.yaml", "config", problems, cache)
    path = config_path or default_config_path()
    user: Document | None = None
    user_valid = True
    if user_config and (path.exists() or config_path is not None):
        user, user_valid = _read_doc(path, "config", problems, cache)
    folders = [cat / "probes", *([path.parent / "probes"] if user_config else [])]
    probes = _load_probes(folders, problems, cache)
    if defaults is None:
        raise ConfigError(problems)
    # What the documents refer to is checked even when one breaks the schema, so a single
    # `fcc check` names a bad port and a tier's unknown provider together.
    check_references(defaults, user, overrides.tiers, set(catalog), {p.name for p in probes}, problems)
    if problems or not user_valid:
        raise ConfigError(problems)
    user_data: JSON = user.data if user else {}
    providers = _merge_providers(catalog, user, problems, cache)
    if problems:
        raise ConfigError(problems)
    server = _server(defaults.data.get("server", {}), user_data.get("server", {}), overrides)
    tiers = _tiers(defaults, user, overrides)
    routes = tuple(_rule(r) for r in user_data.get("routes", ()))
    state = _state(user_data.get("state", {}))
    toggles: dict[str, bool] = user_data.get("probes", {})
    return Settings(
        server=server,
        tiers=MappingProxyType(tiers),
        providers=MappingProxyType(providers),
        probes=probes,
        disabled_probes=frozenset(name for name, on in toggles.items() if not on),
        config_path=str(path) if user else None,
        config_dir=path.parent,
        routes=routes,
        state=state,
    )


def _merge_providers(
    catalog: Mapping[str, tuple[Document, JSON]],
    user: Document | None,
    problems: list[Problem],
    cache: DocumentCache,
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
        # The same merge validated before (same schemas: the cache's stamp) needs no jsonschema.
        known, before = cache.get(Path(user.path), f"merged-provider {pid}")
        if known != data:
            found = validate(Document(user.path, {"p": data}, {}), "provider", at=["p"])
            for p in found:
                detail = p.message.split(": ", 1)[-1]
                line, col = user.locate(where)  # the entry, not a key of the merged whole
                problems.append(Problem(user.path, line, col, f"providers/{pid}: {detail}"))
            if not found:
                cache.put(Path(user.path), f"merged-provider {pid}", before, data)
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


def _tiers(defaults: Document, user: Document | None, overrides: Overrides) -> dict[str, TierRoute]:
    """Each tier from its highest layer (the references were checked before)."""
    layers: list[tuple[Origin, Mapping[str, Any]]] = [("default", defaults.data.get("tiers", {}))]
    if user is not None:
        layers.append(("config", user.data.get("tiers", {})))
    layers.append(("flag", overrides.tiers))
    names = list(dict.fromkeys(name for _, tiers in layers for name in tiers))
    out: dict[str, TierRoute] = {}
    for tier in names:
        origin, value = next((o, t[tier]) for o, t in reversed(layers) if t.get(tier) is not None)
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
            strategy=cast(Strategy, spec.get("strategy", "ordered")),
        )
    return out


def _rule(data: JSON) -> Rule:
    use = data["use"]
    return Rule(
        name=data["name"],
        when=conditions_from_data(data.get("when")),
        use=(use,) if isinstance(use, str) else tuple(use),
        strategy=cast("Strategy | None", data.get("strategy")),
        thinking=cast("bool | None", data.get("thinking")),
        description=data.get("description", ""),
    )


def _state(data: JSON) -> StateSettings:
    path = data.get("path")
    return StateSettings(
        backend=cast(StoreBackend, data.get("backend", "sqlite")),
        path=Path(path).expanduser() if path else None,
        url=data.get("url"),
        retention_days=int(data.get("retention_days", 30)),
        prefix=str(data.get("prefix", "fcc")),
    )
