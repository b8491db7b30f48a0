"""Soak: many concurrent Claude Code-sized streams through `fcc serve` for minutes, with
random faults from the upstream and clients that walk away mid-answer; then check that no
upstream stream, stream slot or connection was left behind and that memory stayed flat.

    .venv/bin/python -m bench.soak [--minutes 6] [--concurrency 48]   → bench/SOAK.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.procs import free_port, memory_kb, python_module, running

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT.parent / "shared" / "fixtures" / "claude-code" / "cc2.1.330-main-tool-turn2-result.json"
# (model, weight): healthy answers dominate, every fault of the resilience suite appears.
MODELS = [
    ("soak/text:a_healthy_answer_of_several_words", 30),
    ("soak/case:tool_call_single", 10),
    ("soak/fault:trickle:0.3", 6),
    ("soak/fault:reset_mid", 4),
    ("soak/fault:reset_before", 4),
    ("soak/fault:malformed", 4),
    ("soak/fault:hang", 3),
    ("soak/status:429", 4),
    ("soak/status:503", 4),
    ("soak/case:eof_without_done", 3),
    ("claude-sonnet-4-5", 10),  # the tier: a failing primary with a fallback
]
WALK_AWAY = 0.1  # share of clients that close the stream after the first token


def config(upstream: str, port: int) -> str:
    return f"""\
server: {{port: {port}, ping_interval: 1}}
providers:
  soak:
    display_name: Soak upstream
    transport: openai_chat
    base_url: {upstream}/v1
    auth: none
    local: true
    timeouts: {{first_byte: 3, idle: 2}}
tiers:
  sonnet: {{model: "soak/status:500", fallbacks: ["soak/text:rescued"]}}
"""


async def worker(client: httpx.AsyncClient, url: str, body: dict, stop_at: float, seen: Counter[str]) -> None:
    models, weights = zip(*MODELS, strict=True)
    while time.monotonic() < stop_at:
        model = random.choices(models, weights)[0]
        payload = {**body, "model": model, "stream": True}
        try:
            async with client.stream("POST", f"{url}/v1/messages", json=payload) as response:
                walk_away = random.random() < WALK_AWAY
                async for line in response.aiter_lines():
                    if walk_away and line.startswith("event: content_block_delta"):
                        seen["walked away"] += 1
                        break
                    if line.startswith("event: error"):
                        seen["stream ended in error"] += 1
                seen[f"HTTP {response.status_code}"] += 1
        except httpx.HTTPError as exc:
            seen[f"client error {type(exc).__name__}"] += 1


def upstream_sockets(port: int) -> int:
    """Established TCP connections to 127.0.0.1:port (only fcc connects to the upstream)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if fields[2].endswith(f":{port:04X}") and fields[3] == "01":
                    count += 1
    return count


async def soak(minutes: float, concurrency: int, out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="fcc-soak-"))
    up_port, fcc_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    fcc = f"http://127.0.0.1:{fcc_port}"
    (work / "config.yaml").write_text(config(upstream, fcc_port))
    body = json.loads(FIXTURE.read_text())["body"]
    seen: Counter[str] = Counter()
    samples: list[tuple[float, int, int, int]] = []  # t, RSS kB, upstream sockets, active streams
    with (
        running(
            python_module("tests.support.upstream", str(up_port)),
            work / "up.log",
            f"{upstream}/stats",
            cores=None,
            timeout=30,
        ) as _,
        running(
            [str(ROOT / ".venv" / "bin" / "fcc"), "serve", "--config", str(work / "config.yaml")],
            work / "fcc.log",
            f"{fcc}/health",
            cores=None,
            timeout=30,
        ) as proc,
    ):
        limits = httpx.Limits(max_connections=concurrency * 2)
        async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as client:
            started = time.monotonic()
            stop_at = started + minutes * 60
            tasks = [
                asyncio.create_task(worker(client, fcc, body, stop_at, seen)) for _ in range(concurrency)
            ]
            while time.monotonic() < stop_at:
                await asyncio.sleep(5)
                health = (await client.get(f"{fcc}/health")).json()
                active = sum(p["active_streams"] for p in health.get("providers", {}).values())
                samples.append(
                    (
                        time.monotonic() - started,
                        memory_kb(proc.pid, "VmRSS"),
                        upstream_sockets(up_port),
                        active,
                    )
                )
            await asyncio.gather(*tasks)
            await asyncio.sleep(8)  # idle: let closes and cancellations settle
            health = (await client.get(f"{fcc}/health")).json()
            stats = (await client.get(f"{upstream}/stats")).json()
            after = (memory_kb(proc.pid, "VmRSS"), upstream_sockets(up_port))
    log_text = (work / "fcc.log").read_text(encoding="utf-8", errors="replace")
    crashes = log_text.count("unexpected error") + log_text.count("Traceback")
    write_report(out, minutes, concurrency, seen, samples, health, stats, after, crashes)


def write_report(
    out: Path,
    minutes: float,
    concurrency: int,
    seen: Counter[str],
    samples: list,
    health: dict,
    stats: dict,
    after: tuple[int, int],
    crashes: int,
) -> None:
    rss = [s[1] / 1024 for s in samples]
    third = max(len(rss) // 3, 1)
    early, late = statistics.median(rss[third : 2 * third] or rss), statistics.median(rss[-third:])
    growth = (late - early) / early * 100
    active_after = sum(p["active_streams"] for p in health.get("providers", {}).values())
    answered = sum(v for k, v in seen.items() if k.startswith("HTTP "))
    served = seen["HTTP 200"] / answered if answered else 0.0
    checks = [
        ("requests answered 200 (the rest: faults the client was told about)", f"{served:.0%}", served > 0.5),
        ("fcc crashes (unexpected errors in its log)", crashes, crashes == 0),
        (
            "upstream streams still running after the soak",
            f"{stats['active']} {stats.get('live') or ''}",
            stats["active"] == 0,
        ),
        ("fcc stream slots still held", active_after, active_after == 0),
        (
            "fcc connections to the upstream after 8 s idle (pool keeps idle ones)",
            after[1],
            after[1] <= concurrency,
        ),
        ("RSS growth, middle third → last third", f"{growth:+.1f}%", abs(growth) < 10),
    ]
    lines = [
        "# fcc soak",
        "",
        f"{minutes:g} min, {concurrency} concurrent streams of Claude Code's recorded tool turn (53 KB), "
        f"random faults from the upstream, {WALK_AWAY:.0%} of clients walking away after the first token. "
        f"Upstream answered {stats['requests']} requests. Regenerate with `python -m bench.soak`.",
        "",
        "| check | value | verdict |",
        "|---|---|---|",
        *[f"| {name} | {value} | {'ok' if ok else '**FAILED**'} |" for name, value, ok in checks],
        "",
        "## What the clients saw",
        "",
        "| outcome | count |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(seen.items())],
        "",
        "## Samples every 5 s",
        "",
        "| t (s) | fcc RSS (MB) | connections to upstream | active streams |",
        "|---|---|---|---|",
        *[f"| {t:.0f} | {r / 1024:.1f} | {c} | {a} |" for t, r, c, a in samples],
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines[: 10 + len(checks)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=6.0)  # long enough to see RSS level off
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "SOAK.md")
    args = parser.parse_args()
    asyncio.run(soak(args.minutes, args.concurrency, args.out))


if __name__ == "__main__":
    main()
