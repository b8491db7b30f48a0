"""`fcc check`: every problem in the catalog, the user config and any given files, at once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec

from fcc.engine.catalog import config as config_mod
from fcc.engine.catalog.documents import SCHEMA_KINDS, parse, validate
from fcc.engine.catalog.resources import catalog_dir
from fcc.engine.errors import ConfigError, Problem


class CheckReport(msgspec.Struct, frozen=True):
    files: tuple[str, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def guess_kind(path: Path, data: object) -> str:
    """provider, probe or config: by the schema its first line names, its folder, its keys."""
    try:
        head = path.read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        head = ""
    for kind in SCHEMA_KINDS:
        if f"{kind}.schema.json" in head:
            return kind
    if path.parent.name in ("providers", "probes"):
        return path.parent.name[:-1]
    if isinstance(data, dict) and {"id", "transport"} <= data.keys():
        return "provider"
    if isinstance(data, dict) and {"match", "answer"} & data.keys():
        return "probe"
    return "config"


def _expand(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file())
        else:
            out.append(p)
    return out


def _settings_problems(config_path: Path | None) -> list[Problem]:
    try:
        config_mod.load_settings(config_path, cached=False)  # the validator validates everything
    except ConfigError as exc:
        return list(exc.problems)
    return []


def run_check(paths: Sequence[Path] = (), config_path: Path | None = None) -> CheckReport:
    """The shipped catalog and the user config always; then each given file by its kind."""
    problems: dict[str, Problem] = {}
    files = [str(p) for p in _expand([catalog_dir()])]
    user = config_path or config_mod.default_config_path()
    if user.exists() or config_path is not None:
        files.append(str(user))
    for p in _settings_problems(config_path):
        problems.setdefault(str(p), p)
    for path in _expand(paths):
        files.append(str(path))
        doc, found = parse(path)
        for p in found:
            problems.setdefault(str(p), p)
        if doc is None:
            continue
        kind = guess_kind(path, doc.data)
        found = _settings_problems(path) if kind == "config" else validate(doc, kind)
        for p in found:
            problems.setdefault(str(p), p)
    ordered = sorted(problems.values(), key=lambda p: (p.file, p.line, p.col, p.message))
    return CheckReport(tuple(dict.fromkeys(files)), tuple(ordered))
