"""`python -m bench [--quick] [--no-litellm] [--baseline REF] [--out DIR]`: run it, write RESULTS.md."""

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

from bench import baseline, litellm, micro, procs, profile, report
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
class BaselineResults:
    """What the `fcc@REF` contender measured beyond its load phases (those are in Results.phases)."""

    ref: str
    sha: str
    subject: str
    name: str
    long: Phase | None = None
    cold_start: list[float] = field(default_factory=list)
    rss_hwm_kb: int | None = None
    micro: list[micro.Rate] = field(default_factory=list)
    micro_problem: str = ""


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
    contenders: list[str] = field(default_factory=list)  # in the order they were interleaved
    run_dir: str = "bench/.cache/run"  # logs, raw stacks, results.pickle (as shown in RESULTS.md)
    head: str = ""  # "this commit": HEAD's short sha, and whether fcc's files had uncommitted changes
    baseline: BaselineResults | None = None
    plotted: bool = True  # False: matplotlib is not installed, latency.png was not drawn


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
            raise RuntimeError("the load client exited; see client.log in the run folder")
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


def fcc_argv(config: Path, port: int, exe: str = FCC) -> list[str]:
    # The only CLI surface a --baseline ref is relied on to have: keep it that way.
    return [exe, "serve", "--config", str(config), "--port", str(port)]


def cold_starts(
    config: Path, logs: Path, n: int, env: dict[str, str], exes: dict[str, str]
) -> dict[str, list[float]]:
    """Process start → /health answers, `n` times per fcc build, the builds alternating."""
    out: dict[str, list[float]] = {name: [] for name in exes}
    for i in range(n):
        for name, exe in exes.items():
            port = procs.free_port()
            start = time.perf_counter()
            log = logs / f"{name.replace('/', '_')}-cold-{i}.log"
            proc = procs.spawn(fcc_argv(config, port, exe), log, env=env)
            try:
                procs.wait_http(f"http://127.0.0.1:{port}/health", proc, 30, step=0.005)
                out[name].append(time.perf_counter() - start)
            except RuntimeError as exc:
                if name == "fcc":
                    raise
                print(f"  {name}: a cold start failed: {exc}", file=sys.stderr)
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
        notes.append(f"LiteLLM: could not be started: {exc} (see {shown(run_dir)}/litellm.log)")
        yield None
    finally:
        procs.stop(proc)


