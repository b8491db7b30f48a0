"""The `fcc` command line, driven through Typer's CliRunner (and the real entry point where
errors are rendered by `fcc.cli.main`)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from fcc import __version__
from fcc.cli import app, main
from fcc.engine.catalog.config import load_settings
from fcc.engine.errors import FccError

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROBLEM_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")
INVALID = Path(__file__).resolve().parent / "catalogs" / "invalid"
CATALOG = load_settings(user_config=False)
KEY_ENVS = sorted({p.api_key_env for p in CATALOG.providers.values() if p.api_key_env})


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG config home per test, with no provider key from the real environment."""
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.delenv("FCC_CONFIG", raising=False)
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    return xdg / "free-claude-code"


def invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def text(result: Result) -> str:
    """stdout and stderr as a person sees them (no colour codes)."""
    return ANSI.sub("", result.output)


def as_json(result: Result) -> Any:
    return json.loads(ANSI.sub("", result.stdout))


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: object
) -> tuple[int, str]:
    """The installed `fcc` script's path: fcc.cli.main, which renders FccError itself."""
    monkeypatch.setattr(sys, "argv", ["fcc", *(str(a) for a in args)])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # Typer replaces it on errors
    monkeypatch.setattr(logging, "basicConfig", lambda **_: None)
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), ANSI.sub("", captured.out + captured.err)


# --- check ---------------------------------------------------------------------------------


def test_check_shipped_catalog_is_clean() -> None:
    result = invoke("check")
    assert result.exit_code == 0, text(result)
    assert "no problems" in text(result)


def test_check_json_on_shipped_catalog() -> None:
    result = invoke("check", "--json")
    assert result.exit_code == 0
    data = as_json(result)
    assert data["ok"] is True
    assert data["problems"] == []
    assert len(data["files"]) >= 20
    assert any(f.endswith("nvidia_nim.yaml") for f in data["files"])


def test_check_invalid_file_prints_located_problems() -> None:
    path = INVALID / "config_tier_unknown_provider.yaml"
    result = invoke("check", path)
    assert result.exit_code == 1
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert lines
    parsed = [PROBLEM_LINE.match(ln) for ln in lines]
    assert all(parsed), lines
    assert any(m and m["file"] == str(path) and (m["line"], m["col"]) == ("4", "3") for m in parsed)
    assert "1 problem(s)" in result.stderr

    as_objects = invoke("check", "--json", path)
    assert as_objects.exit_code == 1
    data = as_json(as_objects)
    assert data["ok"] is False
    assert str(path) in data["files"]
    from_json = [f"{p['file']}:{p['line']}:{p['col']}: {p['message']}" for p in data["problems"]]
    assert from_json == lines
    assert all(set(p) == {"file", "line", "col", "message"} for p in data["problems"])


