"""The state store under real `fcc serve` processes: a restart continues where it was,
several workers (SQLite) and two servers sharing one Redis enforce one limit, Redis going
away mid-load fails no request, and kill -9 mid-stream leaves a store the next start opens."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.conftest import Live, replay_config
from tests.support import redis_server
from tests.support.servers import free_port

pytestmark = pytest.mark.slow
USER = [{"role": "user", "content": "hi"}]
PIDS: dict[str, int] = {}


@contextlib.contextmanager
def fcc_serve(config: Path, state_home: Path, *extra: str, port: int | None = None) -> Iterator[str]:
    """A real `fcc serve` process; yields its URL once /health answers (its pid in PIDS)."""
    port = port or free_port()
    env = {**os.environ, "XDG_STATE_HOME": str(state_home), "PYTHONUNBUFFERED": "1"}
    log = open(state_home / f"fcc-{port}.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fcc", "serve", "--config", str(config), "--port", str(port), *extra],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    PIDS[url] = proc.pid
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log.flush()
                raise AssertionError(f"fcc serve exited: {(state_home / f'fcc-{port}.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "fcc serve did not answer /health in 30 s"
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def ask(
    url: str, model: str = "claude-haiku-9", session: str = "sess-live", **body: object
) -> httpx.Response:
    payload = {"model": model, "max_tokens": 5, "messages": USER, **body}
    return httpx.post(
        f"{url}/v1/messages", json=payload, headers={"x-claude-code-session-id": session}, timeout=30
    )


def usage(config: Path, state_home: Path, *args: str) -> list[dict]:
    env = {**os.environ, "XDG_STATE_HOME": str(state_home)}
    out = subprocess.run(
        [sys.executable, "-m", "fcc", "usage", "--config", str(config), "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rows: list[dict] = json.loads(out.stdout)
    return rows


def test_a_restart_continues_where_it_was(tmp_path: Path, live_upstream: Live):
    config = replay_config(tmp_path, live_upstream.upstream_url)
    text = config.read_text().replace(
        "  haiku: replay/text:hi_there", "  haiku: replay_anthropic/text:hi_there"
    )
    limits = "    limits: {requests_per_day: 3}\n"
    config.write_text(text.replace("    local: true\ntiers:", f"    local: true\n{limits}tiers:"))
    state = tmp_path / "state"
    state.mkdir()
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    with fcc_serve(config, state) as url:
        assert ask(url).status_code == 200 and ask(url).status_code == 200
        with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk:
            first = sdk.messages.create(
                model="replay/case:tool_call_kimi_ids", max_tokens=50, messages=USER, tools=tools
            )
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.id.startswith("fccx_")  # Kimi's functions.Bash:0 is not a valid Anthropic id
    rows = usage(config, state, "--by", "session")
    assert rows[0]["session"] == "sess-live" and rows[0]["requests"] == 2  # the SDK call had no session
    with fcc_serve(config, state) as url:
        # The daily quota of 3 continues: one more today, then 429 until midnight UTC.
        assert ask(url).status_code == 200
        refused = ask(url)
        assert refused.status_code == 429, refused.text
        assert "daily quota requests_per_day 3 spent" in refused.json()["error"]["message"]
        assert refused.headers["x-should-retry"] == "false"
        assert 0 < int(refused.headers["retry-after"]) <= 86_400
        board = httpx.get(f"{url}/dashboard/data").json()
        assert board["totals"]["requests"] == 5  # this process served two; the store remembers all
        (quota,) = [q for q in board["quotas"] if q["scope"] == "replay_anthropic"]
        assert (quota["requests"], quota["requests_per_day"]) == (3, 3)
        metrics = httpx.get(f"{url}/metrics").text
        assert 'fcc_quota_used_today{scope="replay_anthropic",kind="requests"} 3' in metrics
        # The tool call made before the restart goes back to the upstream under its own id.
        before = len(live_upstream.upstream.requests)
        with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk:
            sdk.messages.create(
                model="replay/case:text_basic",
                max_tokens=50,
                tools=tools,
                messages=[
                    *USER,
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": call.id, "name": "Bash", "input": {}}],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ok"}],
                    },
                ],
            )
        sent = live_upstream.upstream.requests[before].body["messages"]
        assert sent[-1]["tool_call_id"] == sent[-2]["tool_calls"][0]["id"] == "functions.Bash:0"
    by_day = usage(config, state)
    assert by_day[-1]["requests"] == 6 and by_day[-1]["errors"] == 1


def _limited(tmp_path: Path, live: Live, state: str) -> Path:
    config = replay_config(tmp_path, live.upstream_url, state)
    limits = "    limits: {requests_per_minute: 10}\n"
    text = config.read_text().replace(
        "    local: true\n  replay_anthropic:", f"    local: true\n{limits}  replay_anthropic:"
    )
    config.write_text(text)
    return config


def _burst(urls: list[str], n: int) -> list[int]:
    codes: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        code = ask(urls[i % len(urls)], model="claude-haiku-9").status_code
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def test_a_limit_holds_across_three_workers(tmp_path: Path, live_upstream: Live):
    config = _limited(tmp_path, live_upstream, "")
    state = tmp_path / "state"
    state.mkdir()
    with fcc_serve(config, state, "--workers", "3") as url:
        codes = _burst([url], 24)
        assert codes.count(200) == 10 and codes.count(429) == 14, codes
        # The dashboard and /metrics show all three workers' requests, not one's share.
        board = httpx.get(f"{url}/dashboard/data").json()
        assert board["totals"]["requests"] == 24
        assert (
            'fcc_requests_total{tier="haiku",provider="replay",status="200"} 10'
            in httpx.get(f"{url}/metrics").text
        )


@pytest.fixture
def redis() -> Iterator[redis_server.RedisServer]:
    with redis_server.running() as server:
        yield server


def test_a_limit_holds_across_two_servers_sharing_redis(tmp_path: Path, live_upstream: Live, redis):
    config = _limited(tmp_path, live_upstream, f"state:\n  backend: redis\n  url: {redis.url}\n")
    state = tmp_path / "state"
    state.mkdir()
    with fcc_serve(config, state) as a, fcc_serve(config, state) as b:
        codes = _burst([a, b], 20)
        assert codes.count(200) == 10 and codes.count(429) == 10, codes
        for url in (a, b):
            assert httpx.get(f"{url}/dashboard/data").json()["totals"]["requests"] == 20


def test_redis_going_away_fails_no_request(tmp_path: Path, live_upstream: Live, redis):
    config = replay_config(
        tmp_path, live_upstream.upstream_url, f"state:\n  backend: redis\n  url: {redis.url}\n"
    )
    state = tmp_path / "state"
    state.mkdir()
    with fcc_serve(config, state) as url:
        results: list[int] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                results.append(ask(url).status_code)

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1)
        redis.kill()
        time.sleep(2)
        degraded = httpx.get(f"{url}/dashboard/data").json()["store"]
        restarted = redis_server.start(port=redis.port, workdir=redis.workdir)
        try:
            deadline = time.monotonic() + 20  # the store is tried again every 2 s
            while True:
                time.sleep(0.5)
                healthy = httpx.get(f"{url}/dashboard/data").json()["store"]
                if not healthy["degraded"] or time.monotonic() > deadline:
                    break
            time.sleep(1)  # requests keep being served once it is back
            stop.set()
            for w in workers:
                w.join()
        finally:
            restarted.stop()
    assert results and set(results) == {200}, sorted(set(results))
    assert degraded["degraded"] is True and "Redis" in degraded["message"]
    assert healthy["degraded"] is False


def test_kill_9_mid_stream_leaves_a_store_the_next_start_opens(tmp_path: Path, live_upstream: Live):
    config = replay_config(tmp_path, live_upstream.upstream_url)
    state = tmp_path / "state"
    state.mkdir()
    port = free_port()
    with fcc_serve(config, state, port=port) as url:
        for _ in range(5):
            assert ask(url).status_code == 200
        time.sleep(0.5)  # the last records are written

        def stream() -> None:
            # Cut off by the kill: the client sees the connection drop, as it would.
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    f"{url}/v1/messages",
                    json={
                        "model": "replay/fault:trickle:0.5",
                        "max_tokens": 5,
                        "stream": True,
                        "messages": USER,
                    },
                    timeout=30,
                )

        streams = [threading.Thread(target=stream) for _ in range(3)]
        for s in streams:
            s.start()
        time.sleep(1)
        os.kill(PIDS[url], signal.SIGKILL)
        for s in streams:
            s.join(timeout=10)
    rows = usage(config, state, "--by", "session")
    assert rows and rows[0]["requests"] == 5  # the finished ones; only the three in flight are gone
    with fcc_serve(config, state) as url:
        assert ask(url).status_code == 200
