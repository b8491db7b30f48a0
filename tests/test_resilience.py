"""Faults injected by a real upstream on loopback: what the client sees, that the next
candidate takes over when there is one, that health moves, and that nothing leaks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from tests.conftest import Live, replay_config
from tests.support.grammar import check_grammar, parse_sse
from tests.support.servers import free_port, serve

USER = [{"role": "user", "content": "hi"}]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the fault suite -------------------------------------------------------------------------


@contextlib.contextmanager
def fcc(
    tmp: Path,
    live: Live,
    extra: str = "",
    default: str = "replay/text:primary",
    providers: str = "",
    replay: str = "",
) -> Iterator[tuple[str, object]]:
    """fcc in front of the live upstream: `providers` lines add providers, `replay` lines
    add fields to the replay provider."""
    path = replay_config(tmp, live.upstream_url, extra)
    text = path.read_text().replace(
        "default: replay/text:hello_from_the_test_upstream", f"default: {default}"
    )
    text = text.replace("  replay_anthropic:\n", replay + "  replay_anthropic:\n", 1)
    path.write_text(text.replace("tiers:\n", providers + "tiers:\n", 1))
    app = create_app(load_settings(path), KeyStore(environ={}))
    with serve(app) as url:
        yield url, app.state.fcc


def tasks(state) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(count(), state.loop).result(timeout=5)


def settle(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def established_to(port: int) -> int:
    """TCP connections this process holds open to 127.0.0.1:port (from /proc/net/tcp)."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[2].endswith(f":{port:04X}") and fields[3] == "01":
                count += 1
    return count


DEAD = f"http://127.0.0.1:{free_port()}/v1"
DEAD_PROVIDER = f"""\
  dead:
    display_name: Dead backend
    transport: openai_chat
    base_url: {DEAD}
    auth: none
"""

# fault → (model, status the client sees with no fallback, error type)
BEFORE_CONTENT = {
    "refused": ("dead/x", 529, "overloaded_error"),
    "429": ("replay/status:429", 429, "rate_limit_error"),
    "500": ("replay/status:500", 500, "api_error"),
    "503": ("replay/status:503", 529, "overloaded_error"),
    "529": ("replay/status:529", 529, "overloaded_error"),
    "reset_before": ("replay/fault:reset_before", 500, "api_error"),
    "malformed": ("replay/fault:malformed", 500, "api_error"),
    "slow_first": ("replay/fault:slow_first:3", 504, "timeout_error"),
}
TIMEOUTS = "    timeouts: {first_byte: 0.5, idle: 0.5}\n"


@pytest.mark.parametrize("fault", sorted(BEFORE_CONTENT))
def test_fault_before_content_falls_back(fault: str, tmp_path: Path, live_upstream: Live):
    model, _, _ = BEFORE_CONTENT[fault]
    upstream = live_upstream.upstream
    fallback = "fallbacks:\n  default: [replay/text:rescued]\n"
    with fcc(tmp_path, live_upstream, fallback, default=model, providers=DEAD_PROVIDER, replay=TIMEOUTS) as (
        url,
        state,
    ):
        baseline = tasks(state)
        with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as client:
            msg = client.messages.create(model="any-model", max_tokens=10, messages=USER)
            assert msg.content[0].text == "rescued"
            raw = httpx.post(
                f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "stream": True, "messages": USER}
            )
            assert raw.headers["x-fcc-route"] == "replay/text:rescued"
            check_grammar(parse_sse(raw.text))
        health = httpx.get(f"{url}/health").json()
        assert health["candidates"][model]["recent_failures"] >= 1
        assert settle(lambda: upstream.active == 0), "an upstream stream was left running"
        assert settle(lambda: tasks(state) <= baseline), "fcc left tasks behind"
        assert health["providers"][model.split("/")[0]]["active_streams"] == 0


