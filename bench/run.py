"""`python -m bench [--quick] [--no-litellm] [--stores] [--baseline REF] [--out DIR]`: write RESULTS.md."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import awake, baseline, litellm, micro, procs, profile, relay, report, stores
from bench.plan import FULL, QUICK, Level, Plan
from bench.stats import Phase, rotated
from bench.workload import BENCH_LIMITS, REPO, fcc_config, load_fixtures, write_workload

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
FCC = str(Path(sys.executable).parent / "fcc")
# Two cores: the proxy under test gets one, the load client and the upstream share the other.
PROXY_CORES = {0}
LOAD_CORES = {1}
# The first request after `fcc serve` starts: small, not streamed, a one-token answer from the
# bench's upstream (its marker `~q` proves it went there; no probe answers "Say hi.").
FIRST_REQUEST = json.dumps(
    {
        "model": "bench/tokens-1",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "Say hi."}],
    }
).encode()


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    url: str
    shape: str  # the body the client sends: "anthropic" (Claude Code's) or "openai" (fcc's output)
    pid: int | None  # the proxy process, for CPU and memory; None for direct
    side_pid: int | None = None  # a helper whose CPU is read beside it (fcc (redis)'s redis-server)
    levels: tuple[int, ...] | None = None  # the concurrencies it runs at (None: every level)


@dataclass
class BaselineResults:
    """What the `fcc@REF` contender measured beyond its load phases (those are in Results.phases)."""

    ref: str
    sha: str
    subject: str
    name: str
    long: Phase | None = None
    cold_start: list[float] = field(default_factory=list)
    first_answer: list[float] = field(default_factory=list)  # start → first POST /v1/messages answered
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
    # `fcc serve` start → the first POST /v1/messages answered (FIRST_REQUEST), per start
    first_answer: list[float] = field(default_factory=list)
    first_answer_problem: str = ""
    # The same, for bench/floor.py: the libraries fcc starts on, with none of fcc's own code
    floor_first_answer: list[float] = field(default_factory=list)
    check: list[float] = field(default_factory=list)
    check_exit: int | None = None
    micro: list[micro.Rate] = field(default_factory=list)
    profile: profile.Profile | None = None
    fcc_rss_hwm_kb: int | None = None
    load_cpu: dict[str, float] = field(default_factory=dict)
    machine: str = ""
    elapsed: float = 0.0
    finished: str = ""  # when the run ended, "YYYY-MM-DD HH:MM" ("" in a pickle from before)
    contenders: list[str] = field(default_factory=list)  # in the order they were interleaved
    run_dir: str = "bench/.cache/run"  # logs, raw stacks, results.pickle (as shown in RESULTS.md)
    head: str = ""  # "this commit": HEAD's short sha, and whether fcc's files had uncommitted changes
    baseline: BaselineResults | None = None
    plotted: bool = True  # False: matplotlib is not installed, latency.png was not drawn
    # --stores: the fcc contenders per state-store backend (contender → backend, memory included)
    stores: dict[str, str] = field(default_factory=dict)
    stores_requested: bool = False
    store_skipped: dict[str, str] = field(default_factory=dict)  # contender → why it did not run
    store_notes: list[str] = field(default_factory=list)  # where each store lived
    store_long: dict[str, Phase] = field(default_factory=dict)  # long answers of fcc (sqlite), fcc (redis)
    # Per fcc build, each interleaved round of long answers: (CPU seconds, requests).
    long_rounds: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    store_profiles: dict[str, profile.Profile] = field(default_factory=dict)
    # bench/store_micro.py: one admission in-process per store and scenario (its JSON rows)
    store_micro: list[dict[str, Any]] = field(default_factory=list)
    store_micro_problem: str = ""
    baseline_config: str = ""  # which config the --baseline ref accepted
    # `fcc serve --workers N` on a shared sqlite store: its contender's name ("" if it did not run)
    workers_name: str = ""
    workers_skipped: str = ""  # why it did not run
    workers_note: str = ""  # its store, its cores
    workers_rss_hwm_kb: int | None = None  # VmHWM summed over its process tree after the load
    # c=1 with and without the proxy's core kept awake (bench/awake.py); None: from before it
    core_awake: awake.Awake | None = None
    # The request bodies the client sent, per shape ("anthropic", "openai"): (min, mean, max) in KB
    body_kb: dict[str, tuple[float, float, float]] = field(default_factory=dict)


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
    side0 = procs.cpu_seconds(contender.side_pid) if contender.side_pid else None
    result = client.batch(contender, concurrency, requests, phase.expected_tokens)
    if contender.side_pid:
        assert side0 is not None
        phase.side_cpu = (phase.side_cpu or 0.0) + procs.cpu_seconds(contender.side_pid) - side0
    if contender.pid:
        assert cpu0 is not None
        phase.cpu = (phase.cpu or 0.0) + procs.cpu_seconds(contender.pid) - cpu0
        rss = procs.memory_kb(contender.pid, "VmRSS")
        phase.rss_peak_kb = max(phase.rss_peak_kb or 0, rss)
    phase.wall += result["wall"]
    phase.records += [tuple(r) for r in result["records"]]


def run_level(client: Client, contenders: list[Contender], level: Level, tokens: int) -> list[Phase]:
    contenders = [c for c in contenders if c.levels is None or level.concurrency in c.levels]
    phases = {c.name: Phase(c.name, level.concurrency, tokens) for c in contenders}
    warm = min(level.concurrency, 16)
    for c in contenders:  # warm-up: connections open, caches filled; not measured
        client.batch(c, warm, warm, tokens)
    for r in range(level.rounds):
        for c in rotated(contenders, r):
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
    logs: Path, n: int, env: dict[str, str], builds: dict[str, tuple[str, Path]]
) -> dict[str, list[float]]:
    """Process start → /health answers, `n` times per fcc build (exe, config), the builds alternating."""
    out: dict[str, list[float]] = {name: [] for name in builds}
    for i in range(n):
        for name, (exe, config) in builds.items():
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


FLOOR = "floor"  # first_answers' name for bench/floor.py
SPEED_LOOP = 1_000_000
FAST_PATH = ("uvicorn", "starlette", "httpx", "uvloop", "httptools", "msgspec", "typer")


def machine_speed() -> float:
    """Seconds for a fixed pure-Python loop, the best of five: a gauge of how fast this machine
    runs fcc's kind of code right now, for comparing runs of different days."""
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        total = 0
        for i in range(SPEED_LOOP):
            total += i
        best = min(best, time.perf_counter() - start)
    return best


