"""fcc doctor against loopback upstreams of every shape it must tell apart (cases as data),
its JSON and live display, what it keeps, and how the router then uses it."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from rich.console import Console
from ruamel.yaml import YAML
from typer.testing import CliRunner

from fcc.cli import app
from fcc.commands.doctor import CHECKS, Doctor, DoctorProgress, claude_code_tools, run
from fcc.engine.catalog.config import ModelRef, Settings, load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.routing.runtime import running
from fcc.engine.server import create_app
from fcc.engine.state.memory import MemoryBackend
from fcc.engine.state.service import StateService
from tests.conftest import FIXTURES, Live
from tests.support.servers import free_port, serve

HERE = Path(__file__).resolve().parent
CASES = YAML(typ="safe").load((HERE / "doctor" / "cases.yaml").read_text(encoding="utf-8"))
RECORDED = json.loads((FIXTURES / "cc2.1.330-main-tool-turn1.json").read_text(encoding="utf-8"))["body"][
    "tools"
]


def config_text(upstream: str) -> str:
    return f"""\
providers:
  up:
    display_name: Test upstream
    transport: openai_chat
    base_url: {upstream}/v1
    local: true
    models:
      - {{id: "doctor:thinker", reasoning: true}}
      - {{id: "doctor:agent-says-it-reasons", reasoning: true}}
  keyed:
    transport: openai_chat
    base_url: {upstream}/v1
    api_key_env: DOCTOR_TEST_KEY
  dead:
    display_name: Dead server
    transport: openai_chat
    base_url: http://127.0.0.1:{free_port()}/v1
    local: true
state: {{backend: memory}}
tiers:
  default: {{model: "up/doctor:talker", fallbacks: ["up/doctor:agent"]}}
  opus: up/doctor:agent
  sonnet: up/doctor:agent
  haiku: up/doctor:agent