@pytest.mark.parametrize("fault", sorted(BEFORE_CONTENT))
def test_fault_before_content_without_fallback(fault: str, tmp_path: Path, live_upstream: Live):
    model, status, error_type = BEFORE_CONTENT[fault]
    with fcc(tmp_path, live_upstream, default=model, providers=DEAD_PROVIDER, replay=TIMEOUTS) as (url, _):
        response = httpx.post(
            f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "stream": True, "messages": USER}
        )
        assert response.status_code == status, response.text
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] == error_type
        if fault == "429":
            assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    "model", ["replay/fault:reset_mid", "replay/case:eof_without_done", "replay/fault:hang"]
)
def test_fault_after_content_ends_with_an_error_event(model: str, tmp_path: Path, live_upstream: Live):
    extra = "fallbacks:\n  default: [replay/text:never_used]\n"
    with fcc(tmp_path, live_upstream, extra, default=model, replay=TIMEOUTS) as (url, _state):
        response = httpx.post(
            f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "stream": True, "messages": USER}
        )
        assert response.status_code == 200
        events = parse_sse(response.text)
        check_grammar(events)
        assert [n for n, _ in events][-1] == "error"
        assert any(n == "content_block_delta" for n, _ in events)  # content had already gone out
        assert response.headers["x-fcc-route"] == model
        with (
            anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as client,
            pytest.raises(anthropic.APIStatusError),
        ):
            client.messages.create(model="m", max_tokens=5, messages=USER)
        assert settle(lambda: live_upstream.upstream.active == 0)


def test_trickling_model_gets_pings_and_finishes(tmp_path: Path, live_upstream: Live):
    with fcc(
        tmp_path, live_upstream, "server:\n  ping_interval: 0.1\n", default="replay/fault:trickle:0.3"
    ) as (url, _):
        response = httpx.post(
            f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "stream": True, "messages": USER}
        )
    events = parse_sse(response.text)
    check_grammar(events)
    names = [n for n, _ in events]
    assert names.count("ping") >= 5
    assert (
        "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
        == "one two three four five"
    )


# A trickling upstream writes again soon; a silent one (a model thinking) never does, so only
# fcc's own reaction to the client leaving can stop it. One word a second: at 0.5 s the five
# words were all sent before a starved test process read the first (3 of 6 runs with both
# cores busy, before and after the issue-16 changes alike), and the stream had ended.
@pytest.mark.parametrize("model", ["replay/fault:trickle:1", "replay/fault:hang"])
def test_client_disconnect_cancels_the_upstream_and_frees_the_slot(
    model: str, tmp_path: Path, live_upstream: Live
):
    upstream = live_upstream.upstream
    limit = "    limits: {concurrent_streams: 1}\n"
    with fcc(tmp_path, live_upstream, default=model, replay=limit) as (url, state):
        baseline_tasks = tasks(state)
        before = upstream.active
        with (
            httpx.Client(timeout=10) as client,
            client.stream(
                "POST",
                f"{url}/v1/messages",
                json={"model": "m", "max_tokens": 5, "stream": True, "messages": USER},
            ) as response,
        ):
            for line in response.iter_lines():
                if line.startswith("event: content_block_delta"):
                    # Checked while the client still reads: leaving the loop closes the
                    # generator, and with it httpx's connection, and fcc may cancel the
                    # upstream before the next line runs (it did, under load).
                    assert upstream.active == before + 1
                    break  # the client reads one token and walks away
        assert settle(lambda: upstream.active == before, timeout=3), "the upstream kept generating"
        assert settle(lambda: state.dispatcher.active("replay") == 0), "the stream slot was not released"
        assert settle(lambda: tasks(state) <= baseline_tasks)
        # The freed slot serves the next request at once.
        started = time.monotonic()
        quick = httpx.post(
            f"{url}/v1/messages", json={"model": "replay/text:next", "max_tokens": 5, "messages": USER}
        )
        assert quick.status_code == 200 and time.monotonic() - started < 2


def test_a_client_gone_before_the_first_token_cancels_the_upstream_at_once(
    tmp_path: Path, live_upstream: Live
):
    """The answer waits for its first content in the task that will write it, with the
    client's disconnect watched from the start: a client that gives up on a model still
    thinking frees the upstream and its slot then, not at the next ping (60 s here)."""
    upstream = live_upstream.upstream
    limit = "    limits: {concurrent_streams: 1}\n"
    extra = "server:\n  ping_interval: 60\n"
    with fcc(tmp_path, live_upstream, extra, default="replay/fault:think", replay=limit) as (url, state):
        before = upstream.active
        body = {"model": "m", "max_tokens": 5, "stream": True, "messages": USER}
        with pytest.raises(httpx.ReadTimeout):  # nothing came: the client walks away
            httpx.post(f"{url}/v1/messages", json=body, timeout=httpx.Timeout(10, read=0.5))
        assert upstream.requests[-1].body["model"] == "fault:think"
        assert settle(lambda: upstream.active == before, timeout=3), "the upstream kept thinking"
        assert settle(lambda: state.dispatcher.active("replay") == 0), "the stream slot was not released"