def libraries() -> str:
    """The versions of the libraries fcc's speed depends on, as installed for this run."""
    from importlib import metadata

    found = []
    for name in FAST_PATH:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def first_answers(
    logs: Path,
    n: int,
    env: dict[str, str],
    builds: dict[str, tuple[str, Path]],
    floor_upstream: str | None = None,
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Process start → the first POST /v1/messages answered (FIRST_REQUEST, sent from the moment
    the process starts until something listens), `n` times per fcc build (exe, config), and for
    bench/floor.py against `floor_upstream` (…/v1) if given, all alternating; and per build the
    last failure, if any."""
    names = [*builds, *([FLOOR] if floor_upstream else [])]
    out: dict[str, list[float]] = {name: [] for name in names}
    problems: dict[str, str] = {}
    for i in range(n):
        for name in names:
            port = procs.free_port()
            log = logs / f"{name.replace('/', '_')}-first-{i}.log"
            if name == FLOOR:
                argv = procs.python_module("bench.floor", f"--port={port}", f"--upstream={floor_upstream}")
            else:
                exe, config = builds[name]
                argv = fcc_argv(config, port, exe)
            start = time.perf_counter()
            proc = procs.spawn(argv, log, env=env)
            try:
                url = f"http://127.0.0.1:{port}/v1/messages"
                procs.wait_answer(url, FIRST_REQUEST, proc, 30, expect=b"~q")
                out[name].append(time.perf_counter() - start)
            except RuntimeError as exc:
                problems[name] = f"{exc} (see {shown(log)})"
                print(f"  {name}: a first request after start failed: {exc}", file=sys.stderr)
            finally:
                procs.stop(proc)
    return out, problems


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
    configs: list[tuple[Path, str]],
    run_dir: Path,
    cores: set[int] | None,
    env: dict[str, str],
    chosen: list[tuple[Path, str]] | None = None,
) -> Iterator[Contender | None]:
    """The ref's `fcc serve`, started exactly like this commit's with the first of `configs`
    (path, what it is) that it accepts — an older fcc may know no `state:` or no `limits:`;
    the one taken is appended to `chosen`. BaselineError if it answers with none of them."""
    if base is None:
        yield None
        return
    log = run_dir / "fcc-baseline.log"
    proc, problem = None, ""
    for config, what in configs:
        port = procs.free_port()
        proc = procs.spawn(fcc_argv(config, port, str(base.fcc)), log, cores=cores, env=env)
        try:
            procs.wait_http(f"http://127.0.0.1:{port}/health", proc, 60)
        except RuntimeError as exc:
            procs.stop(proc)
            tail = baseline.last_line(log.read_text(encoding="utf-8", errors="replace"))
            problem = f"{exc}; its log ends: {tail}"
            proc = None
            continue
        if chosen is not None:
            chosen.append((config, what))
        break
    if proc is None:
        raise baseline.BaselineError(
            f"--baseline {base.ref} ({base.sha[:12]}): `fcc serve --config` did not start: {problem}"
        )
    try:
        yield Contender(base.name, f"http://127.0.0.1:{port}/v1/messages", "anthropic", proc.pid)
    finally:
        procs.stop(proc)


def serving_fcc(
    stack: contextlib.ExitStack,
    name: str,
    config: Path,
    log: Path,
    cores: set[int] | None,
    env: dict[str, str],
    side_pid: int | None = None,
) -> Contender:
    """This commit's `fcc serve` with `config`, stopped when `stack` closes."""
    port = procs.free_port()
    health = f"http://127.0.0.1:{port}/health"
    proc = stack.enter_context(
        procs.running(fcc_argv(config, port), log, health, cores=cores, timeout=60, env=env)
    )
    return Contender(name, f"http://127.0.0.1:{port}/v1/messages", "anthropic", proc.pid, side_pid)


def serving_relay(
    stack: contextlib.ExitStack, up_port: int, run_dir: Path, cores: set[int] | None
) -> Contender:
    """bench/relay.py in front of the upstream, pinned like fcc: the same OpenAI request and
    stream as "direct", through one more process that does no work (stopped when `stack` closes).
    The upstream answers any GET with 200, so /health is answered through the relay."""
    port = procs.free_port()
    argv = procs.python_module("bench.relay", f"--port={port}", f"--upstream-port={up_port}")
    health = f"http://127.0.0.1:{port}/health"
    proc = stack.enter_context(procs.running(argv, run_dir / "relay.log", health, cores=cores, timeout=30))
    return Contender(relay.CONTENDER, f"http://127.0.0.1:{port}/v1/chat/completions", "openai", proc.pid)


def worker_cores(n: int) -> set[int]:
    """The cores for `fcc serve --workers n` when pinned: n cores apart from the load's if the
    machine has them, else the proxy's and the load's (on 2 cores, its second worker shares
    core 1 with the client and the upstream: what a second process can get there)."""
    free = sorted(set(os.sched_getaffinity(0)) - LOAD_CORES)
    return set(free[:n]) if len(free) >= n else PROXY_CORES | LOAD_CORES


def workers_contender(
    stack: contextlib.ExitStack,
    results: Results,
    home: Path,
    run_dir: Path,
    up_port: int,
    pinned: bool,
    env: dict[str, str],
) -> Contender | None:
    """`fcc serve --workers N` on a shared sqlite store (a fresh file in the run's temporary
    folder), run at the plan's workers_levels only; None, and the reason in the results, if it
    does not start."""
    plan = results.plan
    name = f"fcc ×{plan.workers} workers"  # noqa: RUF001 (the multiplication sign is meant)
    db = home / "fcc-workers.db"
    config = run_dir / "fcc-workers.yaml"
    state = {"backend": "sqlite", "path": str(db)}
    config.write_text(fcc_config(up_port, plan.tokens, state, BENCH_LIMITS), encoding="utf-8")
    cores = worker_cores(plan.workers) if pinned else None
    port = procs.free_port()
    argv = [*fcc_argv(config, port), "--workers", str(plan.workers)]
    log = run_dir / "fcc-workers.log"
    try:
        proc = stack.enter_context(
            procs.running(argv, log, f"http://127.0.0.1:{port}/health", cores=cores, timeout=60, env=env)
        )
    except RuntimeError as exc:
        results.workers_skipped = (
            f"`fcc serve --workers {plan.workers}` did not start: {exc} (see {shown(log)})"
        )
        results.notes.append(f"{name}: skipped: {results.workers_skipped}.")
        return None
    # /health answered: one worker is up. Its siblings start alongside; wait until the whole
    # tree is idle (each worker done importing and listening), then the warm-up batches follow.
    settled = procs.settle(proc.pid, 20)
    results.workers_name = name
    where = f"pinned to cores {', '.join(map(str, sorted(cores)))}" if cores else "not pinned"
    results.workers_note = (
        f"`{name}`: `fcc serve --workers {plan.workers}` with `state: {{backend: sqlite, path: {db}}}` "
        f"(a store the workers share; memory is refused with workers), {where}; run at "
        + ", ".join(f"c={c}" for c in plan.workers_levels)
        + ". Its CPU and RSS are summed over its process tree (the supervisor, the workers, "
        "multiprocessing's resource tracker)."
        + ("" if settled else " Its workers were still busy 20 s after /health answered.")
    )
    return Contender(
        name, f"http://127.0.0.1:{port}/v1/messages", "anthropic", proc.pid, levels=plan.workers_levels
    )


def skip(results: Results, name: str, why: str) -> None:
    results.store_skipped[name] = why
    results.notes.append(f"{name}: skipped: {why}.")


def store_contenders(
    stack: contextlib.ExitStack,
    results: Results,
    home: Path,
    run_dir: Path,
    up_port: int,
    cores: set[int] | None,
    env: dict[str, str],
) -> tuple[list[Contender], str | None]:
    """--stores: fcc (sqlite) and, when redis-server is here, fcc (redis), and the server's URL;
    the reason in results.store_skipped if not."""
    tokens = results.plan.tokens
    out = []
    db = home / "fcc-bench.db"
    config = run_dir / "fcc-sqlite.yaml"
    config.write_text(fcc_config(up_port, tokens, {"backend": "sqlite", "path": str(db)}, BENCH_LIMITS))
    try:
        out.append(serving_fcc(stack, stores.SQLITE, config, run_dir / "fcc-sqlite.log", cores, env))
    except RuntimeError as exc:
        why = f"`fcc serve` did not start: {exc} (see {shown(run_dir)}/fcc-sqlite.log)"
        skip(results, stores.SQLITE, why)
    else:
        results.stores[stores.SQLITE] = "sqlite"
        fs = ""
        with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
            fs = subprocess.run(
                ["df", "--output=fstype", str(home)], capture_output=True, text=True, timeout=5, check=False
            ).stdout.split()[-1]
        results.store_notes.append(
            f"{stores.SQLITE}: `state: {{backend: sqlite, path: {db}}}` (a fresh file in the run's "
            f"temporary folder{f', on {fs}' if fs else ''}; WAL, synchronous=NORMAL as fcc sets them)."
        )
    missing = stores.redis_missing()
    if missing:
        skip(results, stores.REDIS, missing)
        return out, None
    try:
        server = stack.enter_context(stores.redis_server(run_dir, cores))
    except RuntimeError as exc:
        skip(results, stores.REDIS, f"{exc} (see {shown(run_dir)}/redis-server.log)")
        return out, None
    config = run_dir / "fcc-redis.yaml"
    config.write_text(fcc_config(up_port, tokens, {"backend": "redis", "url": server.url}, BENCH_LIMITS))
    log = run_dir / "fcc-redis.log"
    try:
        out.append(serving_fcc(stack, stores.REDIS, config, log, cores, env, server.proc.pid))
    except RuntimeError as exc:
        skip(results, stores.REDIS, f"`fcc serve` did not start: {exc} (see {shown(log)})")
        return out, server.url
    results.stores[stores.REDIS] = "redis"
    where = "pinned with fcc to core 0" if cores else "not pinned"
    results.store_notes.append(
        f"{stores.REDIS}: `state: {{backend: redis, url: {server.url}}}`, redis-server {server.version} "
        f'started by the bench (`--save "" --appendonly no`, {where}), stopped by pid at the end; '
        "its CPU is shown apart from fcc's."
    )
    return out, server.url


def store_micro(
    results: Results, home: Path, run_dir: Path, redis_url: str | None, cores: set[int] | None
) -> None:
    """bench/store_micro.py on the proxy's core, in its own process: a change to fcc's state
    internals then costs this one table (its problem is shown), never the run."""
    argv = procs.python_module(
        "bench.store_micro", "--json", f"--dir={home}", f"--reps={results.plan.store_reps}"
    )
    if redis_url and stores.REDIS in results.stores:
        argv.append(f"--redis={redis_url}")
    log = run_dir / "store-micro.log"
    proc = procs.spawn(argv, log, cores=cores, stdout=subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        procs.stop(proc)
        results.store_micro_problem = "it did not finish within 300 s"
        return
    if proc.returncode != 0:
        tail = baseline.last_line(log.read_text(encoding="utf-8", errors="replace"))
        results.store_micro_problem = f"exited with {proc.returncode}: {tail}"
        return
    with contextlib.suppress(ValueError, IndexError):
        results.store_micro = json.loads(out.strip().splitlines()[-1])
        return
    results.store_micro_problem = "unreadable output"


def run(
    plan: Plan,
    with_litellm: bool,
    pinned: bool,
    engine: str,
    run_dir: Path,
    base: baseline.Baseline | None = None,
    with_stores: bool = False,
) -> Results:
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    speed_before = machine_speed()
    results = Results(plan, pinned, engine, run_dir=shown(run_dir), head=baseline.head_label(REPO))
    results.stores_requested = with_stores
    if base is not None:
        results.baseline = BaselineResults(base.ref, base.sha, base.subject, base.name)
    proxy_cores = PROXY_CORES if pinned else None
    load_cores = LOAD_CORES if pinned else None
    run_dir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="fcc-bench-home-"))
    # Never the developer's own config, keys or state store.
    env = {"XDG_CONFIG_HOME": str(home), "XDG_STATE_HOME": str(home / "state")}
    try:
        cores = (proxy_cores, load_cores)
        _run(results, plan, with_litellm, engine, run_dir, base, with_stores, home, env, cores)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    cpu = platform.processor() or platform.machine()
    results.machine = f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()} ({libraries()})"
    results.notes.append(
        f"The machine's speed, a pure-Python loop of {SPEED_LOOP:,} additions on one core (ms, best of "
        f"5): {speed_before * 1000:.0f} before the run, {machine_speed() * 1000:.0f} after. On this kind of "
        "VM it has moved by 2x within one session: compare runs by it, and by the baseline's figures."
    )
    results.elapsed = time.perf_counter() - began
    results.finished = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    # Other work on the machine skews every figure; the load average is the cheap witness.
    results.notes.append(
        f"Load average (1 min) {load_before:.1f} before the run and {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} cores; the benchmark itself keeps about 2 busy at high concurrency."
    )
    return results