def test_check_reports_schema_and_reference_problems_in_one_run(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('server:\n  port: "8082"\ntiers:\n  haiku: nowhere/model-x\n', encoding="utf-8")
    result = invoke("check", "--config", config)
    assert result.exit_code == 1
    found = [m.groupdict() for m in map(PROBLEM_LINE.match, text(result).splitlines()) if m]
    where = {(f["line"], f["col"]): f["message"] for f in found if f["file"] == str(config)}
    assert where[("2", "3")].startswith("server/port: expected a whole number")
    assert where[("4", "3")].startswith("haiku: unknown provider 'nowhere'")


def test_check_reports_several_files_at_once() -> None:
    paths = [INVALID / "config_bad_port.yaml", INVALID / "provider_unknown_transport.yaml"]
    data = as_json(invoke("check", "--json", *paths))
    assert {p["file"] for p in data["problems"]} == {str(p) for p in paths}


def test_check_missing_file_names_it_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = invoke("check", "missing.yaml")
    assert result.exit_code == 1
    assert "missing.yaml:1:1: file not found" in text(result)
    assert "Traceback" not in text(result)
    assert result.exception is None or isinstance(result.exception, SystemExit)

    code, output = run_main(monkeypatch, capsys, "check", "missing.yaml")
    assert code == 1
    assert "missing.yaml" in output and "not found" in output
    assert "Traceback" not in output


def test_check_explicit_config_that_is_missing_fails(tmp_path: Path) -> None:
    result = invoke("check", "--config", tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope.yaml'}:1:1: file not found" in text(result)


# --- init ----------------------------------------------------------------------------------


def test_init_writes_config_and_private_keys_file(tmp_path: Path) -> None:
    target = tmp_path / "conf"
    result = invoke("init", "--dir", target)
    assert result.exit_code == 0, text(result)
    config, keys = target / "config.yaml", target / "keys.env"
    assert f"wrote {config}" in text(result) and f"wrote {keys}" in text(result)

    assert "config.schema.json" in config.read_text(encoding="utf-8").splitlines()[0]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    listed = set(re.findall(r"^([A-Z0-9_]+)=$", keys.read_text(encoding="utf-8"), re.M))
    assert {"NVIDIA_NIM_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY"} <= listed
    assert set(KEY_ENVS) <= listed

    checked = invoke("check", "--config", config)
    assert checked.exit_code == 0, text(checked)
    routed = as_json(invoke("models", "--json", "--config", config))
    assert [t["origin"] for t in routed["tiers"]] == ["config"] * 4


def test_init_defaults_to_the_xdg_config_dir(home: Path) -> None:
    result = invoke("init")
    assert result.exit_code == 0, text(result)
    assert (home / "config.yaml").is_file() and (home / "keys.env").is_file()
    # ...where `fcc check` and `fcc models` then find it on their own.
    assert invoke("check").exit_code == 0
    assert {t["origin"] for t in as_json(invoke("models", "--json"))["tiers"]} == {"config"}


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "conf"
    assert invoke("init", "--dir", target).exit_code == 0
    config, keys = target / "config.yaml", target / "keys.env"
    config.write_text("tiers: {opus: groq/openai/gpt-oss-120b}\n", encoding="utf-8")
    keys.write_text("GROQ_API_KEY=mine\n", encoding="utf-8")

    again = invoke("init", "--dir", target)
    assert again.exit_code != 0
    # CliRunner drives `app`; the FccError is rendered by fcc.cli.main (the installed script).
    shown = text(again) + (str(again.exception) if isinstance(again.exception, FccError) else "")
    assert "--force" in shown
    assert "Traceback" not in text(again)

    code, output = run_main(monkeypatch, capsys, "init", "--dir", target)
    assert code != 0
    assert "--force" in output and str(config) in output
    assert "Traceback" not in output

    assert config.read_text(encoding="utf-8") == "tiers: {opus: groq/openai/gpt-oss-120b}\n"
    assert keys.read_text(encoding="utf-8") == "GROQ_API_KEY=mine\n"

    forced = invoke("init", "--dir", target, "--force")
    assert forced.exit_code == 0, text(forced)
    assert "config.schema.json" in config.read_text(encoding="utf-8").splitlines()[0]
    assert "GROQ_API_KEY=\n" in keys.read_text(encoding="utf-8")
    assert "mine" not in keys.read_text(encoding="utf-8")
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600


def test_init_into_unwritable_place_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n", encoding="utf-8")
    target = blocker / "conf"

    result = invoke("init", "--dir", target)
    assert result.exit_code != 0
    assert "Traceback" not in text(result)
    assert isinstance(result.exception, FccError) or "cannot write" in text(result)

    code, output = run_main(monkeypatch, capsys, "init", "--dir", target)
    assert code != 0
    assert str(target) in output and "cannot write there" in output
    assert "Traceback" not in output
    assert blocker.read_text(encoding="utf-8") == "not a directory\n"


# --- models --------------------------------------------------------------------------------


def test_models_shows_the_four_default_tiers() -> None:
    result = invoke("models")
    assert result.exit_code == 0, text(result)
    shown = text(result)
    for word in ("Tiers", "opus", "sonnet", "haiku", "default", "Providers", "nvidia_nim"):
        assert word in shown
    data = as_json(invoke("models", "--json"))
    assert [t["tier"] for t in data["tiers"]] == ["opus", "sonnet", "haiku", "default"]
    assert {t["origin"] for t in data["tiers"]} == {"default"}


def test_models_tier_flag_has_flag_origin() -> None:
    result = invoke("models", "--tier", "opus=groq/openai/gpt-oss-120b")
    assert result.exit_code == 0, text(result)
    assert "groq/openai/gpt-oss-120b" in text(result) and "flag" in text(result)
    tiers = {
        t["tier"]: t
        for t in as_json(invoke("models", "--json", "-t", "opus=groq/openai/gpt-oss-120b"))["tiers"]
    }
    assert tiers["opus"]["origin"] == "flag"
    assert tiers["opus"]["route"] == "groq/openai/gpt-oss-120b"
    assert tiers["sonnet"]["origin"] == "default"


def test_models_config_sets_a_tier(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("tiers:\n  sonnet: nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct\n", encoding="utf-8")
    result = invoke("models", "--config", config)
    assert result.exit_code == 0, text(result)
    assert "config" in text(result)
    tiers = {t["tier"]: t for t in as_json(invoke("models", "--json", "--config", config))["tiers"]}
    assert tiers["sonnet"] == {
        "tier": "sonnet",
        "route": "nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct",
        "origin": "config",
        "thinking": "client",
        "fallbacks": [],
        "strategy": "ordered",
    }
    assert tiers["opus"]["origin"] == "default"
    # A flag beats the config file.
    flagged = as_json(invoke("models", "--json", "--config", config, "--tier", "sonnet=ollama/qwen3:8b"))
    sonnet = next(t for t in flagged["tiers"] if t["tier"] == "sonnet")
    assert (sonnet["origin"], sonnet["route"]) == ("flag", "ollama/qwen3:8b")


def test_models_one_provider_as_json() -> None:
    result = invoke("models", "--provider", "nvidia_nim", "--json")
    assert result.exit_code == 0, text(result)
    providers = as_json(result)["providers"]
    assert [p["id"] for p in providers] == ["nvidia_nim"]
    (nim,) = providers
    assert "qwen/qwen3-coder-480b-a35b-instruct" in nim["models"]
    assert nim["key_env"] == "NVIDIA_NIM_API_KEY"
    assert nim["key_set"] is False
    assert nim["transport"] == "openai_chat"


def test_models_shows_the_effective_auth_of_minimal_providers(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "providers:\n"
        "  bare: {transport: openai_chat, base_url: 'http://127.0.0.1:9/v1'}\n"
        "  keyed: {transport: openai_chat, base_url: 'https://x.test/v1', api_key_env: KEYED_KEY}\n",
        encoding="utf-8",
    )
    result = invoke("models", "--json", "--config", config)
    assert result.exit_code == 0, text(result)
    auth = {p["id"]: p["auth"] for p in as_json(result)["providers"]}
    assert (auth["bare"], auth["keyed"]) == ("none", "bearer")
    table = text(invoke("models", "--config", config, "--provider", "keyed"))
    assert "bearer" in table and "KEYED_KEY missing" in table


def test_models_one_provider_as_table_has_no_tiers() -> None:
    result = invoke("models", "--provider", "ollama")
    assert result.exit_code == 0
    assert "Tiers" not in text(result)
    assert "ollama" in text(result) and "not needed" in text(result)


def test_models_unknown_provider_lists_known_ones() -> None:
    result = invoke("models", "--provider", "nope")
    assert result.exit_code != 0
    shown = text(result)
    assert "'nope'" in shown
    for pid in CATALOG.providers:
        assert pid in shown
    assert "Traceback" not in shown


@pytest.mark.parametrize("value", ["bogus", "opus", "opus=ollama", "Opus=ollama/x", "=ollama/x"])
def test_models_bad_tier_flag_is_explained(value: str) -> None:
    result = invoke("models", "--tier", value)
    assert result.exit_code != 0
    shown = text(result)
    assert f"--tier {value}" in shown
    assert "TIER=PROVIDER/MODEL" in shown and "opus, sonnet, haiku or default" in shown
    assert "Traceback" not in shown


def test_a_tier_flag_may_name_a_tier_of_its_own() -> None:
    result = invoke("models", "--json", "--tier", "turbo=groq/openai/gpt-oss-120b")
    assert result.exit_code == 0, text(result)
    turbo = next(t for t in as_json(result)["tiers"] if t["tier"] == "turbo")
    assert (turbo["route"], turbo["origin"]) == ("groq/openai/gpt-oss-120b", "flag")


def test_models_tier_flag_with_unknown_provider_is_explained() -> None:
    result = invoke("models", "--tier", "opus=nope/x")
    assert result.exit_code != 0
    assert "unknown provider 'nope'" in text(result)
    assert "fcc check" in text(result)


# --- help and version ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "init", "models", "serve"])
def test_every_command_help_has_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in text(result)
    assert f"fcc {command}" in text(result)


def test_root_help_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("check", "init", "models", "serve"):
        assert command in text(result)


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert text(result).strip() == f"fcc {__version__}"


# --- secrets -------------------------------------------------------------------------------


def _squash(output: str) -> str:
    """Output with whitespace and table borders removed, so a value split by a wrapped table
    cell is still found."""
    return re.sub(r"[\s│┃|]", "", output)


def test_no_key_value_is_ever_printed(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_values = {name: f"sk-test-env-{name.lower()}-{secrets.token_hex(8)}" for name in KEY_ENVS}
    file_values = {name: f"sk-test-file-{name.lower()}-{secrets.token_hex(8)}" for name in KEY_ENVS}
    for name, value in env_values.items():
        monkeypatch.setenv(name, value)
    home.mkdir(parents=True)
    (home / "keys.env").write_text("".join(f"{n}={v}\n" for n, v in file_values.items()), encoding="utf-8")
    all_values = [*env_values.values(), *file_values.values()]

    runs: list[list[object]] = [
        ["models"],
        ["models", "--json"],
        ["check"],
        ["check", "--json"],
        ["init", "--dir", tmp_path / "fresh"],
        *(["models", "--provider", pid] for pid in sorted(CATALOG.providers)),
    ]
    for args in runs:
        result = invoke(*args)
        assert result.exit_code == 0, (args, text(result))
        output = text(result)
        for value in all_values:
            assert value not in output, f"fcc {' '.join(map(str, args))} printed a key"
            assert value not in _squash(output), f"fcc {' '.join(map(str, args))} printed a key"

    providers = as_json(invoke("models", "--json"))["providers"]
    keyed = [p for p in providers if p["key_env"]]
    assert {p["key_env"] for p in keyed} == set(KEY_ENVS)
    assert all(p["key_set"] is True for p in keyed)
    assert all(p["key_set"] is None for p in providers if not p["key_env"])


def test_keys_from_keys_env_alone_count_as_set(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "keys.env").write_text(
        "# mine\nexport GROQ_API_KEY='gsk-file-only-123456'\nGEMINI_API_KEY=\n", encoding="utf-8"
    )
    result = invoke("models", "--json")
    by_id = {p["id"]: p for p in as_json(result)["providers"]}
    assert by_id["groq"]["key_set"] is True
    assert by_id["gemini"]["key_set"] is False  # empty value: not set
    assert "gsk-file-only-123456" not in text(result)


def test_check_on_the_keys_file_does_not_echo_keys(home: Path) -> None:
    home.mkdir(parents=True)
    values = [f"sk-test-{secrets.token_hex(8)}", f"gsk-test-{secrets.token_hex(8)}"]
    keys = home / "keys.env"
    keys.write_text(
        f"# keys\nGEMINI_API_KEY={values[0]}\nexport GROQ_API_KEY={values[1]}\n", encoding="utf-8"
    )
    result = invoke("check", keys)
    assert result.exit_code == 1  # it is not a config document; saying so is right
    assert str(keys) in text(result)
    for value in values:
        assert value not in text(result)


def test_usage_renders_the_store_and_explains_bad_options(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state: {{backend: sqlite, path: '{tmp_path / 'fcc.db'}'}}\n", encoding="utf-8")
    empty = invoke("usage", "--config", config)
    assert empty.exit_code == 0 and "No requests recorded" in text(empty)
    assert as_json(invoke("usage", "--config", config, "--json", "--by", "model")) == []
    bad = invoke("usage", "--config", config, "--since", "last tuesday")
    assert bad.exit_code == 1 and "--since last tuesday: expected a number of days (7d)" in text(bad)
    bad = invoke("usage", "--config", config, "--by", "week")
    assert bad.exit_code == 1 and "--by week: use day, provider, model or session" in text(bad)


def test_serve_refuses_a_store_it_cannot_open(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(f"state: {{backend: sqlite, path: '{blocker / 'fcc.db'}'}}\n", encoding="utf-8")
    result = invoke("serve", "--config", config, "--port", "1")
    assert result.exit_code == 1
    shown = text(result)
    assert "fcc cannot start: cannot open the state store at" in shown and "state.path" in shown
    assert "Traceback" not in shown
    config.write_text("state: {backend: redis, url: 'redis://:hunter2@127.0.0.1:1/0'}\n", encoding="utf-8")
    result = invoke("serve", "--config", config, "--port", "1")
    assert result.exit_code == 1 and "cannot reach Redis" in text(result)
    assert "hunter2" not in text(result)  # a password in the URL is never shown
    config.write_text("state: {backend: memory}\n", encoding="utf-8")
    result = invoke("serve", "--config", config, "--workers", "2")
    assert result.exit_code == 1 and "needs a shared state store" in text(result)