def test_open_circuit_skips_the_failing_candidate(tmp_path: Path, live_upstream: Live):
    upstream = live_upstream.upstream
    extra = "fallbacks:\n  default: [replay/text:rescued]\n"
    with fcc(tmp_path, live_upstream, extra, default="replay/status:500") as (url, _):
        for _ in range(3):
            httpx.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
        sent = len(upstream.requests)
        response = httpx.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
        assert response.json()["content"][0]["text"] == "rescued"
        assert [r.body["model"] for r in upstream.requests[sent:]] == ["text:rescued"]  # 500 not even tried
        health = httpx.get(f"{url}/health").json()["candidates"]["replay/status:500"]
        assert health["state"] == "open" and health["cooldown_left"] > 0


def test_upstream_retry_after_is_honoured(tmp_path: Path, live_upstream: Live):
    upstream = live_upstream.upstream
    extra = "fallbacks:\n  default: [replay/text:rescued]\n"
    with fcc(tmp_path, live_upstream, extra, default="replay/status:429") as (url, _):
        first = httpx.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
        assert first.status_code == 200
        sent = len(upstream.requests)
        httpx.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
        # The provider said "retry after 7 s": fcc does not ask that model again before then,
        # while another model of the same provider still serves.
        assert [r.body["model"] for r in upstream.requests[sent:]] == ["text:rescued"]
        assert httpx.get(f"{url}/health").json()["candidates"]["replay/status:429"]["cooldown_left"] > 5


def test_declared_rate_limit_moves_on_or_answers_429(tmp_path: Path, live_upstream: Live):
    limit = "    limits: {requests_per_minute: 2}\n"
    with fcc(tmp_path, live_upstream, default="replay/text:ok", replay=limit) as (url, _):
        for _ in range(2):
            assert (
                httpx.post(
                    f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER}
                ).status_code
                == 200
            )
        third = httpx.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
        assert third.status_code == 429 and third.json()["error"]["type"] == "rate_limit_error"
        assert 50 <= int(third.headers["retry-after"]) <= 60
    fallback = "fallbacks:\n  default: [replay_anthropic/text:elsewhere]\n"
    with fcc(tmp_path, live_upstream, fallback, default="replay/text:ok", replay=limit) as (url, _):
        for _ in range(2):
            httpx.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
        third = httpx.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
        assert third.json()["content"][0]["text"] == "elsewhere"


def test_concurrency_limit_queues_instead_of_refusing(tmp_path: Path, live_upstream: Live):
    limit = "    limits: {concurrent_streams: 1}\n"
    with fcc(tmp_path, live_upstream, default="replay/fault:trickle:0.2", replay=limit) as (url, _):
        results: list[int] = []

        def call() -> None:
            r = httpx.post(
                f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER}, timeout=30
            )
            results.append(r.status_code)

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [200, 200]


FAULTS = [m for m, _, _ in BEFORE_CONTENT.values()] + [
    "replay/fault:reset_mid",
    "replay/case:eof_without_done",
    "replay/case:error_object_in_stream",
    "replay/text:fine",
]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(st.sampled_from(FAULTS), min_size=3, max_size=8))
def test_any_sequence_of_faults_leaves_a_working_server(
    sequence: list[str], tmp_path: Path, live_upstream: Live
):
    upstream = live_upstream.upstream
    with fcc(tmp_path, live_upstream, providers=DEAD_PROVIDER, replay=TIMEOUTS) as (url, state):
        baseline = tasks(state)
        for model in sequence:
            response = httpx.post(
                f"{url}/v1/messages",
                json={"model": model, "max_tokens": 5, "stream": True, "messages": USER},
                timeout=30,
            )
            assert response.status_code != 500 or response.json()["type"] == "error"
            if response.status_code == 200:
                check_grammar(parse_sse(response.text))
        ok = httpx.post(
            f"{url}/v1/messages", json={"model": "replay/text:still_here", "max_tokens": 5, "messages": USER}
        )
        assert ok.json()["content"][0]["text"] == "still here"
        assert settle(lambda: upstream.active == 0)
        assert settle(lambda: tasks(state) <= baseline)
        assert all(p["active_streams"] == 0 for p in httpx.get(f"{url}/health").json()["providers"].values())
        assert established_to(int(live_upstream.upstream_url.rsplit(":", 1)[1])) <= 64  # the pool's bound


