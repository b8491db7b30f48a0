"""The transport registry, the provider schema's enum and the TransportName literal agree."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

import fcc
from fcc.engine.transports import TRANSPORTS, RegistryMismatch, check_registry, schema_transports
from fcc.engine.types import TransportName

ROOT = Path(fcc.__file__).resolve().parents[1]
REAL = ("openai_chat", "anthropic_messages")


def test_the_real_registry_schema_and_literal_agree() -> None:
    assert set(TRANSPORTS) == set(REAL)
    assert set(schema_transports()) == set(REAL)
    assert set(get_args(TransportName)) == set(REAL)
    check_registry(TRANSPORTS, schema_transports(), get_args(TransportName))


def test_importing_the_transports_package_works() -> None:
    module = importlib.import_module("fcc.engine.transports")
    assert callable(module.TRANSPORTS["openai_chat"])
    adapters = {name: factory() for name, factory in module.TRANSPORTS.items()}
    assert set(adapters) == set(REAL)


def test_order_does_not_matter() -> None:
    check_registry(["anthropic_messages", "openai_chat"], ("openai_chat", "anthropic_messages"), REAL)


@pytest.mark.parametrize(
    ("registry", "schema", "literal"),
    [
        ((*REAL, "grpc"), REAL, REAL),  # registry has an extra
        (REAL, (*REAL, "grpc"), REAL),  # schema enum has an extra
        (REAL, REAL, (*REAL, "grpc")),  # literal has an extra
        (REAL[:1], REAL, REAL),  # registry lacks one
        (REAL, REAL[1:], REAL),  # schema lacks one
        (REAL, REAL, REAL[:1]),  # literal lacks one
        ((), (), REAL),
    ],
)
def test_any_disagreement_raises(
    registry: tuple[str, ...], schema: tuple[str, ...], literal: tuple[str, ...]
) -> None:
    with pytest.raises(RegistryMismatch) as info:
        check_registry(registry, schema, literal)
    message = str(info.value)
    assert "disagree" in message
    assert f"registry {sorted(registry)}" in message
    assert f"schema enum {sorted(schema)}" in message
    assert f"TransportName {sorted(literal)}" in message
    assert isinstance(info.value, ImportError)  # so importing the engine fails loudly


def _copy_checkout(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_data")
    shutil.copytree(ROOT / "fcc", dest / "fcc", ignore=ignore)
    shutil.copytree(ROOT / "schemas", dest / "schemas")
    shutil.copytree(ROOT / "catalog", dest / "catalog")


def _import_in(copy: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    env.pop("PYTHONHOME", None)
    code = "import fcc, fcc.engine.transports; print(fcc.__file__)"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_import_fails_when_the_schema_names_an_unregistered_transport(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    _copy_checkout(copy)

    # The unedited copy imports fine, and is the copy (not the checkout) being imported.
    ok = _import_in(copy)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(copy / "fcc" / "__init__.py")

    schema_file = copy / "schemas" / "provider.schema.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    schema["$defs"]["fields"]["properties"]["transport"]["enum"].append("grpc")
    schema_file.write_text(json.dumps(schema, indent=2), encoding="utf-8")

    broken = _import_in(copy)
    assert broken.returncode != 0
    assert "RegistryMismatch" in broken.stderr
    assert "'grpc'" in broken.stderr