def _run(
    results: Results,
    plan: Plan,
    with_litellm: bool,
    engine: str,
    run_dir: Path,
    base: baseline.Baseline | None,
    with_stores: bool,
    home: Path,
    env: dict[str, str],
    cores: tuple[set[int] | None, set[int] | None],  # the proxy's, the client's and upstream's
) -> None:
    proxy_cores, load_cores = cores
    up_port = procs.free_port()
    upstream_argv = procs.python_module(
        "bench.upstream",
        f"--port={up_port}",
        f"--ttft-ms={plan.ttft_ms}",
        f"--interval-ms={plan.interval_ms}",
        f"--tokens={plan.tokens}",
    )
    # "fcc" says its store: memory, as every run before the store existed had it.
    config = run_dir / "fcc.yaml"
    config.write_text(fcc_config(up_port, plan.tokens, {"backend": "memory"}, BENCH_LIMITS), encoding="utf-8")
    # An older fcc (--baseline) may know no `state:` (or no `limits:`): it takes the first it accepts.
    no_state, plain = run_dir / "fcc-no-state.yaml", run_dir / "fcc-plain.yaml"
    no_state.write_text(fcc_config(up_port, plan.tokens, None, BENCH_LIMITS), encoding="utf-8")
    plain.write_text(fcc_config(up_port, plan.tokens), encoding="utf-8")
    base_configs = [
        (config, "this commit's: `state: {backend: memory}` and the provider's limits"),
        (no_state, "without `state:` (it has no store), with the provider's limits"),
        (plain, "without `state:` and without the provider's limits (it knows neither)"),
    ]
    base_chosen: list[tuple[Path, str]] = []
    workload = run_dir / "workload.json"
    fixtures = write_workload(workload, config, plan.tokens, plan.long_tokens, plan.awake_tokens)
    models = [f.body["model"] for f in fixtures]
    results.body_kb = body_sizes(workload, plan.tokens)
    health = f"http://127.0.0.1:{up_port}/health"

    with contextlib.ExitStack() as stack:
        up = stack.enter_context(
            procs.running(upstream_argv, run_dir / "upstream.log", health, cores=load_cores, timeout=30)
        )
        relayed = serving_relay(stack, up_port, run_dir, proxy_cores)
        fcc = serving_fcc(stack, "fcc", config, run_dir / "fcc.log", proxy_cores, env)
        store_cs: list[Contender] = []
        redis_url = None
        if with_stores:
            store_cs, redis_url = store_contenders(stack, results, home, run_dir, up_port, proxy_cores, env)
            results.stores = {stores.MEMORY: "memory", **results.stores}
        workers = None
        if plan.workers > 1 and set(plan.workers_levels) & {lv.concurrency for lv in plan.levels}:
            workers = workers_contender(stack, results, home, run_dir, up_port, results.pinned, env)
        old = stack.enter_context(
            serving_baseline(base, base_configs, run_dir, proxy_cores, env, base_chosen)
        )
        lite = stack.enter_context(
            maybe_litellm(with_litellm, run_dir, up_port, models, plan.tokens, results.notes)
        )
        contenders = [
            Contender("direct", f"http://127.0.0.1:{up_port}/v1/chat/completions", "openai", None),
            relayed,
            fcc,
            *store_cs,
        ]
        contenders += [c for c in (workers, old, lite) if c is not None]
        results.contenders = [c.name for c in contenders]
        client = Client(workload, run_dir / "client.log", load_cores, engine)
        load0 = {"client": procs.cpu_seconds(client.proc.pid), "upstream": procs.cpu_seconds(up.pid)}
        try:
            for level in plan.levels:
                print(f"concurrency {level.concurrency}: {level.per_contender} requests each", flush=True)
                results.phases += run_level(client, contenders, level, plan.tokens)
            results.fcc_rss_hwm_kb = procs.memory_kb(fcc.pid or 0, "VmHWM")
            results.core_awake = keep_awake(client, [contenders[0], relayed, fcc], plan, proxy_cores, run_dir)
            if workers is not None:
                results.workers_rss_hwm_kb = procs.memory_kb(workers.pid or 0, "VmHWM")
            if old is not None and results.baseline is not None:
                results.baseline.rss_hwm_kb = procs.memory_kb(old.pid or 0, "VmHWM")
            results.load_cpu = {
                "client": procs.cpu_seconds(client.proc.pid) - load0["client"],
                "upstream": procs.cpu_seconds(up.pid) - load0["upstream"],
            }
            builds = [fcc, *store_cs, *([old] if old is not None else [])]
            print(f"fcc with {plan.long_tokens}-token answers (marginal CPU per token)", flush=True)
            longs = long_answers(client, builds, plan, results.long_rounds)
            results.fcc_long = longs[fcc.name]
            results.store_long = {c.name: longs[c.name] for c in store_cs}
            if old is not None and results.baseline is not None:
                results.baseline.long = longs[old.name]
            if with_stores:
                print("one admission per state store, in-process (bench/store_micro.py)", flush=True)
                store_micro(results, home, run_dir, redis_url, proxy_cores)
            if plan.profile_seconds:
                print(f"profiling fcc with py-spy at c={plan.profile_concurrency}", flush=True)
                results.profile = profile_fcc(client, fcc, plan, run_dir / "fcc-profile.txt")
                if results.profile is None:
                    results.notes.append("py-spy: not available or failed; no profile.")
                for c in store_cs if results.profile is not None else []:
                    print(f"profiling {c.name} with py-spy at c={plan.profile_concurrency}", flush=True)
                    out = run_dir / f"fcc-profile-{results.stores[c.name]}.txt"
                    found = profile_fcc(client, c, plan, out)
                    if found is not None:
                        results.store_profiles[c.name] = found
        finally:
            client.close()

    if base_chosen:
        results.baseline_config = base_chosen[0][1]
    print("cold starts, fcc check, micro-benchmarks", flush=True)
    # pip compiles an installed fcc's bytecode (the baseline's venv has it); this editable
    # checkout, where PYTHONDONTWRITEBYTECODE is set, would compile every changed module at
    # every start instead. Compiled here as an install would have it.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "fcc")], check=False, stdout=subprocess.DEVNULL
    )
    builds_cold = {"fcc": (FCC, config)}
    if base is not None:
        builds_cold[base.name] = (str(base.fcc), base_chosen[0][0] if base_chosen else config)
    # The load's processes are stopped; the first requests need an upstream: the same one again,
    # on the same port (the configs name it), alone on the load's core.
    with procs.running(upstream_argv, run_dir / "upstream-cold.log", health, cores=load_cores, timeout=30):
        starts = cold_starts(run_dir, plan.cold_starts, env, builds_cold)
        floor_upstream = f"http://127.0.0.1:{up_port}/v1"
        answered, problems = first_answers(run_dir, plan.cold_starts, env, builds_cold, floor_upstream)
    results.cold_start = starts["fcc"]
    results.first_answer = answered["fcc"]
    results.floor_first_answer = answered[FLOOR]
    results.first_answer_problem = problems.get("fcc", "")
    for name, problem in problems.items():
        started = "bench/floor.py" if name == FLOOR else "`fcc serve`"
        results.notes.append(f"{name}: a first request after {started} started failed: {problem}.")
    results.check, results.check_exit = check_runs(plan.check_runs, run_dir, env)
    results.micro = micro.run(plan.micro_budget)
    if base is not None and results.baseline is not None:
        results.baseline.cold_start = starts[base.name]
        results.baseline.first_answer = answered[base.name]
        rates, problem = baseline.micro_rates(base, plan.micro_budget, BENCH)
        results.baseline.micro = [micro.Rate(*r) for r in rates]
        results.baseline.micro_problem = problem
        results.notes.append(
            f"{base.name} is {base.sha[:12]} ({base.subject}), installed from a git worktree into "
            f"{shown(base.venv)}; `fcc check` is not run for it (only its `fcc serve --config` is "
            f"relied on). Its config: {results.baseline_config}."
        )


