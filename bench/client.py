"""The load client, in its own process: `python -m bench.client WORKLOAD.json`.

Reads one JSON command per line on stdin, runs that batch, answers one JSON line on stdout:
  {"url": ..., "shape": "anthropic"|"openai", "tokens": 100, "concurrency": 16, "requests": 64,
   "engine": "raw"|"httpx"}
→ {"wall": seconds, "records": [[ok, start, ttft, total, tokens], ...]}
`concurrency` workers each send the next request as soon as their last one ended (closed loop).
Tokens are counted by the upstream's marker in the raw bytes, never by parsing JSON. The
default engine is bench/rawhttp.py; "httpx" runs the same load through httpx.AsyncClient.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.rawhttp import MARKER, Endpoint

Record = tuple[bool, float, float, float, int]
Send = Callable[[int, bytes, dict[str, str]], Awaitable[tuple[bool, float, float, int]]]


async def httpx_request(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> tuple[bool, float, float, int]:
    start = time.perf_counter()
    first, count, ok, tail = -1.0, 0, False, b""
    try:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            async for chunk in response.aiter_raw():
                found = (tail + chunk).count(MARKER)
                if found:
                    if first < 0:
                        first = time.perf_counter() - start
                    count += found
                tail = chunk[-1:]
            ok = response.status_code == 200
    except httpx.HTTPError:
        ok = False
    return ok, first, time.perf_counter() - start, count


class Load:
    def __init__(self, workload: dict[str, Any]) -> None:
        self._workload = workload
        self._endpoints: dict[str, Endpoint] = {}
        self._httpx: httpx.AsyncClient | None = None

    def _sender(self, url: str, engine: str) -> Send:
        if engine == "httpx":
            if self._httpx is None:
                self._httpx = httpx.AsyncClient(
                    limits=httpx.Limits(max_connections=1024, max_keepalive_connections=1024),
                    timeout=httpx.Timeout(300.0),
                    trust_env=False,
                )
            client = self._httpx
            return lambda _slot, body, headers: httpx_request(client, url, body, headers)
        if url not in self._endpoints:
            self._endpoints[url] = Endpoint(url)
        return self._endpoints[url].request

    async def batch(self, command: dict[str, Any]) -> dict[str, Any]:
        shape: str = command["shape"]
        payloads = [b.encode() for b in self._workload[shape][str(command["tokens"])]]
        headers = [
            {**(h if shape == "anthropic" else {}), "content-type": "application/json", "x-api-key": "bench"}
            for h in self._workload["headers"]
        ]
        send = self._sender(command["url"], command.get("engine", "raw"))
        total = int(command["requests"])
        records: list[Record] = []
        taken = 0
        origin = time.perf_counter()

        async def worker(slot: int) -> None:
            nonlocal taken
            while taken < total:
                k = taken % len(payloads)
                taken += 1
                start = time.perf_counter() - origin
                ok, first, spent, tokens = await send(slot, payloads[k], headers[k])
                records.append((ok, start, first, spent, tokens))

        await asyncio.gather(*(worker(i) for i in range(int(command["concurrency"]))))
        return {"wall": time.perf_counter() - origin, "records": records}

    async def aclose(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()
        if self._httpx is not None:
            await self._httpx.aclose()


async def serve(workload: dict[str, Any]) -> None:
    load = Load(workload)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            result = await load.batch(json.loads(line))
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
    finally:
        await load.aclose()


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        workload = json.load(f)
    asyncio.run(serve(workload))


if __name__ == "__main__":
    main()
