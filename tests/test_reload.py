"""Live documents: a changed tier applies to the next request while a stream in flight
finishes on its old route; an invalid file keeps the old settings serving and says where it
is wrong (log, dashboard), and fixing it applies; keys.env and SIGHUP, POST /admin/reload."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from fcc.engine.server.reload import Source
from tests.conftest import Live, replay_config
from tests.support.servers import serve
from tests.test_state_live import PIDS, fcc_serve

USER = [{"role": "user", "content": "hi"}]


def wait_for(url: str, check, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        data = httpx.get(f"{url}/dashboard/data").json()
        if check(data):
            return data
        assert time.monotonic() < deadline, data.get("reload")
        time.sleep(0.05)


@pytest.fixture
def live(tmp_path: Path, live_upstream: Live) -> Iterator[tuple[Path, str]]:
    config = replay_config(tmp_path, live_upstream.upstream_url)
    config.write_text(
        config.read_text().replace(
            "  default: replay/text:hello_from_the_test_upstream", "  default: replay/fault:trickle:0.3"
        )
    )
    settings = load_settings(config)
    app = create_app(settings, KeyStore(environ={}), source=Source(config, keys_from_file=False), watch=0.05)
    with serve(app) as url:
        yield config, url


def ask(url: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER, **body}, timeout=30
    )


def test_a_new_tier_applies_to_the_next_request_while_a_stream_finishes_on_its_old_route(live):
    config, url = live
    streamed: dict[str, object] = {}

    def stream() -> None:
        response = ask(url, stream=True)
        streamed["route"] = response.headers["x-fcc-route"]
        streamed["text"] = "".join(
            line for line in response.text.splitlines() if line.startswith("data:") and "text_delta" in line
        )

    worker = threading.Thread(target=stream)
    worker.start()
    time.sleep(0.5)  # the trickle is under way
    config.write_text(
        config.read_text().replace(
            "  default: replay/fault:trickle:0.3", "  default: replay/text:the_new_route"
        )
    )
    data = wait_for(url, lambda d: d["reload"] and d["reload"]["ok"])
    assert "tier default: replay/fault:trickle:0.3 → replay/text:the_new_route" in data["reload"]["changes"]
    assert data["reload"]["trigger"] == f"{config} changed"
    worker.join(timeout=20)
    assert streamed["route"] == "replay/fault:trickle:0.3" and "five" in str(streamed["text"])  # it finished
    after = ask(url)
    assert after.headers["x-fcc-route"] == "replay/text:the_new_route"
    assert after.json()["content"][0]["text"] == "the new route"


def test_an_invalid_file_keeps_the_old_settings_and_says_where(live, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="fcc.reload")
    config, url = live
    good = config.read_text().replace("  default: replay/fault:trickle:0.3", "  default: replay/text:before")
    config.write_text(good)
    wait_for(url, lambda d: d["reload"] and d["reload"]["ok"])
    config.write_text(
        good.replace("  default: replay/text:before", "  default: nowhere/model\n  bogus_key: 1")
    )
    data = wait_for(url, lambda d: d["reload"] and not d["reload"]["ok"])
    problems = data["reload"]["problems"]
    assert any(p.startswith(f"{config}:") and "unknown provider 'nowhere'" in p for p in problems), problems
    assert ask(url).headers["x-fcc-route"] == "replay/text:before"  # still serving the old settings
    assert any(
        "config not reloaded" in r.getMessage() and "nowhere" in r.getMessage() for r in caplog.records
    )
    config.write_text(good.replace("  default: replay/text:before", "  default: replay/text:fixed"))
    wait_for(url, lambda d: d["reload"]["ok"] and any("fixed" in c for c in d["reload"]["changes"]))
    assert ask(url).headers["x-fcc-route"] == "replay/text:fixed"


def test_keys_env_changes_are_named_never_shown(tmp_path: Path, live_upstream: Live):
    config = replay_config(tmp_path, live_upstream.upstream_url)
    keyed = (
        "providers:\n  keyed:\n    transport: openai_chat\n"
        f"    base_url: {live_upstream.upstream_url}/v1\n    api_key_env: RELOAD_TEST_KEY\n"
    )
    config.write_text(config.read_text().replace("providers:\n", keyed, 1))
    (tmp_path / "keys.env").write_text("RELOAD_TEST_KEY=first-secret-value\n")
    app = create_app(load_settings(config), source=Source(config), watch=0.05)
    with serve(app) as url:
        (tmp_path / "keys.env").write_text("RELOAD_TEST_KEY=second-secret-value\n")
        data = wait_for(url, lambda d: d["reload"] and d["reload"]["ok"])
        assert "keys changed: RELOAD_TEST_KEY" in data["reload"]["changes"]
        assert "secret-value" not in str(data)
        sent = httpx.post(
            f"{url}/v1/messages",
            json={"model": "keyed/text:ok", "max_tokens": 5, "messages": USER},
            timeout=30,
        )
        assert sent.status_code == 200
    assert live_upstream.upstream.requests[-1].headers["authorization"] == "Bearer second-secret-value"


def test_post_admin_reload_answers_on_loopback_and_reports_problems(tmp_path: Path, live_upstream: Live):
    config = replay_config(tmp_path, live_upstream.upstream_url)
    app = create_app(load_settings(config), KeyStore(environ={}), source=Source(config, keys_from_file=False))
    with serve(app) as url:
        result = httpx.post(f"{url}/admin/reload")
        assert result.status_code == 200, result.text
        assert result.json()["ok"] is True and result.json()["trigger"] == "POST /admin/reload"
        config.write_text(config.read_text() + "nonsense: [\n")
        bad = httpx.post(f"{url}/admin/reload")
        assert bad.status_code == 422 and bad.json()["ok"] is False
        assert any(p.startswith(f"{config}:") for p in bad.json()["problems"]), bad.json()


def test_post_admin_reload_off_loopback_needs_the_token(tmp_path: Path, live_upstream: Live):
    config = replay_config(tmp_path, live_upstream.upstream_url, "server:\n  auth_token: tok-123456\n")
    app = create_app(load_settings(config), KeyStore(environ={}), source=Source(config, keys_from_file=False))
    # Starlette's test client is not on loopback (its peer is "testclient"): only the token opens it.
    with TestClient(app) as client:
        assert client.post("/admin/reload").status_code == 403
        opened = client.post("/admin/reload", headers={"x-api-key": "tok-123456"})
        assert opened.status_code == 200 and opened.json()["ok"] is True, opened.text


def test_sighup_reloads_a_running_fcc_serve(tmp_path: Path, live_upstream: Live):
    config = replay_config(tmp_path, live_upstream.upstream_url)
    state = tmp_path / "state"
    state.mkdir()
    with fcc_serve(config, state) as url:
        os.kill(PIDS[url], signal.SIGHUP)
        data = wait_for(url, lambda d: d["reload"] is not None)
        assert data["reload"]["ok"] is True and data["reload"]["trigger"] == "SIGHUP"


def test_a_probe_document_added_while_serving_answers_and_health_and_usage_carry_over(live):
    config, url = live
    config.write_text(
        config.read_text().replace("  default: replay/fault:trickle:0.3", "  default: replay/text:a")
    )
    wait_for(url, lambda d: d["reload"] and d["reload"]["ok"])
    for _ in range(3):  # three failures open this candidate's circuit
        assert ask(url, model="replay/status:500").status_code == 500
    before = httpx.get(f"{url}/dashboard/data").json()
    assert [h["state"] for h in before["health"] if h["candidate"] == "replay/status:500"] == ["open"]

    probes = config.parent / "probes"
    probes.mkdir()
    (probes / "ping.yaml").write_text(
        "name: ping\ndescription: a test probe\nmatch:\n  roles: [user]\n  first_user_text: {equals: ping}\n"
        'answer: {text: "pong"}\n'
    )
    data = wait_for(url, lambda d: d["reload"] and "probe ping added" in d["reload"]["changes"])
    assert data["reload"]["trigger"] == f"{probes / 'ping.yaml'} changed"
    answered = httpx.post(
        f"{url}/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "ping"}]},
        timeout=30,
    )
    assert answered.headers["x-fcc-route"] == "probe:ping" and answered.json()["content"][0]["text"] == "pong"
    after = httpx.get(f"{url}/dashboard/data").json()
    # The circuit is still open and today's totals kept counting across the reload.
    assert [h["state"] for h in after["health"] if h["candidate"] == "replay/status:500"] == ["open"]
    assert after["totals"]["requests"] == before["totals"]["requests"] + 1
    assert after["totals"]["errors"] == before["totals"]["errors"] == 3
