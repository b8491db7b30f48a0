"""The README's examples are commands and config a newcomer will paste: keep them true."""

from __future__ import annotations

import re
from pathlib import Path

from fcc.commands.check import run_check
from fcc.engine.catalog.config import load_settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", quickstart, re.S)
    commands = [b.strip() for b in blocks[:2]]
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert commands[0].endswith("fcc claude") and "npm install -g @anthropic-ai/claude-code" in commands[0]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci


def test_the_example_config_is_valid_and_routes_where_it_says(tmp_path: Path):
    example = re.search(r"```yaml\n(tiers:.*?)```", README, re.S)
    assert example is not None
    path = tmp_path / "config.yaml"
    path.write_text(example.group(1), encoding="utf-8")
    assert run_check([path], path).problems == ()
    settings = load_settings(path)
    assert str(settings.tiers["opus"].target) == "nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct"
    assert settings.tiers["sonnet"].thinking is True
    assert [str(f) for f in settings.tiers["opus"].fallbacks] == ["openrouter/qwen/qwen3-coder:free"]
    assert settings.providers["ollama"].base_url == "http://gpu-box:11434"
    # The models the example names are ones the catalog knows.
    for tier in ("opus", "sonnet", "default"):
        ref = settings.tiers[tier].target
        assert settings.providers[ref.provider].model(ref.model) is not None, ref


def test_every_catalog_provider_is_named_in_the_readme():
    for path in sorted((Path(__file__).resolve().parents[1] / "catalog" / "providers").glob("*.yaml")):
        assert path.stem in README, f"README does not mention provider {path.stem}"


def test_the_routing_example_is_valid_and_explains_a_subagent_turn(tmp_path: Path):
    from typer.testing import CliRunner

    from fcc.cli import app

    block = next(b for b in re.findall(r"```yaml\n(.*?)```", README, re.S) if "routes:" in b)
    path = tmp_path / "config.yaml"
    path.write_text(block, encoding="utf-8")
    assert run_check([path], path).problems == ()
    turn = Path(__file__).resolve().parent / "fixtures" / "claude-code" / "cc2.1.330-subagent-request.json"
    shown = CliRunner().invoke(app, ["route", str(turn), "--config", str(path)]).output
    example = README.split("$ fcc route turn.json\n", 1)[1].split("```", 1)[0]
    assert example.splitlines()[:2] == shown.splitlines()[:2]
    assert all(line.split("│")[1].strip() in shown for line in example.splitlines() if line.startswith("│"))
