"""Settings: built-in defaults ← config file ← command-line flags; keys; secrets in reprs."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from fcc.engine.catalog.config import (
    ModelRef,
    Overrides,
    ServerSettings,
    config_dir,
    default_config_path,
    load_settings,
)
from fcc.engine.catalog.secrets import KeyStore, parse_env_file
from fcc.engine.errors import ConfigError


@pytest.fixture(autouse=True)
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv("FCC_CONFIG", raising=False)
    return home


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- where the config lives ----------------------------------------------------------------


def test_config_dir_follows_xdg(xdg: Path) -> None:
    assert config_dir() == xdg / "free-claude-code"
    assert default_config_path() == xdg / "free-claude-code" / "config.yaml"


def test_fcc_config_env_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "tiers:\n  haiku: ollama/qwen3:8b\n", "elsewhere.yaml")
    monkeypatch.setenv("FCC_CONFIG", str(path))
    settings = load_settings()
    assert settings.config_path == str(path)
    assert settings.tiers["haiku"].origin == "config"


def test_default_config_file_is_read_when_present(xdg: Path) -> None:
    folder = xdg / "free-claude-code"
    folder.mkdir(parents=True)
    write(folder, "server:\n  port: 9001\n")
    settings = load_settings()
    assert settings.server.port == 9001
    assert settings.config_path == str(folder / "config.yaml")
    assert settings.config_dir == folder


def test_missing_default_config_is_fine_unless_required(xdg: Path) -> None:
    settings = load_settings()
    assert settings.config_path is None
    assert settings.config_dir == xdg / "free-claude-code"
    with pytest.raises(ConfigError) as info:
        load_settings(xdg / "free-claude-code" / "config.yaml")  # named explicitly: required
    assert [p.message for p in info.value.problems] == ["file not found"]


# --- merge order ---------------------------------------------------------------------------


def test_builtin_defaults_alone() -> None:
    settings = load_settings()
    assert settings.server == ServerSettings()
    assert set(settings.tiers) == {"opus", "sonnet", "haiku", "default"}
    for route in settings.tiers.values():
        assert route.origin == "default"
        assert route.target == ModelRef("ollama", "qwen3-coder:30b")
        assert route.fallbacks == ()
        assert route.thinking is None
    assert len(settings.providers) >= 19
    assert settings.disabled_probes == frozenset()
    assert {p.name for p in settings.active_probes} >= {"title", "quota", "suggestion", "warmup"}


def test_config_file_overrides_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server:\n  port: 9000\n  max_body_mb: 2\n"
        "tiers:\n  sonnet: groq/openai/gpt-oss-120b\nprobes:\n  title: false\n",
    )
    settings = load_settings(path)
    assert settings.server.port == 9000
    assert settings.server.host == "127.0.0.1"  # untouched: from the defaults
    assert settings.server.max_body_bytes == 2 * 1024 * 1024
    assert settings.tiers["sonnet"].target == ModelRef("groq", "openai/gpt-oss-120b")
    assert settings.tiers["sonnet"].origin == "config"
    assert settings.tiers["opus"].origin == "default"
    assert settings.disabled_probes == {"title"}
    assert "title" not in {p.name for p in settings.active_probes}
    assert settings.config_path == str(path)
    assert settings.config_dir == tmp_path


def test_flags_override_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "server:\n  port: 9000\n  host: localhost\ntiers:\n  sonnet: groq/openai/gpt-oss-120b\n"
    )
    flags = Overrides(port=9999, tiers={"sonnet": "ollama/qwen3:8b", "haiku": "gemini/gemini-3.5-flash"})
    settings = load_settings(path, flags)
    assert settings.server.port == 9999
    assert settings.server.host == "localhost"  # not given as a flag: the config's
    assert settings.tiers["sonnet"].target == ModelRef("ollama", "qwen3:8b")
    assert settings.tiers["sonnet"].origin == "flag"
    assert settings.tiers["haiku"].origin == "flag"
    assert settings.tiers["opus"].origin == "default"

    host_only = load_settings(path, Overrides(host="0.0.0.0"))
    assert (host_only.server.host, host_only.server.port) == ("0.0.0.0", 9000)


def test_tier_mapping_with_thinking_and_fallbacks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
tiers:
  opus:
    model: nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct
    thinking: false
    fallbacks: [openrouter/qwen/qwen3-coder:free]
  haiku:
    model: ollama/qwen3:8b
    thinking: true
fallbacks:
  opus: [groq/openai/gpt-oss-120b]
  default: [ollama/gpt-oss:20b]
""",
    )
    settings = load_settings(path)
    opus = settings.tiers["opus"]
    assert opus.thinking is False
    assert opus.fallbacks == (
        ModelRef("openrouter", "qwen/qwen3-coder:free"),
        ModelRef("groq", "openai/gpt-oss-120b"),
    )
    assert settings.tiers["haiku"].thinking is True
    assert settings.tiers["default"].fallbacks == (ModelRef("ollama", "gpt-oss:20b"),)
    assert settings.tiers["default"].origin == "default"  # only its fallbacks came from the config


