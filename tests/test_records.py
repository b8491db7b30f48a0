"""A request's record: its wire form (what the stores keep) and the JSON-lines file."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from fcc.engine.state.records import JsonLines, record_from_wire
from tests.conftest import Live, replay_config
from tests.support.records import record
from tests.support.servers import serve


def test_json_lines_file_rotates(tmp_path: Path):
    path = tmp_path / "logs" / "requests.jsonl"
    log = JsonLines(path, max_bytes=2000)
    for i in range(20):
        log.write(record(t=1_700_000_000.0 + i).wire())
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


def test_a_record_survives_its_wire_form():
    original = record(skipped=("big/one: vision: no",), rule="screenshots", attempts=("a/x", "b/y"))
    assert record_from_wire(json.loads(json.dumps(original.wire()))) == original


def test_a_store_that_cannot_take_records_does_not_repeat_them_in_the_log(tmp_path: Path):
    import asyncio

    from fcc.engine.state.memory import MemoryBackend
    from fcc.engine.state.service import StateService
    from fcc.engine.state.store import StoreError

    class Away(MemoryBackend):
        async def write(self, batch):  # type: ignore[no-untyped-def]
            raise StoreError("the store is away")

    path = tmp_path / "requests.jsonl"

    async def scenario() -> int:
        service = StateService(Away(), {}, request_log=JsonLines(path, max_bytes=1 << 20))
        await service.start()
        for i in range(5):
            service.add(record(t=1_700_000_000.0 + i))
            await service._flush_now()  # each flush finds the store away and keeps the batch
        waiting = len(service._pending.records)
        await service.stop()
        return waiting

    assert asyncio.run(scenario()) == 5  # kept for the store, all of them
    times = [json.loads(line)["time"] for line in path.read_text().splitlines()]
    assert len(times) == 5 and len(set(times)) == 5  # and each in the log once
