"""`python -m bench [--quick] [--with-litellm/--no-litellm]`: run everything, write RESULTS.md."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import litellm, micro, procs, profile, report
from bench.plan import FULL, QUICK, Level, Plan
from bench.stats import Phase
from bench.workload import REPO, fcc_config, load_fixtures, write_workload

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
FCC = str(Path(sys.executable).parent / "fcc")
# Two cores: the proxy under test gets one, the load client and the upstream share the other.
PROXY_CORES = {0}
LOAD_CORES = {1}


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    url: str
    shape: str  # the body the client sends: "anthropic" (Claude Code's) or "openai" (fcc's output)
    pid: int | None  # the proxy process, for CPU and memory; None for direct


@dataclass
class Results:
    plan: Plan
    pinned: bool
    engine: str
    phases: list[Phase] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fcc_long: Phase | None = None
    cold_start: list[float] = field(default_factory=list)
    check: list[float] = field(default_factory=list)
    check_exit: int | None = None
    micro: list[micro.Rate] = field(default_factory=list)
    profile: profile.Profile | None = None
    fcc_rss_hwm_kb: int | None = None
    load_cpu: dict[str, float] = field(default_factory=dict)
    machine: str = ""
    elapsed: float = 0.0


class Client:
    """The load client process: one JSON command in, one JSON result out."""

    def __init__(self, workload: Path, log: Path, cores: set[int] | None, engine: str) -> None:
        self.engine = engine
        self.proc = procs.spawn(
            procs.python_module("bench.client", str(workload)),
            log,
            cores=cores,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def batch(self, contender: Contender, concurrency: int, requests: int, tokens: int) -> dict[str, Any]:
        command = {
            "url": contender.url,
            "shape": contender.shape,
            "tokens": tokens,
            "concurrency": concurrency,
            "requests": requests,
            "engine": self.engine,
        }
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the load client exited; see its log in bench/.cache/run/")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            procs.stop(self.proc)


def measured(client: Client, contender: Contender, phase: Phase, concurrency: int, requests: int) -> None:
    cpu0 = procs.cpu_seconds(contender.pid) if contender.pid else None
    result = client.batch(contender, concurrency, requests, phase.expected_tokens)
    if contender.pid:
        assert cpu0 is not None
        phase.cpu = (phase.cpu or 0.0) + procs.cpu_seconds(contender.pid) - cpu0
        rss = procs.memory_kb(contender.pid, "VmRSS")
        phase.rss_peak_kb = max(phase.rss_peak_kb or 0, rss)
    phase.wall += result["wall"]
    phase.records += [tuple(r) for r in result["records"]]


def run_level(client: Client, contenders: list[Contender], level: Level, tokens: int) -> list[Phase]:
    phases = {c.name: Phase(c.name, level.concurrency, tokens) for c in contenders}
    warm = min(level.concurrency, 16)
    for c in contenders:  # warm-up: connections open, caches filled; not measured
        client.batch(c, warm, warm, tokens)
    for r in range(level.rounds):
        shift = r % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            measured(client, c, phases[c.name], level.concurrency, level.concurrency * level.per_worker)
        print(f"  c={level.concurrency} round {r + 1}/{level.rounds} done", flush=True)
    return list(phases.values())


def profile_fcc(client: Client, fcc: Contender, plan: Plan, out: Path) -> profile.Profile | None:
    spy = profile.record(fcc.pid or 0, plan.profile_seconds, out)
    if spy is None:
        return None
    c = plan.profile_concurrency
    time.sleep(0.5)  # let py-spy attach before the load starts
    while spy.poll() is None:
        client.batch(fcc, c, c, plan.tokens)
    if spy.returncode != 0:
        print(f"  py-spy failed: {spy.stderr.read() if spy.stderr else ''}", file=sys.stderr)
    return profile.summarize(out)


def fcc_argv(config: Path, port: int) -> list[str]:
    return [FCC, "serve", "--config", str(config), "--port", str(port)]


def cold_starts(config: Path, logs: Path, n: int, env: dict[str, str]) -> list[float]:
    out = []
    for i in range(n):
        port = procs.free_port()
        start = time.perf_counter()
        proc = procs.spawn(fcc_argv(config, port), logs / f"fcc-cold-{i}.log", env=env)
        try:
            procs.wait_http(f"http://127.0.0.1:{port}/health", proc, 30, step=0.005)
            out.append(time.perf_counter() - start)
        finally:
            procs.stop(proc)
    return out


def check_runs(n: int, logs: Path, env: dict[str, str]) -> tuple[list[float], int | None]:
    out, code = [], None
    for _ in range(n):
        start = time.perf_counter()
        with (logs / "fcc-check.log").open("w") as log:
            code = subprocess.run(
                [FCC, "check"], stdout=log, stderr=log, env={**os.environ, **env}
            ).returncode
        out.append(time.perf_counter() - start)
    return out, code


@contextlib.contextmanager
def maybe_litellm(
    enabled: bool, run_dir: Path, upstream_port: int, models: list[str], tokens: int, notes: list[str]
) -> Iterator[Contender | None]:
    if not enabled:
        notes.append("LiteLLM: not run (--quick or --no-litellm).")
        yield None
        return
    print("installing LiteLLM proxy (once; ~1.5 min) …", flush=True)
    problem = litellm.install(CACHE, run_dir / "litellm-install.log")
    if problem:
        notes.append(f"LiteLLM: could not be installed: {problem}")
        yield None
        return
    port = procs.free_port()
    config = run_dir / "litellm.yaml"
    litellm.write_config(config, upstream_port, models, tokens)
    argv = litellm.argv(CACHE, config, port)
    proc = procs.spawn(argv, run_dir / "litellm.log", cores=PROXY_CORES, env=litellm.ENV)
    try:
        started = procs.wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, 180, step=0.1)
        notes.append(f"LiteLLM {litellm.VERSION}: started in {started:.1f} s (one worker process).")
        yield Contender("litellm", f"http://127.0.0.1:{port}/v1/messages", "anthropic", proc.pid)
    except RuntimeError as exc:
        notes.append(f"LiteLLM: could not be started: {exc} (see bench/.cache/run/litellm.log)")
        yield None
    finally:
        procs.stop(proc)


def run(plan: Plan, with_litellm: bool, pinned: bool, engine: str) -> Results:
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    results = Results(plan, pinned, engine)
    proxy_cores = PROXY_CORES if pinned else None
    load_cores = LOAD_CORES if pinned else None
    run_dir = CACHE / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="fcc-bench-home-"))
    env = {"XDG_CONFIG_HOME": str(home)}  # never the developer's own config or keys

    up_port, fcc_port = procs.free_port(), procs.free_port()
    upstream_argv = procs.python_module(
        "bench.upstream",
        f"--port={up_port}",
        f"--ttft-ms={plan.ttft_ms}",
        f"--interval-ms={plan.interval_ms}",
        f"--tokens={plan.tokens}",
    )
    config = run_dir / "fcc.yaml"
    config.write_text(fcc_config(up_port, plan.tokens), encoding="utf-8")
    workload = run_dir / "workload.json"
    fixtures = write_workload(workload, config, plan.tokens, plan.long_tokens)
    models = [f.body["model"] for f in fixtures]
    health = f"http://127.0.0.1:{up_port}/health"

    with (
        procs.running(upstream_argv, run_dir / "upstream.log", health, cores=load_cores, timeout=30) as up,
        procs.running(
            fcc_argv(config, fcc_port),
            run_dir / "fcc.log",
            f"http://127.0.0.1:{fcc_port}/health",
            cores=proxy_cores,
            timeout=60,
            env=env,
        ) as fcc_proc,
        maybe_litellm(with_litellm, run_dir, up_port, models, plan.tokens, results.notes) as lite,
    ):
        contenders = [
            Contender("direct", f"http://127.0.0.1:{up_port}/v1/chat/completions", "openai", None),
            Contender("fcc", f"http://127.0.0.1:{fcc_port}/v1/messages", "anthropic", fcc_proc.pid),
        ]
        if lite is not None:
            contenders.append(lite)
        client = Client(workload, run_dir / "client.log", load_cores, engine)
        load0 = {"client": procs.cpu_seconds(client.proc.pid), "upstream": procs.cpu_seconds(up.pid)}
        try:
            for level in plan.levels:
                print(f"concurrency {level.concurrency}: {level.per_contender} requests each", flush=True)
                results.phases += run_level(client, contenders, level, plan.tokens)
            results.fcc_rss_hwm_kb = procs.memory_kb(fcc_proc.pid, "VmHWM")
            results.load_cpu = {
                "client": procs.cpu_seconds(client.proc.pid) - load0["client"],
                "upstream": procs.cpu_seconds(up.pid) - load0["upstream"],
            }
            print(f"fcc with {plan.long_tokens}-token answers (marginal CPU per token)", flush=True)
            fcc = contenders[1]
            long_phase = Phase("fcc", 16, plan.long_tokens)
            client.batch(fcc, 16, 16, plan.long_tokens)
            measured(client, fcc, long_phase, 16, 32)
            results.fcc_long = long_phase
            if plan.profile_seconds:
                print(f"profiling fcc with py-spy at c={plan.profile_concurrency}", flush=True)
                results.profile = profile_fcc(client, fcc, plan, run_dir / "fcc-profile.txt")
                if results.profile is None:
                    results.notes.append("py-spy: not available or failed; no profile.")
        finally:
            client.close()

    print("cold starts, fcc check, micro-benchmarks", flush=True)
    results.cold_start = cold_starts(config, run_dir, plan.cold_starts, env)
    results.check, results.check_exit = check_runs(plan.check_runs, run_dir, env)
    results.micro = micro.run(plan.micro_budget)
    cpu = platform.processor() or platform.machine()
    results.machine = f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"
    results.elapsed = time.perf_counter() - began
    # Other work on the machine skews every figure; the load average is the cheap witness.
    results.notes.append(
        f"Load average (1 min) {load_before:.1f} before the run and {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} cores; the benchmark itself keeps about 2 busy at high concurrency."
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="fcc's benchmark")
    parser.add_argument("--quick", action="store_true", help="a smoke run under a minute (CI)")
    parser.add_argument(
        "--with-litellm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure LiteLLM's proxy (default: on in the full run, off with --quick)",
    )
    parser.add_argument("--no-pin", action="store_true", help="let the OS place processes on cores")
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="the load client's HTTP engine (default raw: bench/rawhttp.py, cheapest per chunk)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-render RESULTS.md and latency.png from the last run's bench/.cache/run/results.pickle",
    )
    parser.add_argument("--out", type=Path, default=BENCH, help="where RESULTS.md and latency.png go")
    args = parser.parse_args(argv)
    saved = CACHE / "run" / "results.pickle"
    if args.report_only:
        results = pickle.loads(saved.read_bytes())
        report.write(results, args.out / "RESULTS.md", args.out / "latency.png", REPO)
        return 0
    plan = QUICK if args.quick else FULL
    with_litellm = (not args.quick) if args.with_litellm is None else args.with_litellm
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2
    load_fixtures()  # fail early and clearly if the fixtures are missing
    results = run(plan, with_litellm, pinned, args.client)
    saved.write_bytes(pickle.dumps(results))
    args.out.mkdir(parents=True, exist_ok=True)
    report.write(results, args.out / "RESULTS.md", args.out / "latency.png", REPO)
    print(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'latency.png'} in {results.elapsed:.0f} s")
    return 0