"""


@pytest.fixture
def settings(tmp_path: Path, live_upstream: Live) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(live_upstream.upstream_url), encoding="utf-8")
    return load_settings(path)


def examine(settings: Settings, models: list[str]) -> list:
    async def go() -> list:
        service = StateService(MemoryBackend(), settings.providers)
        async with running(KeyStore(environ={}), service) as dispatcher:
            doctor = Doctor(dispatcher, service, settings, RECORDED, slow_ttft_ms=300)
            return await run(doctor, [ModelRef.parse(m) for m in models], concurrency=4)

    return asyncio.run(go())


def test_the_doctor_offers_claude_codes_own_tool_schemas():
    bundled = {t["name"]: t["input_schema"] for t in claude_code_tools()}
    assert bundled == {t["name"]: t["input_schema"] for t in RECORDED}


def test_every_case_gets_its_verdict_and_reason(settings: Settings):
    reports = {r.model: r for r in examine(settings, [c["model"] for c in CASES])}
    for case in CASES:
        r = reports[case["model"]]
        assert (r.verdict, r.failing) == (case["verdict"], case["failing"]), (case["model"], r.wire())
        if "reason" in case:
            assert case["reason"] in r.checks[r.failing].detail, r.wire()
        if "slow" in case:
            assert r.slow and r.slow.startswith(case["slow"]), r.wire()
        # Stopping where the rest is pointless: after reach or stream, nothing else is tried.
        if r.failing in ("reach", "stream"):
            assert all(
                c.kind == "skipped" for n, c in r.checks.items() if n not in ("reach", "stream") and not c.ok
            )
    works = reports["up/doctor:agent"]
    assert set(works.checks) == {"reach", "stream", "tools", "tool_result"}  # not said to reason
    assert works.ttft_ms is not None and works.tokens_per_s is not None and works.tokens_per_s > 0
    assert set(reports["up/doctor:thinker"].checks) == set(CHECKS)


def test_json_is_stable_and_the_exit_status_says_a_primary_is_broken(settings: Settings, tmp_path: Path):
    config = tmp_path / "config.yaml"
    result = CliRunner().invoke(app, ["doctor", "--config", str(config), "--json"])
    data = json.loads(result.stdout)
    assert [d["model"] for d in data] == ["up/doctor:agent", "up/doctor:talker"]  # what the tiers route to
    for entry in data:
        assert set(entry) == {"model", "verdict", "checks", "ttft_ms", "tokens_per_s", "checked"}
        assert entry["verdict"] in ("works", "degraded", "broken")
        for check in entry["checks"].values():
            assert set(check) <= {"ok", "detail", "kind"} and isinstance(check["ok"], bool)
    assert result.exit_code == 1  # the default tier's primary (talker) cannot call tools
    one = CliRunner().invoke(app, ["doctor", "up/doctor:agent", "--config", str(config), "--json"])
    assert one.exit_code == 0 and json.loads(one.stdout)[0]["verdict"] == "works"


def test_the_live_display_renders_in_a_fixed_width_console():
    progress = DoctorProgress(["groq/openai/gpt-oss-120b", "ollama/qwen3:8b"])
    progress.update("groq/openai/gpt-oss-120b", "reach", "ok")
    progress.update("groq/openai/gpt-oss-120b", "stream", "running")
    progress.update("ollama/qwen3:8b", "reach", "failed")
    progress.update("ollama/qwen3:8b", "stream", "skipped")
    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None).print(progress.render())
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("fcc doctor: checking")
    groq = next(line for line in lines if "groq/openai" in line)
    ollama = next(line for line in lines if "ollama/qwen3" in line)
    assert "✓" in groq and "stream" in groq.split("│")[-2]
    assert "✗" in ollama and "·" in ollama and "done" in ollama
    assert all(len(line) <= 100 for line in lines)


@pytest.fixture
def shared(tmp_path: Path, live_upstream: Live) -> Iterator[tuple[Path, str]]:
    """A config whose default tier is a model that cannot call tools, with a fallback that can,
    on a SQLite store the doctor and the server share."""
    path = tmp_path / "config.yaml"
    path.write_text(
        config_text(live_upstream.upstream_url).replace(
            "state: {backend: memory}", f"state: {{path: '{tmp_path}/fcc.db'}}"
        ),
        encoding="utf-8",
    )
    yield path, live_upstream.upstream_url


def test_the_router_skips_for_tools_what_the_doctor_found_cannot_call_them(shared, live_upstream: Live):
    config, _ = shared
    CliRunner().invoke(app, ["doctor", "up/doctor:talker", "--config", str(config), "--json"])
    upstream = live_upstream.upstream
    with serve(create_app(load_settings(config), KeyStore(environ={}))) as url:
        before = len(upstream.requests)
        with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk:
            raw = sdk.messages.with_raw_response.create(
                model="m", max_tokens=20, messages=[{"role": "user", "content": "hi"}], tools=RECORDED[:3]
            )
            assert raw.headers["x-fcc-route"] == "up/doctor:agent"  # the talker was skipped
            plain = sdk.messages.with_raw_response.create(
                model="m", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
            )
            assert plain.headers["x-fcc-route"] == "up/doctor:talker"  # without tools it still serves
        sent = [r.body["model"] for r in upstream.requests[before:]]
        assert sent == ["doctor:agent", "doctor:talker"]
        (shown,) = httpx.get(f"{url}/dashboard/data").json()["doctor"]
        assert (shown["model"], shown["verdict"], shown["failing"]) == ("up/doctor:talker", "broken", "tools")
        board = json.loads(CliRunner().invoke(app, ["models", "--config", str(config), "--json"]).stdout)
    doctor = {d["model"]: d for d in board["doctor"]}
    assert (
        doctor["up/doctor:talker"]["verdict"] == "broken" and doctor["up/doctor:talker"]["failing"] == "tools"
    )
    # fcc route explains the same decision the server made.
    request = config.parent / "with-tools.json"
    request.write_text(
        json.dumps(
            {
                "model": "m",
                "max_tokens": 20,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": RECORDED[:3],
            }
        )
    )
    routed = json.loads(
        CliRunner().invoke(app, ["route", str(request), "--config", str(config), "--json"]).stdout
    )
    talker = next(c for c in routed["candidates"] if c["model"] == "up/doctor:talker")
    assert not talker["ok"] and talker["reason"].startswith("doctor: cannot call tools")