def test_valid_example_configs_load() -> None:
    examples = Path(__file__).resolve().parent / "catalogs" / "valid"
    for path in sorted(examples.glob("config_*.yaml")):
        load_settings(path)
    settings = load_settings(examples / "config_empty.yaml")
    assert {r.origin for r in settings.tiers.values()} == {"default"}


# --- ModelRef ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "provider", "model"),
    [
        (
            "nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct",
            "nvidia_nim",
            "qwen/qwen3-coder-480b-a35b-instruct",
        ),
        ("fireworks/accounts/fireworks/models/glm-5p1", "fireworks", "accounts/fireworks/models/glm-5p1"),
        ("openrouter/qwen/qwen3-coder:free", "openrouter", "qwen/qwen3-coder:free"),
        ("ollama/qwen3:8b", "ollama", "qwen3:8b"),
    ],
)
def test_model_ref_splits_at_the_first_slash(text: str, provider: str, model: str) -> None:
    ref = ModelRef.parse(text)
    assert (ref.provider, ref.model) == (provider, model)
    assert str(ref) == text


# --- providers from the config -------------------------------------------------------------


def test_provider_override_deep_merges(tmp_path: Path) -> None:
    builtin = load_settings().providers
    path = write(
        tmp_path,
        """\
providers:
  ollama:
    base_url: http://gpu-box:11434/
  nvidia_nim:
    limits: {concurrent_streams: 2}
  gemini:
    quirks: {top_k: true}
""",
    )
    providers = load_settings(path).providers
    ollama, before = providers["ollama"], builtin["ollama"]
    assert ollama.base_url == "http://gpu-box:11434"
    assert msgspec.structs.replace(ollama, base_url=before.base_url, source=before.source) == before
    assert ollama.source == str(path)

    nim = providers["nvidia_nim"]
    assert nim.limits.concurrent_streams == 2
    assert nim.limits.requests_per_minute == builtin["nvidia_nim"].limits.requests_per_minute == 40
    assert nim.models == builtin["nvidia_nim"].models

    gemini, gemini_before = providers["gemini"], builtin["gemini"]
    assert gemini.quirks.top_k is True
    assert gemini.quirks == msgspec.structs.replace(gemini_before.quirks, top_k=True)

    assert providers["groq"] == builtin["groq"]  # untouched ones stay as shipped


def test_new_provider_from_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
providers:
  mybox:
    transport: openai_chat
    base_url: http://127.0.0.1:9000/v1
    auth: none
    local: true
    models: [{id: my-model, context_window: 32768}]
tiers:
  default: mybox/my-model
""",
    )
    settings = load_settings(path)
    box = settings.providers["mybox"]
    assert (box.id, box.display_name, box.transport, box.auth) == ("mybox", "mybox", "openai_chat", "none")
    assert box.local is True and box.api_key_env is None
    assert box.timeouts.first_byte == 600.0  # local defaults
    assert box.model("my-model") is not None and box.model("my-model").context_window == 32768  # type: ignore[union-attr]
    assert box.source == str(path)
    assert settings.tiers["default"].target == ModelRef("mybox", "my-model")
    assert "ollama" in settings.providers  # the catalog is still there


def test_new_provider_missing_fields_is_one_located_problem_per_field(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  mybox:\n    auth: none\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = info.value.problems
    assert {(p.line, p.col) for p in problems} == {(2, 3)}
    assert sorted(p.message for p in problems) == [
        "providers/mybox: 'base_url' is a required property",
        "providers/mybox: 'transport' is a required property",
    ]


def test_provider_entry_id_must_match_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  ollama:\n    id: llama\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    (problem,) = info.value.problems
    assert (problem.line, problem.col) == (3, 5)
    assert "'llama' must equal its key 'ollama'" in problem.message


# --- every problem at once -----------------------------------------------------------------


def test_config_error_lists_every_bad_tier(tmp_path: Path) -> None:
    path = write(tmp_path, "tiers:\n  opus: nope/x\n  sonnet: ollama/qwen3:8b\n  haiku: nada/y\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = info.value.problems
    assert [(p.file, p.line, p.col) for p in problems] == [(str(path), 2, 3), (str(path), 4, 3)]
    assert "unknown provider 'nope'" in problems[0].message
    assert "unknown provider 'nada'" in problems[1].message
    assert str(info.value) == "\n".join(str(p) for p in problems)


def test_config_error_lists_every_schema_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 0\ntiers:\n  opus: ollama\n  haiku: 7\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [(p.line, p.col) for p in info.value.problems] == [(2, 3), (4, 3), (5, 3)]


def test_bad_tier_flag_is_a_problem_too() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, Overrides(tiers={"opus": "nope/x", "haiku": "gone/y"}))
    assert [(p.file, p.line, p.col) for p in info.value.problems] == [("--tier", 1, 1)] * 2
    assert "opus: unknown provider 'nope'" in info.value.problems[0].message


# --- keys ----------------------------------------------------------------------------------


def test_parse_env_file_handles_comments_export_and_quotes() -> None:
    text = """\
