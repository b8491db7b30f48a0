"""Every catalog provider added with the hosted-provider batch, end to end: the official SDK in
front, fcc on loopback, and a recording upstream behind it that speaks the document's protocol.

The expectations below are written from the vendors' own documentation, not read back from the
catalog documents: the request path each vendor serves (and its query, for Azure's api-version),
the header that carries the key and its form, and the body shape of the protocol. The only thing
taken from a document is its base URL, whose scheme and host are swapped for the loopback
server's so that the document's own path prefix (/v1, /openai/v1, /apps/anthropic...) is what
gets tested."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.documents import parse
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from tests.support.servers import serve

CATALOG = Path(__file__).resolve().parents[1] / "catalog" / "providers"

OPENAI = "openai_chat"
ANTHROPIC = "anthropic_messages"
BEARER = ("authorization", "Bearer {key}")
X_API_KEY = ("x-api-key", "{key}")


@dataclass(frozen=True)
class Expect:
    transport: str
    model: str  # one of the document's models, sent upstream verbatim
    key_env: str
    path: str  # the request path the vendor documents (placeholders already filled)
    auth: tuple[str, str] = BEARER  # header name, value template
    query: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # placeholder variables


# From the vendors' docs: base URL + the path their SDK examples post to.
EXPECTED: dict[str, Expect] = {
    # https://api.x.ai/v1/chat/completions, Authorization: Bearer $XAI_API_KEY
    "xai": Expect(OPENAI, "grok-4.3", "XAI_API_KEY", "/v1/chat/completions"),
    # base_url https://api.together.ai/v1
    "together": Expect(OPENAI, "moonshotai/Kimi-K2.6", "TOGETHER_API_KEY", "/v1/chat/completions"),
    # https://api.deepinfra.com/v1/openai/chat/completions (not /v1/chat/completions)
    "deepinfra": Expect(OPENAI, "zai-org/GLM-5.2", "DEEPINFRA_API_KEY", "/v1/openai/chat/completions"),
    # POST https://api.deepinfra.com/anthropic/v1/messages
    "deepinfra_anthropic": Expect(
        ANTHROPIC, "zai-org/GLM-5.2", "DEEPINFRA_API_KEY", "/anthropic/v1/messages"
    ),
    # server https://api.siliconflow.com/v1, POST /chat/completions
    "siliconflow": Expect(
        OPENAI, "Qwen/Qwen3-Coder-480B-A35B-Instruct", "SILICONFLOW_API_KEY", "/v1/chat/completions"
    ),
    # base_url https://api.tokenfactory.nebius.com/v1/
    "nebius": Expect(OPENAI, "zai-org/GLM-5.2", "NEBIUS_API_KEY", "/v1/chat/completions"),
    # https://llm.chutes.ai/v1/chat/completions, Bearer (X-API-Key is ignored by inference)
    "chutes": Expect(OPENAI, "zai-org/GLM-5.2-TEE", "CHUTES_API_KEY", "/v1/chat/completions"),
    # https://router.huggingface.co/v1/chat/completions
    "huggingface": Expect(OPENAI, "zai-org/GLM-5.1", "HF_TOKEN", "/v1/chat/completions"),
    # ANTHROPIC_BASE_URL=https://router.huggingface.co, ANTHROPIC_AUTH_TOKEN=$HF_TOKEN
    "huggingface_anthropic": Expect(ANTHROPIC, "zai-org/GLM-5.1", "HF_TOKEN", "/v1/messages"),
    # POST https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1/chat/completions
    "cloudflare_workers_ai": Expect(
        OPENAI,
        "@cf/openai/gpt-oss-120b",
        "CLOUDFLARE_API_KEY",
        "/client/v4/accounts/acct-0123/ai/v1/chat/completions",
        env={"CLOUDFLARE_ACCOUNT_ID": "acct-0123"},
    ),
    # base_url https://api.sambanova.ai/v1
    "sambanova": Expect(OPENAI, "gpt-oss-120b", "SAMBANOVA_API_KEY", "/v1/chat/completions"),
    # POST https://api.sambanova.ai/v1/messages; x-api-key (Anthropic SDK default) or Bearer
    "sambanova_anthropic": Expect(
        ANTHROPIC, "gpt-oss-120b", "SAMBANOVA_API_KEY", "/v1/messages", auth=X_API_KEY
    ),
    # base_url https://api.novita.ai/openai
    "novita": Expect(OPENAI, "moonshotai/kimi-k2.6", "NOVITA_API_KEY", "/openai/chat/completions"),
    # ANTHROPIC_BASE_URL=https://api.novita.ai/anthropic, Authorization: Bearer
    "novita_anthropic": Expect(ANTHROPIC, "minimax/minimax-m3", "NOVITA_API_KEY", "/anthropic/v1/messages"),
    # OPENAI_BASE_URL=https://api.minimax.io/v1
    "minimax": Expect(OPENAI, "MiniMax-M2.7", "MINIMAX_API_KEY", "/v1/chat/completions"),
    # ANTHROPIC_BASE_URL=https://api.minimax.io/anthropic; curl uses Authorization: Bearer
    "minimax_anthropic": Expect(ANTHROPIC, "MiniMax-M3", "MINIMAX_API_KEY", "/anthropic/v1/messages"),
    # https://dashscope-intl.aliyuncs.com/compatible-mode/v1
    "dashscope": Expect(
        OPENAI, "qwen3-coder-plus", "DASHSCOPE_API_KEY", "/compatible-mode/v1/chat/completions"
    ),
    # ANTHROPIC_BASE_URL=https://dashscope-intl.aliyuncs.com/apps/anthropic, ANTHROPIC_API_KEY
    "dashscope_anthropic": Expect(
        ANTHROPIC, "qwen3-coder-plus", "DASHSCOPE_API_KEY", "/apps/anthropic/v1/messages", auth=X_API_KEY
    ),
    # https://{resource}.openai.azure.com/openai/deployments/{deployment}/chat/completions?api-version=
    "azure_openai": Expect(
        OPENAI,
        "gpt-5.4",
        "AZURE_OPENAI_API_KEY",
        "/openai/deployments/gpt-5.4/chat/completions",
        auth=("api-key", "{key}"),
        query={"api-version": "2024-10-21"},
        env={"AZURE_OPENAI_RESOURCE": "my-resource"},
    ),
    # https://ollama.com/v1/messages, Authorization: Bearer only (x-api-key alone is refused)
    "ollama_cloud": Expect(ANTHROPIC, "glm-5.2", "OLLAMA_API_KEY", "/v1/messages"),
    # https://ai-gateway.vercel.sh/v1/chat/completions
    "vercel": Expect(OPENAI, "zai/glm-5.2", "AI_GATEWAY_API_KEY", "/v1/chat/completions"),
    # ANTHROPIC_BASE_URL=https://ai-gateway.vercel.sh, ANTHROPIC_AUTH_TOKEN
    "vercel_anthropic": Expect(
        ANTHROPIC, "anthropic/claude-sonnet-4.6", "AI_GATEWAY_API_KEY", "/v1/messages"
    ),
    # baseURL https://api.kilo.ai/api/gateway, Authorization: Bearer
    "kilo": Expect(OPENAI, "z-ai/glm-5:free", "KILO_API_KEY", "/api/gateway/chat/completions"),
    # ANTHROPIC_BASE_URL=https://api.moonshot.ai/anthropic, ANTHROPIC_AUTH_TOKEN
    "kimi_anthropic": Expect(ANTHROPIC, "kimi-k2.6", "MOONSHOT_API_KEY", "/anthropic/v1/messages"),
    # ANTHROPIC_BASE_URL=https://api.z.ai/api/anthropic, ANTHROPIC_AUTH_TOKEN
    "zai_anthropic": Expect(ANTHROPIC, "glm-5.2", "ZAI_API_KEY", "/api/anthropic/v1/messages"),
    # base_url https://api.deepseek.com/anthropic; x-api-key "Fully Supported"
    "deepseek_anthropic": Expect(
        ANTHROPIC, "deepseek-v4-pro", "DEEPSEEK_API_KEY", "/anthropic/v1/messages", auth=X_API_KEY
    ),
    # server https://api.fireworks.ai/inference, POST /v1/messages, bearer
    "fireworks_anthropic": Expect(
        ANTHROPIC, "accounts/fireworks/models/kimi-k2p6", "FIREWORKS_API_KEY", "/inference/v1/messages"
    ),
}

REPLY = "hello from the catalog upstream"
_HOST = re.compile(r"^(https?://)[^/]+")


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """A loopback upstream that records every request and answers it with a minimal stream in
    the protocol its path implies."""

    seen: list[Seen] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST"])])

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        self.seen.append(
            Seen(request.method, request.url.path, dict(request.query_params), dict(request.headers), body)
        )
        if request.url.path.endswith("/messages"):
            return Response(_anthropic_stream(body), media_type="text/event-stream")
        return Response(_openai_stream(body), media_type="text/event-stream")


def _sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


def _openai_stream(body: Any) -> str:
    model = body.get("model", "m") if isinstance(body, dict) else "m"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-catalog",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    usage = {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    last = {**chunk({}, "stop"), "usage": usage}
    parts = [chunk({"role": "assistant", "content": ""}), chunk({"content": REPLY}), last]
    return "".join(_sse(p) for p in parts) + "data: [DONE]\n\n"


def _anthropic_stream(body: Any) -> str:
    model = body.get("model", "m") if isinstance(body, dict) else "m"
    message = {
        "id": "msg_catalog",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    events = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": REPLY}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 6},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join(_sse(data, event) for event, data in events)


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Recorder, str]]:
    recorder = Recorder()
    with serve(recorder.app()) as url:
        yield recorder, url


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Daily quotas (SambaNova's 20 requests/day) must never be spent by, or carried between, runs.
    for var in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))


def _document(provider_id: str) -> dict[str, Any]:
    doc, problems = parse(CATALOG / f"{provider_id}.yaml")
    assert doc is not None and not problems, problems
    assert isinstance(doc.data, dict)
    return doc.data


def test_every_expectation_names_a_document_and_one_of_its_models():
    for provider_id, expect in EXPECTED.items():
        doc = _document(provider_id)
        assert doc["id"] == provider_id
        assert doc["transport"] == expect.transport, provider_id
        assert doc["api_key_env"] == expect.key_env, provider_id
        assert expect.model in {m["id"] for m in doc.get("models", [])}, provider_id


@pytest.mark.parametrize("provider_id", sorted(EXPECTED))
def test_provider_request_reaches_the_documented_endpoint(
    provider_id: str, upstream: tuple[Recorder, str], tmp_path: Path
):
    recorder, upstream_url = upstream
    expect = EXPECTED[provider_id]
    doc = _document(provider_id)
    # The document's own path prefix, on the loopback host (a ${VAR} host is replaced too).
    base_url, swapped = _HOST.subn(upstream_url, doc["base_url"])
    assert swapped == 1 and base_url.startswith(upstream_url)
    config = tmp_path / "config.yaml"
    # JSON is YAML: the override touches nothing but this provider's base_url.
    config.write_text(json.dumps({"providers": {provider_id: {"base_url": base_url}}}), encoding="utf-8")
    key = f"sk-test-{provider_id}-0123456789"
    keys = KeyStore(environ={expect.key_env: key, **expect.env})

    recorder.seen.clear()
    with (
        serve(create_app(load_settings(config), keys)) as fcc_url,
        anthropic.Anthropic(base_url=fcc_url, api_key="x", max_retries=0) as sdk,
        sdk.messages.stream(
            model=f"{provider_id}/{expect.model}",
            max_tokens=64,
            messages=[{"role": "user", "content": "Say hello to the catalog test."}],
        ) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == REPLY
    assert final.stop_reason == "end_turn"
    posts = [s for s in recorder.seen if s.method == "POST"]
    assert len(posts) == 1, [(s.method, s.path) for s in recorder.seen]
    sent = posts[0]
    assert sent.path == expect.path
    assert sent.query == expect.query

    header, template = expect.auth
    assert sent.headers.get(header) == template.format(key=key)
    leaked = [name for name, value in sent.headers.items() if key in value and name != header]
    assert not leaked, f"the key also went out in {leaked}"

    body = sent.body
    assert isinstance(body, dict)
    assert body["model"] == expect.model
    assert isinstance(body["messages"], list) and body["messages"]
    if expect.transport == OPENAI:
        assert body["stream"] is True
        assert body["messages"][-1]["role"] == "user"
    else:
        assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
        assert body["messages"][-1]["role"] == "user"
        assert sent.headers.get("anthropic-version")
