"""The pure routing function: a model name and the settings in, a Route out."""

from __future__ import annotations

import pytest

from fcc.engine.catalog.config import Settings, load_settings
from fcc.engine.request.features import features_of
from fcc.engine.routing.router import Route, decide, tier_of

CONFIG = """\
tiers:
  opus:
    model: nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct
    thinking: false
    fallbacks: [openrouter/qwen/qwen3-coder:free, groq/openai/gpt-oss-120b]
  sonnet:
    model: gemini/gemini-3.5-flash
    thinking: true
  haiku: ollama/qwen3:8b
  default: lmstudio/qwen/qwen3-coder-30b
fallbacks:
  opus: [ollama/qwen3-coder:30b]
  default: [vllm/openai/gpt-oss-120b]
"""


def resolve(model: str, settings: Settings) -> Route:
    """The route a request naming `model` gets (this config has no rules: a direct reference,
    else the family's tier)."""
    body = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    return decide(features_of(body, {}), body, settings)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    path = tmp_path_factory.mktemp("router") / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_settings(path)


@pytest.mark.parametrize(
    ("name", "tier"),
    [
        ("claude-opus-5-5", "opus"),
        ("claude-opus-4-1-20250805", "opus"),
        ("claude-3-5-haiku-latest", "haiku"),
        ("claude-haiku-4-5", "haiku"),
        ("claude-sonnet-4-5-20250929", "sonnet"),
        ("Claude-Sonnet-4-5", "sonnet"),
        ("sonnet", "sonnet"),
        ("opus", "opus"),
        ("my-model", "default"),
        ("gpt-4o", "default"),
        ("", "default"),
    ],
)
def test_claude_names_pick_their_tier(settings: Settings, name: str, tier: str) -> None:
    assert tier_of(name) == tier
    route = resolve(name, settings)
    assert route.requested == name
    assert route.tier == tier
    assert route.primary.provider.id == settings.tiers[tier].target.provider  # type: ignore[index]
    assert route.primary.model == settings.tiers[tier].target.model  # type: ignore[index]


def test_opus_route_details(settings: Settings) -> None:
    route = resolve("claude-opus-5-5", settings)
    assert route.primary.provider is settings.providers["nvidia_nim"]
    assert route.primary.model == "qwen/qwen3-coder-480b-a35b-instruct"
    assert route.primary.label == "nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct"
    assert route.thinking is False


def test_fallbacks_follow_the_primary_in_order(settings: Settings) -> None:
    route = resolve("claude-opus-5-5", settings)
    assert [c.label for c in route.candidates] == [
        "nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct",
        "openrouter/qwen/qwen3-coder:free",  # the tier's own fallbacks first…
        "groq/openai/gpt-oss-120b",
        "ollama/qwen3-coder:30b",  # …then the top-level fallbacks: entry
    ]
    default = resolve("my-model", settings)
    assert [c.label for c in default.candidates] == [
        "lmstudio/qwen/qwen3-coder-30b",
        "vllm/openai/gpt-oss-120b",
    ]
    assert [c.label for c in resolve("claude-3-5-haiku-latest", settings).candidates] == ["ollama/qwen3:8b"]


def test_thinking_follows_the_tier(settings: Settings) -> None:
    assert resolve("claude-opus-5-5", settings).thinking is False
    assert resolve("claude-sonnet-4-5", settings).thinking is True
    assert resolve("claude-3-5-haiku-latest", settings).thinking is None  # follow the client


def test_direct_slug_goes_to_that_provider(settings: Settings) -> None:
    route = resolve("groq/openai/gpt-oss-120b", settings)
    assert route.tier is None
    assert route.thinking is None
    assert len(route.candidates) == 1
    assert route.primary.provider is settings.providers["groq"]
    assert route.primary.model == "openai/gpt-oss-120b"


def test_direct_slug_wins_over_a_family_word(settings: Settings) -> None:
    route = resolve("openrouter/anthropic/claude-sonnet-4.5", settings)
    assert route.tier is None
    assert route.primary.provider.id == "openrouter"
    assert route.primary.model == "anthropic/claude-sonnet-4.5"


@pytest.mark.parametrize("name", ["nope/x", "groq/", "/x"])
def test_not_a_usable_slug_uses_the_default_tier(settings: Settings, name: str) -> None:
    route = resolve(name, settings)
    assert route.tier == "default"
    assert route.primary.label == "lmstudio/qwen/qwen3-coder-30b"


def test_unknown_provider_slug_naming_a_family_uses_that_family(settings: Settings) -> None:
    assert resolve("nope/claude-opus-5-5", settings).tier == "opus"


def test_resolve_is_pure(settings: Settings) -> None:
    assert resolve("claude-opus-5-5", settings) == resolve("claude-opus-5-5", settings)


def test_builtin_defaults_route_everything_to_ollama() -> None:
    settings = load_settings(user_config=False)
    for name in ("claude-opus-5-5", "claude-sonnet-4-5", "claude-3-5-haiku-latest", "other"):
        route = resolve(name, settings)
        assert [c.label for c in route.candidates] == ["ollama/qwen3-coder:30b"]
        assert route.thinking is None
