"""Child processes: start, pin to a core, wait until they answer, read their CPU time and RSS."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

_TICKS = os.sysconf("SC_CLK_TCK")
# Anything that tries to leave the machine goes to a closed loopback port instead.
LOOPBACK_ONLY = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pin(pid: int, cores: set[int] | None) -> None:
    if cores:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, cores)


def spawn(
    argv: Sequence[str],
    log: Path,
    *,
    cores: set[int] | None = None,
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = None,
) -> subprocess.Popen[str]:
    with log.open("w", encoding="utf-8") as handle:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=stdout if stdout is not None else handle,
            stderr=handle,
            env={**os.environ, **LOOPBACK_ONLY, **(env or {})},
            text=True,
        )
    pin(proc.pid, cores)
    return proc


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def wait_http(url: str, proc: subprocess.Popen[str] | None, timeout: float, step: float = 0.01) -> float:
    """Seconds until `url` answers 200; raises RuntimeError if the process dies or time runs out."""
    start = time.perf_counter()
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.perf_counter() - start < timeout:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return time.perf_counter() - start
            time.sleep(step)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def wait_answer(
    url: str,
    body: bytes,
    proc: subprocess.Popen[str] | None,
    timeout: float,
    step: float = 0.005,
    expect: bytes = b"",
) -> float:
    """Seconds until a POST of `body` to `url` is answered 200 (retried while nothing listens);
    RuntimeError if the process dies, time runs out, or the answer is another status or lacks
    `expect` (the upstream's marker: proof the answer went through it)."""
    start = time.perf_counter()
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    with httpx.Client(trust_env=False, timeout=max(timeout, 1.0)) as client:
        while time.perf_counter() - start < timeout:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.TransportError:
                time.sleep(step)
                continue
            took = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
            if expect not in response.content:
                raise RuntimeError(f"{url} answered without {expect!r}: {response.text[:200]}")
            return took
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def settle(pid: int, timeout: float, quiet: float = 0.25, busy: float = 0.02) -> bool:
    """Wait until `pid`'s process tree has used under `busy` CPU-s over `quiet` seconds (its
    processes have finished starting); False if it was still busy after `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    last = cpu_seconds(pid)
    while time.perf_counter() < deadline:
        time.sleep(quiet)
        now = cpu_seconds(pid)
        if now - last < busy:
            return True
        last = now
    return False


def stop(proc: subprocess.Popen[str] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (LiteLLM may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its descendants, in seconds."""
    total = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def memory_kb(pid: int, field: str) -> int:
    """A /proc/PID/status field in kB (VmRSS now, VmHWM the peak), summed over descendants."""
    total = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
    return total


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    log: Path,
    health: str,
    *,
    cores: set[int] | None,
    timeout: float,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[str]]:
    proc = spawn(argv, log, cores=cores, env=env)
    try:
        wait_http(health, proc, timeout)
        yield proc
    finally:
        stop(proc)


def run_tool(
    prefix: str, as_json: bool, measure: Callable[[Path], Any], report: Callable[[Any], None]
) -> None:
    """A bench tool's command line: `measure` in a scratch directory, then its figures as one
    JSON document (what its tests read) or as `report` renders them."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data = measure(Path(tmp))
    if as_json:
        print(json.dumps(data))
    else:
        report(data)
