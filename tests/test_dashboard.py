"""The dashboard, /dashboard/data and /metrics: served by a real fcc in front of the replay
upstream, read over HTTP, and once in a real headless Chromium."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from tests.conftest import Live, replay_config
from tests.support.servers import serve

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "fcc" / "engine" / "server" / "static"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SESSION_A = "3f2a9c1e-5b7d-4e21-9c0a-6d8e1f2b3a4c"
SESSION_B = "a7e4b2d9-0c1f-4a3b-8e5d-2f6c9b1a0e7d"


def ask(
    url: str,
    model: str,
    text: str = "hi",
    *,
    session: str | None = None,
    stream: bool = False,
    system: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 20,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }
    if system is not None:
        body["system"] = system
    headers = {"x-claude-code-session-id": session} if session else {}
    return httpx.post(f"{url}/v1/messages", json=body, headers=headers, timeout=30)


def data(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/dashboard/data", timeout=10)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    snapshot: dict[str, Any] = response.json()
    return snapshot


def settled(url: str, requests: int) -> dict[str, Any]:
    """The snapshot once `requests` have finished (a stream is logged when its body ends)."""
    for _ in range(200):
        snap = data(url)
        if snap["totals"]["requests"] >= requests:
            return snap
        time.sleep(0.02)
    raise AssertionError(f"fcc logged {snap['totals']['requests']} of {requests} requests")


def raw_get(url: str, path: str) -> tuple[int, str, bytes]:
    """GET `path` exactly as written: httpx would normalize the dot segments away."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("content-type") or "", response.read()
    finally:
        conn.close()


# ---------- the page and its files ----------