def keep_awake(
    client: Client, contenders: list[Contender], plan: Plan, cores: set[int] | None, run_dir: Path
) -> awake.Awake:
    """The c=1 batches again, with the proxy's core idle between steps as in the load phases and
    kept awake by a SCHED_IDLE spinner (bench/awake.py), interleaved."""
    problem = awake.unavailable(cores)
    if problem or not plan.awake.rounds:
        return awake.Awake(problem=problem or "not in this plan")
    assert cores is not None
    print(
        f"c=1 with the proxy's core kept awake or not: {plan.awake.per_contender} requests each, "
        f"{plan.awake_tokens}-token answers",
        flush=True,
    )

    def batch(contender: Contender, phase: Phase) -> None:
        measured(client, contender, phase, 1, plan.awake.per_worker)

    named = [(c.name, c) for c in contenders]
    try:
        return awake.run(batch, named, cores, plan.awake.rounds, plan.awake_tokens, run_dir / "spinner.log")
    except OSError as exc:  # SCHED_IDLE refused (a sandbox's seccomp policy): the run goes on
        return awake.Awake(problem=f"the spinner could not be set up ({exc})")


def long_answers(
    client: Client, builds: list[Contender], plan: Plan, rounds_out: dict[str, list[tuple[float, int]]]
) -> dict[str, Phase]:
    """Every fcc build with long answers at c=16, interleaved round by round like the load phases
    (for the marginal CPU per token); each round's (CPU s, requests) per build goes to `rounds_out`."""
    longs = {b.name: Phase(b.name, 16, plan.long_tokens) for b in builds}
    for b in builds:  # warm-up, not measured
        client.batch(b, 16, 16, plan.long_tokens)
    for r in range(plan.long_rounds):
        for b in rotated(builds, r):
            phase = longs[b.name]
            cpu0, n0 = phase.cpu or 0.0, len(phase.records)
            measured(client, b, phase, 16, plan.long_requests)
            rounds_out.setdefault(b.name, []).append(((phase.cpu or 0.0) - cpu0, len(phase.records) - n0))
    return longs


