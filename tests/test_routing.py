"""Routing decisions as data (tests/routing/cases.yaml): recorded Claude Code requests and
crafted ones under several rule sets, each with the rule, tier and candidates expected;
`fcc route --json` on every recorded request; the cost of a decision is in bench/."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from fcc.cli import app
from fcc.commands.route import explain, read_request
from fcc.engine.catalog.config import Settings, load_settings
from tests.conftest import FIXTURES

HERE = Path(__file__).resolve().parent
ROUTING = HERE / "routing"
LOCAL_FIXTURES = HERE / "fixtures" / "claude-code"
CASES = YAML(typ="safe").load((ROUTING / "cases.yaml").read_text(encoding="utf-8"))
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def fixture_path(name: str) -> Path:
    for folder in (FIXTURES, LOCAL_FIXTURES):
        if (folder / f"{name}.json").exists():
            return folder / f"{name}.json"
    raise FileNotFoundError(name)


@functools.cache
def ruleset(name: str) -> Settings:
    return load_settings(ROUTING / "rulesets" / f"{name}.yaml")


def build(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    body, headers = read_request(fixture_path(spec["fixture"]))
    body = copy.deepcopy(body)
    last_user = next(m for m in reversed(body["messages"]) if m["role"] == "user")
    if isinstance(last_user["content"], str):
        last_user["content"] = [{"type": "text", "text": last_user["content"]}]
    extra = last_user["content"]
    if spec.get("image"):
        extra.append({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}})
    if spec.get("document"):
        extra.append(
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}
        )
    if "pad_tokens" in spec:
        extra.append({"type": "text", "text": "x" * int(spec["pad_tokens"] * 3.5)})
    if "server_tool" in spec:
        body["tools"] = [
            *body.get("tools", []),
            {"type": spec["server_tool"], "name": "web_search", "max_uses": 5},
        ]
    if "thinking" in spec:
        if spec["thinking"] is None:
            body.pop("thinking", None)
        else:
            body["thinking"] = {"type": spec["thinking"]}
    for key in ("model", "max_tokens"):
        if key in spec:
            body[key] = spec[key]
    headers.update({k.lower(): v for k, v in spec.get("headers", {}).items()})
    return body, headers


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_routing_case(case: dict[str, Any]):
    body, headers = build(case["request"])
    result = explain(ruleset(case["ruleset"]), body, headers)
    assert (result.rule, result.tier) == (case["rule"], case["tier"])
    got = [(v.model, v.ok, v.reason) for v in result.candidates]
    assert [(m, ok) for m, ok, _ in got] == [(c[0], c[1]) for c in case["candidates"]]
    for (_, _, reason), expected in zip(got, case["candidates"], strict=True):
        if len(expected) > 2:
            assert reason is not None and expected[2] in reason, reason
        else:
            assert reason is None, reason
    if "error" in case:
        assert result.error is not None and result.error.startswith(case["error"]), result.error
    else:
        assert result.error is None, result.error


RECORDED = sorted(
    p
    for folder in (FIXTURES, LOCAL_FIXTURES)
    for p in folder.glob("*.json")
    if isinstance(json.loads(p.read_text(encoding="utf-8")).get("body"), dict)
)


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_fcc_route_json_on_every_recorded_request(path: Path):
    config = ROUTING / "rulesets" / "three_free_tiers.yaml"
    result = CliRunner().invoke(app, ["route", str(path), "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"rule", "tier", "candidates"}
    assert data["candidates"] and all(set(c) == {"model", "ok", "reason"} for c in data["candidates"])
    body, headers = read_request(path)
    assert data == explain(ruleset("three_free_tiers"), body, headers).wire()


def test_fcc_route_explains_a_bad_file(tmp_path: Path):
    bad = tmp_path / "turn.json"
    bad.write_text('{"model": "x",\n "messages": [}', encoding="utf-8")
    result = CliRunner().invoke(app, ["route", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2:" in result.output and "not JSON" in result.output and "Traceback" not in result.output
    bad.write_text('{"model": "x"}', encoding="utf-8")
    result = CliRunner().invoke(app, ["route", str(bad)])
    assert result.exit_code == 1 and "messages: required" in result.output