def test_refused_connection_probe_port_is_really_dead():
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(DEAD.split(":")[2].split("/")[0]))) != 0


def test_fcc_models_shows_live_health(tmp_path: Path, live_upstream: Live):
    from typer.testing import CliRunner

    from fcc.cli import app as cli

    port = free_port()
    extra = f"server:\n  port: {port}\nfallbacks:\n  default: [replay/text:rescued]\n"
    path = replay_config(tmp_path, live_upstream.upstream_url, extra)
    path.write_text(
        path.read_text().replace(
            "default: replay/text:hello_from_the_test_upstream", "default: replay/status:503"
        )
    )
    with serve(create_app(load_settings(path), KeyStore(environ={})), port=port) as url:
        httpx.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
        result = CliRunner().invoke(cli, ["models", "--config", str(path), "--json"])
        table = CliRunner().invoke(cli, ["models", "--config", str(path)])
    health = json.loads(result.stdout)["health"]["candidates"]
    assert health["replay/status:503"]["recent_failures"] == 1
    squashed = re.sub(r"[\s│┃|]", "", table.stdout)  # table cells wrap at 80 columns
    assert "Health(live)" in squashed and "closed" in squashed and "overloaded_error" in squashed


def test_a_wait_for_several_busy_backends_takes_one_slot(tmp_path: Path):
    """Two backends, each with one stream slot, both busy: when they free up together, the
    waiting request is given one of them, and the other's slot stays free."""
    from fcc.engine.request.features import features_of
    from fcc.engine.routing.candidates import plan
    from fcc.engine.routing.dispatch import Dispatcher
    from fcc.engine.routing.dispatch import Request as TurnRequest
    from fcc.engine.routing.router import decide
    from fcc.engine.state.memory import MemoryBackend
    from fcc.engine.state.service import StateService

    one = "    limits: {concurrent_streams: 1}\n"
    path = replay_config(tmp_path, "http://127.0.0.1:9", "fallbacks:\n  default: [replay_anthropic/b]\n")
    text = path.read_text().replace("default: replay/text:hello_from_the_test_upstream", "default: replay/a")
    path.write_text(text.replace("    local: true\n", "    local: true\n" + one))
    settings = load_settings(path)
    body = {"model": "m", "max_tokens": 5, "messages": USER}

    async def scenario() -> tuple[int, int]:
        service = StateService(MemoryBackend(), settings.providers)
        await service.start()
        async with httpx.AsyncClient() as client:
            dispatcher = Dispatcher(client, {}, KeyStore(environ={}), service)
            features = features_of(body, {})
            route = decide(features, body, settings)
            request = TurnRequest(body, features, route, plan(route, features), None, None)
            busy = [
                await service.admit(a.candidate.provider, a.candidate.model) for a in request.plan.attempts
            ]
            assert len(busy) == 2 and all(b.wait <= 0 for b in busy)
            schedule = dispatcher._schedule(request)
            assert await anext(schedule) is None  # both refused: the waiting begins
            given = asyncio.ensure_future(anext(schedule))
            await asyncio.sleep(0.1)  # both refused: the request waits
            for b in busy:
                await service.release(b.lease)
            _, lease = await given
            await schedule.aclose()  # it got what it needed: the first attempt answers
            held = sum(u.active_streams for u in await service.usage_now())
            await service.release(lease)
            after = sum(u.active_streams for u in await service.usage_now())
            await service.stop()
        return held, after

    assert asyncio.run(scenario()) == (1, 0)
