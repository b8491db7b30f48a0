"""The request log: what is kept, how it is aggregated, and the JSON-lines file."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from fcc.engine.state.records import MINUTES, RING, SESSIONS, RequestLog, RequestRecord
from tests.conftest import Live, replay_config
from tests.support.servers import serve


def record(t: float = 1_700_000_000.0, **changes) -> RequestRecord:
    base = dict(
        time=t,
        session="s1",
        model="claude-opus-5-5",
        tier="opus",
        route="groq/openai/gpt-oss-120b",
        attempts=("groq/openai/gpt-oss-120b",),
        probe=None,
        status=200,
        ttft_ms=12.5,
        duration_ms=80.0,
        overhead_ms=0.4,
        input_tokens=100,
        output_tokens=20,
        cached_tokens=50,
        error_type=None,
        stream=True,
    )
    return RequestRecord(**{**base, **changes})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_aggregates_by_session_provider_and_probe():
    log = RequestLog(clock=Clock(1_700_000_000.0))
    log.add(record())
    log.add(
        record(
            session="s2",
            route="probe:title",
            probe="title",
            input_tokens=10,
            output_tokens=3,
            cached_tokens=0,
        )
    )
    log.add(
        record(status=429, error_type="rate_limit_error", input_tokens=0, output_tokens=0, cached_tokens=0)
    )
    log.add(record(attempts=("a/x", "groq/openai/gpt-oss-120b")))
    assert log.totals.requests == 4 and log.totals.errors == 1 and log.totals.probes == 1
    assert log.totals.fallbacks == 1
    assert log.sessions["s1"].requests == 3 and log.sessions["s2"].probes == 1
    assert log.providers["groq"].input_tokens == 200 and "probe" not in log.providers
    assert log.probes == {"title": 1}


def test_ring_and_session_bounds():
    log = RequestLog(clock=Clock(1_700_000_000.0))
    for i in range(RING + 10):
        log.add(record(t=1_700_000_000.0 + i, session=f"s{i % (SESSIONS + 5)}"))
    assert len(log.recent) == RING
    assert len(log.sessions) == SESSIONS


def test_series_has_one_slot_a_minute_with_zeros_between():
    clock = Clock(1_700_000_000.0)
    log = RequestLog(clock=clock)
    log.add(record(t=clock.now - 120))
    log.add(record(t=clock.now))
    log.add(record(t=clock.now, probe="warmup", route="probe:warmup"))
    series = log.series()
    assert len(series["minute"]) == len(series["requests"]) == MINUTES
    assert series["requests"][-1] == 2 and series["requests"][-3] == 1 and series["requests"][-2] == 0
    assert series["probes"][-1] == 1
    assert series["by_provider"]["groq"][-1] == 1


def test_json_lines_file_rotates(tmp_path: Path):
    path = tmp_path / "logs" / "requests.jsonl"
    log = RequestLog(path, max_bytes=2000)
    for i in range(20):
        log.add(record(t=1_700_000_000.0 + i))
    lines = path.read_text().splitlines()
    rotated = (tmp_path / "logs" / "requests.jsonl.1").read_text().splitlines()
    assert lines and rotated and len(lines) + len(rotated) <= 20
    entry = json.loads(lines[-1])
    assert entry["model"] == "claude-opus-5-5" and entry["time"].endswith("+00:00")
    assert path.stat().st_size <= 2000


def test_requests_reach_the_log_file_without_prompt_text(tmp_path: Path, live_upstream: Live):
    log_path = tmp_path / "requests.jsonl"
    path = replay_config(tmp_path, live_upstream.upstream_url, f"server:\n  request_log: {log_path}\n")
    marker = "PROMPT-MARKER-7f3a"
    with serve(create_app(load_settings(path), KeyStore(environ={}))) as url:
        response = httpx.post(
            f"{url}/v1/messages",
            json={
                "model": "claude-haiku-4-5",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": marker}],
            },
            headers={"x-claude-code-session-id": "sess-123"},
        )
    assert float(response.headers["x-fcc-overhead-ms"]) >= 0
    entry = json.loads(log_path.read_text().splitlines()[-1])
    assert entry["session"] == "sess-123" and entry["route"] == "replay/text:hi_there"
    assert entry["output_tokens"] == 2 and entry["overhead_ms"] < entry["duration_ms"]
    assert marker not in log_path.read_text()
