"""`--stores`: fcc once per state-store backend, and the redis-server the redis one talks to.

Every fcc contender names its store in its config: "fcc" keeps `state: {backend: memory}` (so
its figures compare with runs from before the store existed), "fcc (sqlite)" a file in the
run's temporary folder, "fcc (redis)" a redis-server this module starts on a free loopback
port and stops by its pid. All of them declare the same limits on the bench's provider
(workload.BENCH_LIMITS), so every attempt runs a real admission.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import procs

MEMORY = "fcc"  # the memory store's contender keeps the name every earlier run used
SQLITE = "fcc (sqlite)"
REDIS = "fcc (redis)"
STORES = {MEMORY: "memory", SQLITE: "sqlite", REDIS: "redis"}  # contender → backend


@dataclass(frozen=True, slots=True)
class RedisServer:
    url: str
    proc: subprocess.Popen[str]
    version: str


def redis_missing() -> str | None:
    """Why the redis contender cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (no `redis-server` on PATH)"
    if importlib.util.find_spec("redis") is None:
        return "the Python package `redis` is not installed in fcc's venv (`pip install -e '.[redis]'`)"
    return None


def _version(exe: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, check=False)
        for word in done.stdout.split():
            if word.startswith("v="):
                return word[2:]
    return "unknown version"


def ping(port: int, timeout: float = 1.0) -> bool:
    """One inline PING: True if the server at 127.0.0.1:`port` answered +PONG."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")
    return False


def wait_redis(port: int, proc: subprocess.Popen[str], timeout: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode} before answering PING")
        if ping(port):
            return time.perf_counter() - start
        time.sleep(0.01)
    raise RuntimeError(f"redis-server did not answer PING within {timeout:.0f}s")


@contextlib.contextmanager
def redis_server(run_dir: Path, cores: set[int] | None) -> Iterator[RedisServer]:
    """A throwaway redis-server on a free loopback port: nothing saved, stopped by pid at the end.
    RuntimeError if it does not answer."""
    exe = shutil.which("redis-server")
    assert exe is not None, "check redis_missing() first"
    port = procs.free_port()
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(run_dir)]  # should it write anything after all, it lands in the run folder
    proc = procs.spawn(argv, run_dir / "redis-server.log", cores=cores)
    try:
        wait_redis(port, proc, 15)
        yield RedisServer(f"redis://127.0.0.1:{port}/0", proc, _version(exe))
    finally:
        procs.stop(proc)
