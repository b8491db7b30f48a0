"""The built wheel carries the catalog and schemas, and an installed fcc finds them anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(a) for a in args], capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


def _build_wheel(out: Path) -> Path:
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out]
    built = _run([*base, "--no-build-isolation", ROOT])
    if built.returncode != 0:  # hatchling missing here: let pip fetch it
        built = _run([*base, ROOT])
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("fcc-*.whl")
    return wheel


def _site_packages(venv: Path) -> Path:
    found = _run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    assert found.returncode == 0, found.stderr
    return Path(found.stdout.strip())


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "fcc/_data/catalog/providers/nvidia_nim.yaml" in names
    assert "fcc/_data/catalog/defaults.yaml" in names
    assert "fcc/_data/schemas/provider.schema.json" in names
    assert "fcc/_data/schemas/config.schema.json" in names
    assert "fcc/cli.py" in names
    assert not any(n.startswith(("tests/", "catalog/", "schemas/")) for n in names)

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", venv])
    assert made.returncode == 0, made.stderr
    # Dependencies come from this environment; fcc itself only from the wheel.
    deps = {Path(typer.__file__).resolve().parent.parent, Path(httpx.__file__).resolve().parent.parent}
    (_site_packages(venv) / "fcc_test_deps.pth").write_text("".join(f"{d}\n" for d in deps), encoding="utf-8")
    installed = _run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--quiet", wheel])
    assert installed.returncode == 0, installed.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FCC_CONFIG", "VIRTUAL_ENV")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")

    where = _run([venv / "bin" / "python", "-c", "import fcc; print(fcc.__file__)"], cwd=elsewhere, env=env)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    checked = _run([venv / "bin" / "fcc", "check", "--json"], cwd=elsewhere, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] is True
    assert all(str(venv) in f for f in report["files"]), report["files"]
    plain = _run([venv / "bin" / "fcc", "check"], cwd=elsewhere, env=env)
    assert plain.returncode == 0, plain.stdout + plain.stderr

    models = _run([venv / "bin" / "fcc", "models", "--json"], cwd=elsewhere, env=env)
    assert models.returncode == 0, models.stderr
    data = json.loads(models.stdout)
    assert len(data["providers"]) >= 19
    assert "nvidia_nim" in {p["id"] for p in data["providers"]}
    assert [t["tier"] for t in data["tiers"]] == ["opus", "sonnet", "haiku", "default"]