def body_sizes(workload: Path, tokens: int) -> dict[str, tuple[float, float, float]]:
    """(min, mean, max) KB of the request bodies per shape, as the client sends them."""
    bodies = json.loads(workload.read_text(encoding="utf-8"))
    out = {}
    for shape in ("anthropic", "openai"):
        sizes = [len(b.encode()) / 1024 for b in bodies[shape][str(tokens)]]
        out[shape] = (min(sizes), sum(sizes) / len(sizes), max(sizes))
    return out


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
    parser.add_argument(
        "--stores",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run fcc with its sqlite and redis state stores (fcc itself runs with memory) and "
        "report what each costs against memory (default: on in the full run, off with --quick)",
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
    with_stores = (not args.quick) if args.stores is None else args.stores
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2
    load_fixtures()  # fail early and clearly if the fixtures are missing
    try:
        base = None
        if args.baseline:
            print(f"preparing fcc@{args.baseline} (a venv per commit, installed once) …", flush=True)
            base = baseline.prepare(REPO, CACHE, args.baseline, run_dir / "baseline-install.log")
        results = run(plan, with_litellm, pinned, args.client, run_dir, base, with_stores)
    except baseline.BaselineError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    saved.write_bytes(pickle.dumps(results))
    out.mkdir(parents=True, exist_ok=True)
    report.write(results, out / "RESULTS.md", out / "latency.png", REPO)
    drawn = f" and {out / 'latency.png'}" if results.plotted else " (no plot: matplotlib is not installed)"
    print(f"wrote {out / 'RESULTS.md'}{drawn} in {results.elapsed:.0f} s")
    return 0
