"""Where fcc's own data lives: inside the wheel, or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[2]  # fcc/


def data_dir(name: str) -> Path:
    """`catalog` or `schemas`: the packaged copy when installed, the checkout's otherwise."""
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / name


def catalog_dir() -> Path:
    return data_dir("catalog")


def schema_path(kind: str) -> Path:
    return data_dir("schemas") / f"{kind}.schema.json"
