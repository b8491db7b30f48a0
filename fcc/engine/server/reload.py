"""Live documents: when config.yaml, keys.env or the user's probe documents change (or on
SIGHUP, or POST /admin/reload), fcc validates them exactly as `fcc check` does and, if they
are valid, swaps its settings at once: requests already streaming finish on the route they
started with, new ones take the new settings. If they are not, the old settings keep
serving and the located problems go to the log and the dashboard. Health, limits, quotas and
usage live in the state store under provider and model names, so they carry over for every
provider and model that still exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

from fcc.engine.catalog.config import Overrides, Settings, default_config_path, load_settings
from fcc.engine.catalog.secrets import ENV_FILE_NAME, KeyStore
from fcc.engine.errors import ConfigError
from fcc.engine.server.state import AppState

log = logging.getLogger("fcc.reload")
POLL = 1.0  # seconds between looks at the documents' sizes and times


class Reload(msgspec.Struct, frozen=True):
    time: float
    ok: bool
    trigger: str  # a file changed, SIGHUP, POST /admin/reload
    changes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def wire(self) -> dict[str, object]:
        return {
            "time": self.time,
            "ok": self.ok,
            "trigger": self.trigger,
            "changes": list(self.changes),
            "problems": list(self.problems),
        }


class Source(msgspec.Struct):
    """Where the settings came from, to read them again the same way."""

    config: Path | None  # the --config given (None: the default path)
    overrides: Overrides = msgspec.field(default_factory=Overrides)
    keys_from_file: bool = True  # the key store reads keys.env (tests give one of their own)

    def paths(self, settings: Settings) -> tuple[list[Path], list[Path]]:
        """The files, and the folders of YAML documents, to watch."""
        config = self.config or default_config_path()
        return [config, settings.config_dir / ENV_FILE_NAME], [settings.config_dir / "probes"]


def signature(paths: tuple[list[Path], list[Path]]) -> frozenset[tuple[str, object]]:
    """What changes when a watched document does: the size and time of each file (or that it
    is missing), and of each YAML file in a watched folder (a missing folder holds none)."""
    files, folders = paths
    out: set[tuple[str, object]] = set()
    for path in files:
        out.add((str(path), _stat(path)))
    for folder in folders:
        with contextlib.suppress(OSError):
            for child in folder.iterdir():
                if child.suffix in (".yaml", ".yml"):
                    out.add((str(child), _stat(child)))
    return frozenset(out)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def differences(old: Settings, new: Settings, old_keys: KeyStore, new_keys: KeyStore) -> list[str]:
    """What a person needs to know changed: tiers, rules, providers, keys (names only), probes."""
    out: list[str] = []
    out += _mapping_changes(
        "tier", {k: _tier(v) for k, v in old.tiers.items()}, {k: _tier(v) for k, v in new.tiers.items()}
    )
    out += _mapping_changes(
        "rule", {r.name: repr(r) for r in old.routes}, {r.name: repr(r) for r in new.routes}
    )
    if [r.name for r in old.routes] != [r.name for r in new.routes] and set(old.routes) == set(new.routes):
        out.append("rules reordered")
    out += _mapping_changes(
        "provider",
        {k: repr(v) for k, v in old.providers.items()},
        {k: repr(v) for k, v in new.providers.items()},
    )
    out += _mapping_changes(
        "probe", {p.name: repr(p) for p in old.probes}, {p.name: repr(p) for p in new.probes}
    )
    if old.disabled_probes != new.disabled_probes:
        out.append(f"probes turned off: {', '.join(sorted(new.disabled_probes)) or 'none'}")
    names = {p.api_key_env for p in new.providers.values() if p.api_key_env}
    changed = sorted(n for n in names if old_keys.get(n) != new_keys.get(n))
    if changed:
        out.append(f"keys changed: {', '.join(changed)}")  # the names, never the values
    if (old.server.host, old.server.port) != (new.server.host, new.server.port):
        out.append("server.host/port changed: that takes a restart of fcc serve")
    if old.state != new.state:
        out.append("state changed: that takes a restart of fcc serve")
    return out


def _tier(t: object) -> str:
    target = getattr(t, "target", "")
    fallbacks = getattr(t, "fallbacks", ())
    return f"{target}" + (f" (then {', '.join(map(str, fallbacks))})" if fallbacks else "")


def _mapping_changes(what: str, old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    out = [f"{what} {k} added" for k in new if k not in old]
    out += [f"{what} {k} removed" for k in old if k not in new]
    for k in new:
        if k in old and old[k] != new[k]:
            shown = f": {old[k]} → {new[k]}" if what == "tier" else " changed"
            out.append(f"{what} {k}{shown}")
    return out


async def reload(state: AppState, source: Source, trigger: str) -> Reload:
    """Read the documents again; swap the settings if they are valid."""
    try:
        settings = await asyncio.to_thread(load_settings, source.config, source.overrides)
    except ConfigError as exc:
        result = Reload(time.time(), False, trigger, problems=tuple(str(p) for p in exc.problems))
        log.error(
            "config not reloaded (%s): the previous settings keep serving:\n%s",
            trigger,
            "\n".join(result.problems),
        )
        state.reloaded = result
        return result
    keys = KeyStore(settings.config_dir / ENV_FILE_NAME) if source.keys_from_file else state.keys
    changes = differences(state.settings, settings, state.keys, keys)
    state.use(settings, keys)
    result = Reload(time.time(), True, trigger, tuple(changes))
    log.info("config reloaded (%s): %s", trigger, "; ".join(changes) or "no change that matters")
    state.reloaded = result
    return result


async def watch(state: AppState, source: Source, interval: float = POLL) -> None:
    """Reload whenever a watched document's size or time changes."""
    seen = signature(source.paths(state.settings))
    while True:
        await asyncio.sleep(interval)
        now = signature(source.paths(state.settings))
        if now != seen:
            changed = sorted({name for name, _ in now ^ seen})
            seen = now
            await reload(state, source, f"{', '.join(changed)} changed")
