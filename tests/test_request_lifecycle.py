"""What a request holds while it waits for its first token, and that holding less changes
nothing a backend sees: the parsed body is dropped once the upstream request is built (a
fallback parses the client's bytes again), and the dispatcher's quick first steps run in the
route handler's own task (routing/dispatch.py, server/edge.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.request.features import features_of
from fcc.engine.routing.candidates import plan
from fcc.engine.routing.dispatch import Request
from fcc.engine.routing.router import decide
from fcc.engine.server import create_app
from fcc.engine.server.edge import Pump
from tests.conftest import FIXTURES, Live, replay_config
from tests.support.servers import serve

TURN = json.loads((FIXTURES / "cc2.1.330-main-tool-turn2-result.json").read_text())["body"]


CLIENT = json.dumps({**TURN, "model": "claude-fcc-test"}).encode()  # no family: the default tier


def request_for(tmp_path: Path, upstream_url: str, extra: str, raw: bytes | None) -> Request:
    settings = load_settings(replay_config(tmp_path, upstream_url, extra))
    body = json.loads(CLIENT)
    features = features_of(body, {})
    route = decide(features, body, settings)
    return Request(body, features, route, plan(route, features), None, None, raw)


FALLBACK = "fallbacks:\n  default: [replay/text:second]\n"


def test_a_built_request_drops_its_body_and_a_fallback_parses_the_bytes_again(tmp_path, live_upstream):
    raw = bytearray(CLIENT)  # as the server read it
    request = request_for(tmp_path, live_upstream.upstream_url, FALLBACK, raw)
    assert len(request.plan.attempts) == 2
    first = request.for_attempt()
    assert first == json.loads(raw)
    request.built()
    assert first == {}  # the parsed body is gone, for everyone who held it
    assert request.for_attempt() == json.loads(raw)  # the next candidate's, from the bytes
    request.release()
    assert request.raw is None and request.body == {}


def test_without_the_bytes_a_body_another_candidate_needs_stays(tmp_path, live_upstream):
    request = request_for(tmp_path, live_upstream.upstream_url, FALLBACK, None)
    request.built()
    assert request.for_attempt()["messages"] == TURN["messages"]


def test_with_one_candidate_the_body_goes_without_bytes_to_parse(tmp_path, live_upstream):
    request = request_for(tmp_path, live_upstream.upstream_url, "", None)
    assert len(request.plan.attempts) == 1
    request.built()
    assert request.body == {}


@pytest.mark.parametrize("second", ["replay/text:second", "replay_anthropic/text:second"])
def test_a_fallback_sends_what_the_backend_would_get_first_hand(
    second: str, tmp_path: Path, live_upstream: Live
):
    """The first candidate fails after its request was built (so the parsed body was dropped):
    the second gets, from the client's bytes parsed again, exactly the request it gets when it
    is the only candidate — on either transport."""
    upstream = live_upstream.upstream
    sent = {**TURN, "model": "claude-fcc-test", "max_tokens": 64, "stream": True}

    def upstream_body(rule: str) -> dict[str, Any]:
        path = replay_config(tmp_path, live_upstream.upstream_url, f"routes:\n  - name: r\n    use: {rule}\n")
        before = len(upstream.requests)
        with serve(create_app(load_settings(path), KeyStore(environ={}))) as url:
            response = httpx.post(f"{url}/v1/messages", json=sent, timeout=30)
            assert response.status_code == 200, response.text
            assert response.headers["x-fcc-route"] == second
        return upstream.requests[-1].body if len(upstream.requests) > before else {}

    first_hand = upstream_body(f"[{second}]")
    fallen_back = upstream_body(f"[replay/status:500, {second}]")
    assert fallen_back == first_hand
    assert len(json.dumps(first_hand)) > 20_000  # the whole recorded turn went through


def test_the_whole_walk_runs_in_the_callers_task():
    """Pump: everything up to the first empty batch runs in the caller's task (so a request's
    parsed body is dropped before other requests' handlers run), and so does the wait after
    it: the first content wakes the task that writes it, no other."""
    tasks: dict[str, asyncio.Task[Any] | None] = {}
    go = asyncio.Event()

    async def walk() -> AsyncGenerator[list[Any], None]:
        tasks["built"] = asyncio.current_task()
        yield []  # the request is out: waiting begins
        tasks["waited"] = asyncio.current_task()
        await go.wait()
        yield ["first"]
        yield []  # an empty batch later is skipped
        yield ["second"]

    async def scenario() -> tuple[list[Any], list[Any], list[Any], asyncio.Task[Any] | None]:
        pump = Pump(walk())
        first = await pump.begin()
        assert tasks["built"] is asyncio.current_task() and "waited" not in tasks
        asyncio.get_running_loop().call_later(0.02, go.set)
        got = await pump.pull()
        after = await pump.pull()
        await pump.aclose()
        return first, got, after, asyncio.current_task()

    first, got, after, caller = asyncio.run(scenario())
    assert first == []
    assert got == ["first"] and after == ["second"]
    assert tasks["waited"] is caller


def test_an_answer_from_a_model_the_doctor_found_unreachable_clears_that_finding(tmp_path, live_upstream):
    """AppState.trust: the finding is over once the model answers; the router stops trying it
    last, and the store keeps the new verdict (the others are left as they were)."""
    from fcc.engine.routing.dispatch import TurnRecord
    from fcc.engine.routing.evidence import NAMESPACE
    from fcc.engine.server.state import AppState
    from fcc.engine.state.memory import MemoryBackend
    from fcc.engine.state.service import StateService

    settings = load_settings(replay_config(tmp_path, live_upstream.upstream_url))
    down = {
        "verdict": "broken",
        "checked": 1.0,
        "checks": {"reach": {"ok": False, "kind": "unreachable", "detail": "refused"}},
    }
    fine = {"verdict": "works", "checked": 1.0, "checks": {"reach": {"ok": True}}}

    async def scenario() -> tuple[bool, bool, dict[str, str]]:
        service = StateService(MemoryBackend(), settings.providers)
        await service.start()
        service.keep(NAMESPACE, {"replay/a": json.dumps(down), "replay/b": json.dumps(fine)}, 3600)
        await asyncio.sleep(0.05)
        state = AppState(settings=settings, keys=KeyStore(environ={}), state=service)
        await state.learn()
        before = state.findings["replay/a"].reach_failed is not None
        record = TurnRecord(requested="m", tier=None)
        record.served_by = "replay/a"
        state.finish(record, 200)
        after = state.findings["replay/a"].reach_failed is not None
        await asyncio.sleep(0.05)
        kept = await service.get(NAMESPACE)
        await service.stop()
        return before, after, kept

    before, after, kept = asyncio.run(scenario())
    assert before and not after
    assert json.loads(kept["replay/a"])["checks"]["reach"]["ok"] is True
    assert json.loads(kept["replay/b"]) == fine


def test_a_streamed_answer_writes_its_body_to_the_servers_own_send():
    """EventStream: the response's start goes through the send Starlette's error handling
    wraps (it must know the answer has begun); every write after it goes to the server's own
    send, which the application keeps in the scope (server/app.py)."""
    from fcc.engine.server.edge import SERVER_SEND, EventStream
    from fcc.engine.translate.events import MessageStart, MessageStop, Usage

    wrapped: list[dict[str, Any]] = []
    server: list[dict[str, Any]] = []

    async def walk() -> AsyncGenerator[list[Any], None]:
        yield [MessageStop()]

    async def scenario() -> None:
        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()  # the client stays
            return {}

        async def via_wrappers(message: dict[str, Any]) -> None:
            wrapped.append(message)

        async def to_server(message: dict[str, Any]) -> None:
            server.append(message)

        pump = Pump(walk())
        first = await pump.begin()
        start = MessageStart("msg_1", "m", Usage(3, 1))
        stream = EventStream(first, pump, 30.0, start, _Answered())
        await stream({"type": "http", SERVER_SEND: to_server}, receive, via_wrappers)

    asyncio.run(scenario())
    assert [m["type"] for m in wrapped] == ["http.response.start"]
    assert [m["type"] for m in server] == ["http.response.body", "http.response.body"]
    assert b"message_stop" in server[0]["body"] and server[-1]["more_body"] is False


class _Answered:
    """edge.Answer for a stream that is never refused."""

    def __init__(self) -> None:
        self.ended: list[int | None] = []

    def headers(self) -> dict[str, str]:
        return {}

    def refused(self, exc: Exception | None) -> Any:
        raise AssertionError(f"refused: {exc}")

    def done(self, status: int | None) -> None:
        self.ended.append(status)
