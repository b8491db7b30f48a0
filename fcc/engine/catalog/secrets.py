"""Provider keys: from the environment, else from the config directory's keys.env.

Keys are looked up when a request needs them and are never part of any value that is
printed, logged or returned.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

ENV_FILE_NAME = "keys.env"
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_env_file(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        m = _LINE.match(raw)
        if not m:
            continue
        value = m.group(2)
        if value[:1] in ("'", '"'):
            # A quoted value ends at its closing quote; a comment may follow.
            end = value.find(value[0], 1)
            value = value[1:end] if end != -1 else value[1:]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if value:
            values[m.group(1)] = value
    return values


class KeyStore:
    """Looks keys up by variable name; its repr never shows a value."""

    __slots__ = ("_environ", "_file")

    def __init__(self, env_file: Path | None = None, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._file: dict[str, str] = {}
        if env_file is not None:
            try:
                self._file = parse_env_file(env_file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                self._file = {}

    def get(self, name: str | None) -> str | None:
        if not name:
            return None
        return self._environ.get(name) or self._file.get(name) or None

    def __repr__(self) -> str:
        return f"KeyStore({len(self._file)} from file)"