def test_dashboard_page_and_assets_are_served_on_loopback(fcc_url: str):
    page = httpx.get(f"{fcc_url}/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    html = page.text
    assert 'id="chart"' in html and 'data-testid="recent"' in html
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        asset = httpx.get(f"{fcc_url}/dashboard/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert asset.content == (STATIC / name).read_bytes()
        assert f"/dashboard/{name}" in html


def test_dashboard_files_fetch_nothing_from_elsewhere():
    # Offline by construction: no absolute URLs, no CDN, no web fonts, no @import.
    for name in ("dashboard.html", "dashboard.js", "dashboard.css"):
        text = (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(r"(?i)\b(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), name
        assert "@import" not in text and "@font-face" not in text and "url(" not in text, name
    js = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js


@pytest.mark.parametrize(
    "path",
    ["/dashboard/nope.js", "/dashboard/../x", "/dashboard/..%2Fpyproject.toml", "/dashboard/dashboard.html"],
)
def test_unknown_dashboard_paths_are_anthropic_404s(fcc_url: str, path: str):
    status, content_type, body = raw_get(fcc_url, path)
    assert status == 404
    assert content_type.startswith("application/json")
    error = json.loads(body)
    assert error["type"] == "error" and error["error"]["type"] == "not_found_error"
    assert error["error"]["message"]


def test_admin_pages_need_the_token_off_loopback(tmp_path: Path, live_upstream: Live):
    # Starlette's test client is not on loopback: the page and its files need ?token=
    # (dashboard.html forwards it to its own files and to /dashboard/data).
    path = replay_config(tmp_path, live_upstream.upstream_url, "server:\n  auth_token: tok-123456\n")
    with TestClient(create_app(load_settings(path), KeyStore(environ={}))) as client:
        for target in ("/dashboard", "/dashboard/dashboard.js", "/dashboard/data", "/metrics"):
            denied = client.get(target)
            assert denied.status_code == 403 and denied.json()["error"]["type"] == "permission_error"
            assert client.get(target, params={"token": "wrong"}).status_code == 403
            assert client.get(target, params={"token": "tok-123456"}).status_code == 200


# ---------- /dashboard/data ----------


def test_data_has_the_shape_the_page_draws(fcc_url: str):
    snap = data(fcc_url)
    assert set(snap) == {
        "version",
        "uptime_s",
        "now",
        "tiers",
        "providers",
        "health",
        "sessions",
        "series",
        "probes",
        "routes",
        "rules",
        "skipped",
        "recent",
        "totals",
        "day",
        "store",
        "quotas",
        "doctor",
        "reload",
    }
    assert snap["reload"] is None  # nothing reloaded yet
    assert snap["store"]["backend"] == "sqlite" and snap["store"]["degraded"] is False
    assert snap["quotas"] == [] and snap["doctor"] == []
    assert snap["routes"] == [] and snap["rules"] == {} and snap["skipped"] == {}
    assert snap["totals"] == {
        "requests": 0,
        "errors": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_tokens": 0,
        "probes": 0,
        "fallbacks": 0,
    }
    assert {t["tier"]: t["route"] for t in snap["tiers"]}["haiku"] == "replay/text:hi_there"
    assert set(snap["tiers"][0]) == {"tier", "route", "fallbacks", "thinking", "origin"}
    series = snap["series"]
    assert set(series) == {"minute", "requests", "input_tokens", "output_tokens", "probes", "by_provider"}
    assert all(len(series[k]) == 60 for k in series if k != "by_provider")
    assert snap["recent"] == [] and snap["sessions"] == [] and snap["health"] == []
    assert "warmup" in snap["probes"]["active"] and snap["probes"]["answered"] == 0


def test_data_counts_a_request_just_made(fcc_url: str):
    answer = ask(fcc_url, "claude-haiku-4-5", session=SESSION_A)
    assert answer.status_code == 200 and answer.json()["content"][0]["text"] == "hi there"
    usage = answer.json()["usage"]
    snap = data(fcc_url)
    totals = snap["totals"]
    assert totals["requests"] == 1 and totals["errors"] == 0
    assert totals["input_tokens"] == usage["input_tokens"] > 0
    assert totals["output_tokens"] == usage["output_tokens"] > 0
    (record,) = snap["recent"]
    assert record["model"] == "claude-haiku-4-5"
    assert record["tier"] == "haiku" and record["route"] == "replay/text:hi_there"
    assert record["attempts"] == ["replay/text:hi_there"] and record["probe"] is None
    assert record["status"] == 200 and record["session"] == SESSION_A
    assert record["duration_ms"] >= record["ttft_ms"] > 0 and record["overhead_ms"] is not None
    (session,) = snap["sessions"]
    assert session["session"] == SESSION_A and session["requests"] == 1
    assert session["input_tokens"] == usage["input_tokens"] and session["probes"] == 0
    (provider,) = snap["providers"]
    assert provider["id"] == "replay" and provider["display_name"] == "Replay upstream"
    assert provider["requests"] == 1 and provider["output_tokens"] == usage["output_tokens"]
    assert provider["requests_last_minute"] == 1 and provider["active_streams"] == 0
    series = snap["series"]
    assert sum(series["requests"]) == 1 and sum(series["by_provider"]["replay"]) == 1
    assert sum(series["input_tokens"]) == usage["input_tokens"] and sum(series["probes"]) == 0


def test_data_shows_probe_savings_and_failures(fcc_url: str, live_upstream: Live):
    sent_upstream = len(live_upstream.upstream.requests)
    warm = ask(fcc_url, "claude-haiku-4-5", "Warmup", session=SESSION_B)
    assert warm.status_code == 200 and warm.headers["x-fcc-probe"] == "warmup"
    assert len(live_upstream.upstream.requests) == sent_upstream  # answered locally
    failed = ask(fcc_url, "replay/status:500", session=SESSION_B)
    assert failed.status_code == 500
    streamed = ask(fcc_url, "claude-haiku-4-5", session=SESSION_A, stream=True)
    assert streamed.status_code == 200
    snap = settled(fcc_url, 3)
    assert snap["probes"]["answered"] == 1 and snap["probes"]["by_name"] == {"warmup": 1}
    assert snap["totals"]["probes"] == 1 and snap["totals"]["errors"] == 1
    assert sum(snap["series"]["probes"]) == 1 and sum(snap["series"]["requests"]) == 3
    by_model = {(r["model"], r["stream"]): r for r in snap["recent"]}
    probe = by_model[("claude-haiku-4-5", False)]
    assert probe["probe"] == "warmup" and probe["route"] == "probe:warmup" and probe["attempts"] == []
    error = by_model[("replay/status:500", False)]
    assert error["status"] == 500 and error["error_type"] == "api_error" and error["route"] is None
    assert by_model[("claude-haiku-4-5", True)]["route"] == "replay/text:hi_there"
    sessions = {s["session"]: s for s in snap["sessions"]}
    assert sessions[SESSION_B]["probes"] == 1 and sessions[SESSION_B]["errors"] == 1
    assert sessions[SESSION_A]["requests"] == 1
    (health,) = snap["health"]
    assert health["candidate"] == "replay/status:500" and health["state"] == "closed"
    assert health["recent_failures"] == 1 and health["last_error"] == "500 api_error"
    assert [r["time"] for r in snap["recent"]] == sorted((r["time"] for r in snap["recent"]), reverse=True)


# ---------- /metrics ----------


def test_metrics_parse_and_match_what_was_sent(fcc_url: str):
    from prometheus_client.parser import text_string_to_metric_families

    usages = [ask(fcc_url, "claude-haiku-4-5", session=SESSION_A).json()["usage"] for _ in range(2)]
    usages.append(ask(fcc_url, "claude-sonnet-4-5", "Warmup").json()["usage"])
    assert ask(fcc_url, "replay/status:500").status_code == 500
    response = httpx.get(f"{fcc_url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    requests = families["fcc_requests"]
    assert requests.type == "counter"
    by_status: Counter[str] = Counter()
    by_route: Counter[tuple[str, str]] = Counter()
    for s in requests.samples:
        by_status[s.labels["status"]] += int(s.value)
        by_route[(s.labels["tier"], s.labels["provider"])] += int(s.value)
    assert by_status == {"200": 3, "500": 1}
    assert by_route == {("haiku", "replay"): 2, ("sonnet", "probe"): 1, ("direct", "replay"): 1}
    probes = {s.labels["probe"]: s.value for s in families["fcc_probe_answers"].samples}
    assert probes == {"warmup": 1}
    tokens: Counter[str] = Counter()
    for s in families["fcc_tokens"].samples:
        tokens[s.labels["kind"]] += int(s.value)
    assert tokens["input"] == sum(u["input_tokens"] for u in usages)
    assert tokens["output"] == sum(u["output_tokens"] for u in usages)
    snap = data(fcc_url)
    assert tokens["input"] == snap["totals"]["input_tokens"]
    assert tokens["output"] == snap["totals"]["output_tokens"]
    durations = families["fcc_request_duration_seconds"]
    assert durations.type == "histogram"
    assert sum(s.value for s in durations.samples if s.name.endswith("_count")) == 4
    health = {s.labels["candidate"]: s.value for s in families["fcc_candidate_health"].samples}
    assert health == {"replay/status:500": 0}


# ---------- privacy ----------


def test_no_prompt_text_in_data_metrics_or_logs(fcc_url: str, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    marker = f"zebra-{uuid.uuid4().hex}-prompt"
    ask(fcc_url, "claude-haiku-4-5", f"please {marker}", session=SESSION_A, system=f"system {marker}")
    ask(fcc_url, "claude-sonnet-4-5", f"stream {marker}", session=SESSION_A, stream=True)
    ask(fcc_url, "replay/status:500", f"fail {marker}", session=SESSION_B)
    ask(fcc_url, "claude-haiku-4-5", "Warmup", session=SESSION_B, system=marker)
    snap = settled(fcc_url, 4)
    assert snap["totals"]["requests"] == 4
    page = httpx.get(f"{fcc_url}/dashboard/data").text
    metrics = httpx.get(f"{fcc_url}/metrics").text
    assert marker not in page and "zebra" not in page
    assert marker not in metrics and "zebra" not in metrics
    logged = [r for r in caplog.records if r.name == "fcc.request"]
    assert len(logged) >= 4  # the request lines were captured, so the check below means something
    for record in caplog.records:
        assert marker not in record.getMessage(), record.name
        assert "zebra" not in repr(record.args) and "zebra" not in str(record.msg)
    assert "zebra" not in caplog.text


# ---------- a real browser ----------


@pytest.fixture
def chromium() -> Iterator[Any]:
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "Python Playwright is not installed (pip install playwright; never `playwright install`)"
    if reason is None and not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        reason = f"Chromium is not at {CHROMIUM} (apt-get install -y chromium)"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the browser: {reason}")
        pytest.skip(reason)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.slow
def test_dashboard_in_a_real_browser(chromium: Any, tmp_path: Path, live_upstream: Live):
    rule = "routes:\n  - name: haiku-work\n    when: {family: haiku}\n    use: haiku\n"
    path = replay_config(tmp_path, live_upstream.upstream_url, rule)
    with serve(create_app(load_settings(path), KeyStore(environ={}))) as url:
        # Something of every kind: answers, a local probe answer, a stream, failures, two sessions.
        assert ask(url, "claude-haiku-4-5", session=SESSION_A).status_code == 200
        assert ask(url, "claude-haiku-4-5", "Warmup", session=SESSION_A).status_code == 200
        assert ask(url, "claude-sonnet-4-5", session=SESSION_B, stream=True).status_code == 200
        for _ in range(3):  # three failures open the candidate's circuit
            assert ask(url, "replay/status:500", session=SESSION_B).status_code == 500
        settled(url, 6)

        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        seen: list[str] = []
        problems: list[str] = []
        page.on("request", lambda r: seen.append(r.url))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(f"{url}/dashboard")
        recent = page.get_by_test_id("recent")
        recent.get_by_text("claude-haiku-4-5", exact=False).first.wait_for(timeout=10_000)
        page.wait_for_function("Number(document.getElementById('chart').dataset.points) > 0", timeout=10_000)
        page.wait_for_selector("#live[data-state=ok]", timeout=10_000)

        assert int(page.get_attribute("#chart", "data-points") or 0) > 0
        rows = recent.locator("tbody tr")
        assert rows.count() == 6
        assert "replay/status:500" in rows.first.inner_text()  # newest first
        assert "warmup" in recent.inner_text()
        assert page.locator("#t-requests").inner_text() == "6"
        assert page.locator("#t-probes").inner_text() == "1"
        assert "open" in page.locator("#health").inner_text()
        assert SESSION_A[:8] in page.locator("#sessions").inner_text()
        # The routing rule that decided, with its hit count, and on the request's row.
        rules = page.get_by_test_id("rules").inner_text()
        assert "haiku-work" in rules and "1" in rules, rules
        assert "haiku-work" in rows.last.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        assert not problems, problems
        assert seen and all(u.startswith(url + "/") or u.startswith("data:") for u in seen), seen

        # Opened with ?token=, the page passes it on to its own files and to the data.
        tokened = chromium.new_page()
        asked: list[str] = []
        tokened.on("request", lambda r: asked.append(r.url))
        tokened.goto(f"{url}/dashboard?token=t%26k")
        tokened.wait_for_selector("#live[data-state=ok]", timeout=10_000)
        for name in ("dashboard.css", "dashboard.js", "data"):
            assert f"{url}/dashboard/{name}?token=t%26k" in asked, asked

        # A config that does not validate: the old settings keep serving and the page says
        # where to fix it; fixed, it says what changed.
        notice = page.locator("#reload-notice")
        assert notice.is_hidden()
        good = path.read_text()
        path.write_text(good.replace("  haiku: replay/text:hi_there", "  haiku: nowhere/model"))
        assert httpx.post(f"{url}/admin/reload").status_code == 422
        page.wait_for_selector("#reload-notice.bad", state="visible", timeout=10_000)
        assert "not reloaded" in notice.inner_text() and "unknown provider 'nowhere'" in notice.inner_text()
        assert f"{path}:" in notice.inner_text()
        path.write_text(good.replace("  haiku: replay/text:hi_there", "  haiku: replay/text:reloaded"))
        assert httpx.post(f"{url}/admin/reload").status_code == 200
        page.wait_for_selector("#reload-notice:not(.bad)", state="visible", timeout=10_000)
        assert "replay/text:reloaded" in notice.inner_text()
        page.wait_for_function(
            "document.getElementById('tiers').innerText.includes('replay/text:reloaded')", timeout=10_000
        )
        page.screenshot(path=str(ARTIFACTS / "dashboard-reload.png"), full_page=True)

    # fcc is gone: the page says so instead of showing stale numbers as live.
    page.wait_for_selector("#live[data-state=error]", timeout=15_000)
    assert "offline" in page.locator("#live").inner_text()