def shown(path: Path) -> str:
    """A path as RESULTS.md shows it: relative to the repository when inside it."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(REPO))
    return str(path)


@contextlib.contextmanager
def serving_baseline(
    base: baseline.Baseline | None,
    config: Path,
    run_dir: Path,
    cores: set[int] | None,
    env: dict[str, str],
) -> Iterator[Contender | None]:
    """The ref's `fcc serve`, started exactly like this commit's; BaselineError if it does not answer."""
    if base is None:
        yield None
        return
    port = procs.free_port()
    log = run_dir / "fcc-baseline.log"
    proc = procs.spawn(fcc_argv(config, port, str(base.fcc)), log, cores=cores, env=env)
    try:
        try:
            procs.wait_http(f"http://127.0.0.1:{port}/health", proc, 60)
        except RuntimeError as exc:
            procs.stop(proc)
            tail = baseline.last_line(log.read_text(encoding="utf-8", errors="replace"))
            raise baseline.BaselineError(
                f"--baseline {base.ref} ({base.sha[:12]}): `fcc serve --config` did not start: {exc}; "
                f"its log ends: {tail}"
            ) from None
        yield Contender(base.name, f"http://127.0.0.1:{port}/v1/messages", "anthropic", proc.pid)
    finally:
        procs.stop(proc)


def run(
    plan: Plan,
    with_litellm: bool,
    pinned: bool,
    engine: str,
    run_dir: Path,
    base: baseline.Baseline | None = None,
) -> Results:
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    results = Results(plan, pinned, engine, run_dir=shown(run_dir), head=baseline.head_label(REPO))
    if base is not None:
        results.baseline = BaselineResults(base.ref, base.sha, base.subject, base.name)
    proxy_cores = PROXY_CORES if pinned else None
    load_cores = LOAD_CORES if pinned else None
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
        serving_baseline(base, config, run_dir, proxy_cores, env) as old,
        maybe_litellm(with_litellm, run_dir, up_port, models, plan.tokens, results.notes) as lite,
    ):
        contenders = [
            Contender("direct", f"http://127.0.0.1:{up_port}/v1/chat/completions", "openai", None),
            Contender("fcc", f"http://127.0.0.1:{fcc_port}/v1/messages", "anthropic", fcc_proc.pid),
        ]
        contenders += [c for c in (old, lite) if c is not None]
        results.contenders = [c.name for c in contenders]
        client = Client(workload, run_dir / "client.log", load_cores, engine)
        load0 = {"client": procs.cpu_seconds(client.proc.pid), "upstream": procs.cpu_seconds(up.pid)}
        try:
            for level in plan.levels:
                print(f"concurrency {level.concurrency}: {level.per_contender} requests each", flush=True)
                results.phases += run_level(client, contenders, level, plan.tokens)
            results.fcc_rss_hwm_kb = procs.memory_kb(fcc_proc.pid, "VmHWM")
            if old is not None and results.baseline is not None:
                results.baseline.rss_hwm_kb = procs.memory_kb(old.pid or 0, "VmHWM")
            results.load_cpu = {
                "client": procs.cpu_seconds(client.proc.pid) - load0["client"],
                "upstream": procs.cpu_seconds(up.pid) - load0["upstream"],
            }
            print(f"fcc with {plan.long_tokens}-token answers (marginal CPU per token)", flush=True)
            fcc = contenders[1]
            for build in [fcc] if old is None else [fcc, old]:
                long_phase = Phase(build.name, 16, plan.long_tokens)
                client.batch(build, 16, 16, plan.long_tokens)
                measured(client, build, long_phase, 16, 32)
                if build is fcc:
                    results.fcc_long = long_phase
                elif results.baseline is not None:
                    results.baseline.long = long_phase
            if plan.profile_seconds:
                print(f"profiling fcc with py-spy at c={plan.profile_concurrency}", flush=True)
                results.profile = profile_fcc(client, fcc, plan, run_dir / "fcc-profile.txt")
                if results.profile is None:
                    results.notes.append("py-spy: not available or failed; no profile.")
        finally:
            client.close()

    print("cold starts, fcc check, micro-benchmarks", flush=True)
    exes = {"fcc": FCC} if base is None else {"fcc": FCC, base.name: str(base.fcc)}
    starts = cold_starts(config, run_dir, plan.cold_starts, env, exes)
    results.cold_start = starts["fcc"]
    results.check, results.check_exit = check_runs(plan.check_runs, run_dir, env)
    results.micro = micro.run(plan.micro_budget)
    if base is not None and results.baseline is not None:
        results.baseline.cold_start = starts[base.name]
        rates, problem = baseline.micro_rates(base, plan.micro_budget, BENCH)
        results.baseline.micro = [micro.Rate(*r) for r in rates]
        results.baseline.micro_problem = problem
        results.notes.append(
            f"{base.name} is {base.sha[:12]} ({base.subject}), installed from a git worktree into "
            f"{shown(base.venv)}; `fcc check` is not run for it (only its `fcc serve --config` is relied on)."
        )
    cpu = platform.processor() or platform.machine()
    results.machine = f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"
    results.elapsed = time.perf_counter() - began
    # Other work on the machine skews every figure; the load average is the cheap witness.
    results.notes.append(
        f"Load average (1 min) {load_before:.1f} before the run and {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} cores; the benchmark itself keeps about 2 busy at high concurrency."
    )
    return results


def upgrade(results: Results) -> Results:
    """A results.pickle from before a field existed: give it the field's default."""
    defaults = Results(results.plan, results.pinned, results.engine)
    for name in Results.__dataclass_fields__:
        if not hasattr(results, name):
            setattr(results, name, getattr(defaults, name))
    if not results.contenders:
        results.contenders = list(dict.fromkeys(p.contender for p in results.phases))
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
    parser.add_argument(
        "--no-litellm", dest="with_litellm", action="store_false", help="same as --no-with-litellm"
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run the fcc of git ref REF (its own venv in bench/.cache/baselines/<sha>), "
        "and compare it with this commit in RESULTS.md",
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
        help="re-render RESULTS.md and latency.png from the last run's results.pickle",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where RESULTS.md and latency.png go (default bench/, with --quick bench/.cache/quick, "
        "so a smoke run never overwrites the committed results); outside bench/ the run's logs go to OUT/run",
    )
    args = parser.parse_args(argv)
    out: Path = (args.out or (CACHE / "quick" if args.quick else BENCH)).resolve()
    run_dir = CACHE / "run" if out == BENCH else out / "run"
    saved = run_dir / "results.pickle"
    if args.report_only:
        results = upgrade(pickle.loads(saved.read_bytes()))
        report.write(results, out / "RESULTS.md", out / "latency.png", REPO)
        return 0
    plan = QUICK if args.quick else FULL
    with_litellm = (not args.quick) if args.with_litellm is None else args.with_litellm
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2
    load_fixtures()  # fail early and clearly if the fixtures are missing
    try:
        base = None
        if args.baseline:
            print(f"preparing fcc@{args.baseline} (a venv per commit, installed once) …", flush=True)
            base = baseline.prepare(REPO, CACHE, args.baseline, run_dir / "baseline-install.log")
        results = run(plan, with_litellm, pinned, args.client, run_dir, base)
    except baseline.BaselineError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    saved.write_bytes(pickle.dumps(results))
    out.mkdir(parents=True, exist_ok=True)
    report.write(results, out / "RESULTS.md", out / "latency.png", REPO)
    drawn = f" and {out / 'latency.png'}" if results.plotted else " (no plot: matplotlib is not installed)"
    print(f"wrote {out / 'RESULTS.md'}{drawn} in {results.elapsed:.0f} s")
    return 0
