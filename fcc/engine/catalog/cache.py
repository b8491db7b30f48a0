"""Documents that validated before, remembered by their file's identity, so `fcc serve` (and
every other command but `fcc check`) starts without parsing YAML or running JSON Schema when
nothing changed: with the 46 shipped documents that was most of a start.

An entry is the document's plain data under its path and kind, kept while the file's size,
modification and change times and inode are what they were when it was read; the whole
cache is dropped when fcc's version or any schema file changes. Only documents the schema
accepted are kept, so a cached document is one the schema would accept again; the checks
across documents (references, duplicates) still run on every load, and when one of them
finds a problem in a cached document, the file is parsed again to say where.
It lives in $XDG_CACHE_HOME/fcc (~/.cache/fcc); if it cannot be read or written, fcc
validates everything, as without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fcc import __version__
from fcc.engine.catalog.resources import data_dir

FILE = "documents-v1.json"
MISS = object()
Identity = list[int]


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fcc" / FILE


def identity(path: Path) -> Identity | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _stamp() -> str:
    """What every entry depends on beside its own file: fcc's version and the schemas."""
    schemas = data_dir("schemas")
    parts = [__version__]
    for schema in sorted(schemas.glob("*.schema.json")):
        parts.append(f"{schema.name}:{identity(schema)}")
    return "|".join(parts)


class DocumentCache:
    def __init__(self, path: Path | None = None) -> None:
        self._path = path or cache_path()
        self._stamp = _stamp()
        self._entries: dict[str, Any] = {}
        self._dirty = False
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            stored = json.loads(self._path.read_text(encoding="utf-8"))
            if stored.get("stamp") == self._stamp:
                self._entries = dict(stored["entries"])

    @staticmethod
    def _key(path: Path, kind: str) -> str:
        return f"{kind}:{path.resolve()}"

    def get(self, path: Path, kind: str) -> tuple[Any, Identity | None]:
        """The cached data (or MISS), and the file's identity now, to `put` after reading it."""
        now = identity(path)
        entry = self._entries.get(self._key(path, kind))
        if now is not None and isinstance(entry, dict) and entry.get("id") == now:
            return entry["data"], now
        return MISS, now

    def put(self, path: Path, kind: str, before: Identity | None, data: Any) -> None:
        """Remember `data`, read from `path` when its identity was `before`."""
        if before is None or identity(path) != before:
            return  # it changed while being read: the next load reads it again
        self._entries[self._key(path, kind)] = {"id": before, "data": data}
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        live = {k: v for k, v in self._entries.items() if Path(k.split(":", 1)[1]).exists()}
        with contextlib.suppress(OSError):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".documents-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"stamp": self._stamp, "entries": live}, f, separators=(",", ":"))
                os.replace(tmp, self._path)  # whole or not at all, whoever reads it meanwhile
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        self._dirty = False


class NoCache(DocumentCache):
    """`fcc check`: every document parsed and validated, nothing remembered."""

    def __init__(self) -> None:  # no file: nothing to read or keep
        pass

    def get(self, path: Path, kind: str) -> tuple[Any, Identity | None]:
        return MISS, None

    def put(self, path: Path, kind: str, before: Identity | None, data: Any) -> None:
        return None

    def save(self) -> None:
        return None