# a comment
   # an indented comment

export GROQ_API_KEY=gsk-plain
GEMINI_API_KEY="quoted value"
OPENAI_API_KEY='single quoted'
  SPACED_KEY = spaced-value
TRAILING=value # a comment after it
HASHED="keeps # inside quotes"
NOHASH=a#b
EMPTY=
EMPTY_QUOTED=""
not a line at all
1BAD=ignored
"""
    assert parse_env_file(text) == {
        "GROQ_API_KEY": "gsk-plain",
        "GEMINI_API_KEY": "quoted value",
        "OPENAI_API_KEY": "single quoted",
        "SPACED_KEY": "spaced-value",
        "TRAILING": "value",
        "HASHED": "keeps # inside quotes",
        "NOHASH": "a#b",
    }


def test_parse_env_file_quoted_value_with_trailing_comment() -> None:
    assert parse_env_file('GROQ_API_KEY="gsk-abc" # from the console\n') == {"GROQ_API_KEY": "gsk-abc"}


def test_keystore_environment_beats_keys_file(tmp_path: Path) -> None:
    path = write(tmp_path, "GROQ_API_KEY=from-file-123\nGEMINI_API_KEY=file-only-456\n", "keys.env")
    keys = KeyStore(path, environ={"GROQ_API_KEY": "from-env-789", "OPENAI_API_KEY": ""})
    assert keys.get("GROQ_API_KEY") == "from-env-789"
    assert keys.get("GEMINI_API_KEY") == "file-only-456"
    assert keys.get("OPENAI_API_KEY") is None  # set but empty: not a key
    assert keys.get("MISSING") is None
    assert keys.get(None) is None
    assert keys.get("") is None


def test_keystore_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FCC_TEST_ONLY_KEY", "env-value-abc")
    assert KeyStore().get("FCC_TEST_ONLY_KEY") == "env-value-abc"


def test_keystore_missing_or_unreadable_file_is_empty(tmp_path: Path) -> None:
    assert KeyStore(tmp_path / "absent.env", environ={}).get("GROQ_API_KEY") is None
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"\xff\xfe\x00GROQ")
    assert KeyStore(binary, environ={}).get("GROQ_API_KEY") is None


def test_keystore_repr_never_shows_a_value(tmp_path: Path) -> None:
    secret_file, secret_env = "sk-file-secret-0123456789", "sk-env-secret-9876543210"
    path = write(tmp_path, f"GROQ_API_KEY={secret_file}\n", "keys.env")
    keys = KeyStore(path, environ={"GEMINI_API_KEY": secret_env})
    for shown in (repr(keys), str(keys), f"{keys!r}"):
        assert secret_file not in shown and secret_env not in shown
        assert "GROQ_API_KEY" not in shown


# --- secrets in reprs ----------------------------------------------------------------------


def test_server_settings_repr_hides_the_token(tmp_path: Path) -> None:
    token = "tok-very-secret-42"
    server = ServerSettings(auth_token=token)
    assert token not in repr(server) and token not in str(server)
    assert "auth_token=set" in repr(server)
    assert "auth_token=unset" in repr(ServerSettings())

    path = write(tmp_path, f"server:\n  host: 0.0.0.0\n  auth_token: {token}\n")
    settings = load_settings(path)
    assert settings.server.auth_token == token
    assert token not in repr(settings)


def test_the_store_is_shown_without_a_redis_password(tmp_path: Path):
    from fcc.engine.catalog.config import StateSettings

    assert StateSettings("memory").shown == "memory (nothing kept on disk)"
    assert StateSettings("sqlite", path=tmp_path / "fcc.db").shown == f"sqlite ({tmp_path / 'fcc.db'})"
    shown = StateSettings("redis", url="redis://fcc:hunter2@cache.lan:6379/0").shown
    assert shown == "redis (redis://…@cache.lan:6379/0)" and "hunter2" not in shown
    assert "hunter2" not in repr(StateSettings("redis", url="redis://fcc:hunter2@cache.lan:6379/0"))
