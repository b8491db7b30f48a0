"""catalog/cache.py: a document that validated is not parsed or validated again until its
file changes; what fcc reports about documents is the same with and without the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fcc.engine.catalog import cache as cache_mod
from fcc.engine.catalog import documents
from fcc.engine.catalog.config import load_settings
from fcc.engine.errors import ConfigError

CONFIG = "tiers:\n  opus: groq/openai/gpt-oss-120b\n"


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "fcc" / cache_mod.FILE


def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files parsed from YAML from now on."""
    seen: list[str] = []
    real = documents.parse

    def counting(path: Path, text: str | None = None):  # type: ignore[no-untyped-def]
        seen.append(Path(path).name)
        return real(path, text)

    monkeypatch.setattr(documents, "parse", counting)
    monkeypatch.setattr("fcc.engine.catalog.config.parse", counting)
    return seen


def test_a_second_load_parses_nothing_and_gives_the_same_settings(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    first = load_settings(config)
    assert cache_home.exists()
    seen = parses(monkeypatch)
    second = load_settings(config)
    assert seen == []
    assert second == first
    assert load_settings(config, cached=False) == first  # fcc check's way: everything parsed
    assert "config.yaml" in seen and len(seen) > 40


def test_a_changed_file_is_read_again_and_an_invalid_one_is_reported_where_it_is_wrong(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    load_settings(config)
    seen = parses(monkeypatch)
    config.write_text(CONFIG + "server:\n  port: 99999\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert seen == ["config.yaml"]
    assert [str(p) for p in caught.value.problems] == [
        f"{config}:4:3: server/port: 99999 is greater than the maximum of 65535"
    ]
    config.write_text(CONFIG + "server:\n  port: 9999\n")
    assert load_settings(config).server.port == 9999


def test_a_reference_problem_in_a_cached_document_is_still_located(tmp_path: Path, cache_home: Path):
    config = tmp_path / "config.yaml"
    config.write_text("# a comment first\ntiers:\n  opus: nowhere/model\n")
    problems = []
    for _ in range(2):  # the second time the document comes from the cache
        with pytest.raises(ConfigError) as caught:
            load_settings(config)
        problems.append([str(p) for p in caught.value.problems])
    assert problems[0] == problems[1]
    assert problems[0][0].startswith(f"{config}:3:3: ") and "nowhere" in problems[0][0]


# The config's own providers are validated merged with the catalog's: that is cached too.
OWN_PROVIDERS = """\
providers:
  mine:
    transport: openai_chat
    base_url: http://127.0.0.1:9/v1
  groq:
    limits: {requests_per_minute: 5}
"""


@pytest.mark.parametrize("text", [CONFIG, CONFIG + OWN_PROVIDERS], ids=["tiers", "own-providers"])
def test_a_start_with_everything_cached_imports_neither_yaml_nor_jsonschema(
    tmp_path: Path, cache_home: Path, text: str
):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    load_settings(config)
    code = (
        "import sys; from pathlib import Path; from fcc.engine.catalog.config import load_settings; "
        f"load_settings(Path({str(config)!r})); "
        "print(sorted(m for m in ('jsonschema', 'ruamel.yaml') if m in sys.modules))"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home.parents[1])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_new_schema_or_version_drops_every_entry(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    load_settings(config)
    monkeypatch.setattr(cache_mod, "__version__", "9.9.9")
    seen = parses(monkeypatch)
    load_settings(config)
    assert len(seen) > 40


def test_an_unwritable_cache_only_costs_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    assert load_settings(config).tiers["opus"].target.provider == "groq"
    (blocker.parent / "bad").mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker.parent / "bad"))
    (blocker.parent / "bad" / "fcc").mkdir()
    (blocker.parent / "bad" / "fcc" / cache_mod.FILE).write_text("{not json")
    assert load_settings(config).tiers["opus"].target.provider == "groq"


def test_an_own_provider_that_is_incomplete_is_reported_every_time(tmp_path: Path, cache_home: Path):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG + "providers:\n  mine:\n    transport: openai_chat\n")
    for _ in range(2):  # nothing invalid is remembered
        with pytest.raises(ConfigError) as caught:
            load_settings(config)
        assert [str(p) for p in caught.value.problems] == [
            f"{config}:4:3: providers/mine: 'base_url' is a required property"
        ]
