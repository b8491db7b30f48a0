"""What fcc promises a user who trusts it with keys: they never leak, it only ever talks to
the hosts the user configured, and it does not listen beyond loopback unprotected."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from fcc.cli import app as cli
from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from tests.conftest import Live, replay_config
from tests.support.servers import serve

KEY = "sk-live-SECRET-5f1e0c2b9d7a4e6f"
USER = [{"role": "user", "content": "hi"}]


def keyed_config(tmp: Path, upstream_url: str) -> Path:
    path = replay_config(tmp, upstream_url)
    keyed = f"""\
  keyed:
    display_name: Keyed upstream
    transport: openai_chat
    base_url: {upstream_url}/v1
    auth: bearer
    api_key_env: FCC_TEST_SECRET_KEY
"""
    path.write_text(path.read_text().replace("tiers:\n", keyed + "tiers:\n", 1))
    return path


def test_keys_and_account_ids_never_reach_the_client(
    tmp_path: Path, live_upstream: Live, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    settings = load_settings(keyed_config(tmp_path, live_upstream.upstream_url))
    with serve(create_app(settings, KeyStore(environ={"FCC_TEST_SECRET_KEY": KEY}))) as url:
        outputs = []
        for model in ("keyed/leak:401", "keyed/leak:429", "keyed/leak:400", "keyed/text:fine"):
            for stream in (False, True):
                body = {"model": model, "max_tokens": 5, "stream": stream, "messages": USER}
                response = httpx.post(f"{url}/v1/messages", json=body, timeout=30)
                outputs.append(response.text + str(response.headers))
        outputs += [httpx.get(f"{url}{path}").text for path in ("/health", "/metrics", "/dashboard/data")]
    fine = [r for r in live_upstream.upstream.requests if r.body.get("model") == "text:fine"]
    assert fine and fine[-1].headers["authorization"] == f"Bearer {KEY}"  # it was used
    everything = "\n".join(outputs)
    assert KEY not in everything
    assert "org-7Hq2xLm9Qa" not in everything and "jane.doe@example.com" not in everything
    assert "1f2e3d4c-aaaa-bbbb-cccc-0123456789ab" not in everything
    assert "Invalid key [key]" in everything or "Invalid key [id]" in everything  # still says what happened
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert KEY not in logs
    assert "org-7Hq2xLm9Qa" in logs  # the operator can still find the account


@pytest.mark.parametrize(
    "model",
    [
        "http://evil.example/v1/chat",
        "https://evil.example",
        "evil.example/model",
        "replay@evil.example/x",
        "keyed/../../../evil",
        "keyed/http://evil.example/x",
        "//evil.example/x",
    ],
)
def test_no_model_name_or_header_reaches_another_host(model: str, tmp_path: Path, live_upstream: Live):
    seen: list[httpx.URL] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        chunk = '{"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}'
        body = f"data: {chunk}\n\ndata: [DONE]\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    settings = load_settings(keyed_config(tmp_path, live_upstream.upstream_url))
    app = create_app(
        settings, KeyStore(environ={"FCC_TEST_SECRET_KEY": KEY}), transport=httpx.MockTransport(upstream)
    )
    hostile = {"host": "evil.example", "x-forwarded-host": "evil.example", "forwarded": "host=evil.example"}
    with TestClient(app) as client:
        response = client.post(
            "/v1/messages", json={"model": model, "max_tokens": 5, "messages": USER}, headers=hostile
        )
    assert response.status_code == 200
    configured = {httpx.URL(p.base_url).host for p in settings.providers.values()}
    assert seen and all(url.host in configured and url.host == "127.0.0.1" for url in seen)


def test_upstream_redirects_are_not_followed(tmp_path: Path, live_upstream: Live):
    seen: list[httpx.URL] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(307, headers={"location": "http://evil.example/steal"})

    settings = load_settings(keyed_config(tmp_path, live_upstream.upstream_url))
    app = create_app(
        settings, KeyStore(environ={"FCC_TEST_SECRET_KEY": KEY}), transport=httpx.MockTransport(upstream)
    )
    with TestClient(app) as client:
        response = client.post("/v1/messages", json={"model": "keyed/x", "max_tokens": 5, "messages": USER})
    assert response.status_code >= 400 and response.json()["type"] == "error"
    assert [url.host for url in seen] == ["127.0.0.1"]  # asked once, where configured; never the redirect


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_serve_refuses_a_public_address_without_a_token(host: str, tmp_path: Path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("server: {port: 8099}\n")
    result = CliRunner().invoke(cli, ["serve", "--host", host, "--config", str(cfg)])
    assert result.exit_code != 0
    assert "auth_token" in result.output and "Traceback" not in result.output
