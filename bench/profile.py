"""py-spy on the running `fcc serve`: collapsed stacks → top frames and where the time goes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# First match wins: a frame's file decides which part of the stack it is charged to.
_BUCKETS = (
    ("fcc/engine/translate/", "fcc translate (SSE decode, chunk → events, encode)"),
    ("fcc/engine/server/", "fcc server (route handler, Pump, sse_body)"),
    ("fcc/engine/transports/", "fcc transport loop (stream_turn)"),
    ("fcc/engine/dispatch", "fcc dispatch"),
    ("fcc/engine/state/", "fcc state store (admission, records; SQLite's C time lands here)"),
    ("redis/", "redis client (redis-py)"),
    ("fcc/", "fcc other"),
    ("json/", "json (stdlib; C encoder/decoder time lands here)"),
    ("h11/", "h11 (HTTP/1.1 parsing, both sides)"),
    ("httpcore/", "httpcore (upstream connection pool)"),
    ("httpx/", "httpx (upstream client)"),
    ("uvicorn/", "uvicorn (server protocol)"),
    ("starlette/", "starlette (routing, middleware, StreamingResponse)"),
    ("anyio/", "anyio (cancel scopes, task groups)"),
    ("asyncio/", "asyncio (event loop, tasks, transports, syscalls)"),
    ("selectors.py", "asyncio (event loop, tasks, transports, syscalls)"),
)
# The state store's code, in-process: what --stores charges to each backend.
STORE_PATHS = ("fcc/engine/state/", "redis/", "sqlite3/")
# Frames up to the event loop's callback runner are the same in every sample: not interesting.
_LOOP_FRAME = "Handle._run"


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    self_top: list[tuple[str, float]]  # frame, share of samples with it on top
    inclusive_top: list[tuple[str, float]]  # frame, share of samples with it anywhere
    buckets: list[tuple[str, float]]  # part of the stack, share of leaf samples
    key: list[tuple[str, str, float]]  # (what it is, frame, inclusive share) for KEY_FRAMES present
    store_share: float = 0.0  # share of samples with a state-store frame anywhere in the stack
    store_top: list[tuple[str, float]] = field(default_factory=list)  # store frames, inclusive share


# fcc's own steps, per request and per chunk: their inclusive share says what each one costs.
KEY_FRAMES = (
    ("per request", "create_app.<locals>.messages", "route handler up to the first event"),
    ("per request", "create_app.<locals>.read_json", "read + json.loads the 50-90 KB body"),
    ("per request", "find_probe", "probe matching on the body"),
    ("per request", "OpenAIChat.build", "to_openai: Anthropic → OpenAI request"),
    ("per request", "BaseClient.build_request", "httpx builds the request (json.dumps of the body)"),
    ("per request", "AsyncClient.send", "httpx sends it and waits for headers"),
    ("per request", "AsyncConnectionPool._assign_requests_to_connections", "httpcore pool bookkeeping"),
    ("per chunk", "Response.aiter_bytes", "httpx/httpcore/h11 read of the upstream body"),
    ("per chunk", "SSEDecoder.feed", "SSE decode"),
    ("per chunk", "_Lines.feed", "json.loads + OpenAIStreamTranslator.feed"),
    ("per chunk", "Pump.next", "Pump: a task + asyncio.wait per event"),
    ("per chunk", "encode", "Anthropic event → SSE bytes"),
    ("per chunk", "StreamingResponse.stream_response", "Starlette → uvicorn → h11 → socket write"),
)


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


def record(pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen[str] | None:
    exe = py_spy()
    if exe is None:
        return None
    argv = [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate)]
    argv += ["--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _frame(text: str) -> tuple[str, str]:
    """py-spy raw frames read "function (path/to/file.py:123)": (function, short path)."""
    name, _, where = text.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return name, path


def _bucket(path: str) -> str:
    for prefix, label in _BUCKETS:
        if path.startswith(prefix):
            return label
    return "other (python runtime, logging, …)"


def summarize(path: Path, top: int = 15) -> Profile | None:
    if not path.exists():
        return None
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    store: Counter[str] = Counter()
    store_samples = 0
    samples = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";") if " (" in f]
        if not frames or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        labels = [f"{name} ({where})" for name, where in frames]
        self_counts[labels[-1]] += count
        buckets[_bucket(frames[-1][1])] += count
        below = next((i + 1 for i, (name, _) in enumerate(frames) if name == _LOOP_FRAME), len(frames))
        for label in set(labels[below:]):
            incl_counts[label] += count
        in_store = {
            label for label, (_, where) in zip(labels, frames, strict=True) if where.startswith(STORE_PATHS)
        }
        if in_store:
            store_samples += count
            for label in in_store:
                store[label] += count
    if not samples:
        return None

    def share(c: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, v / samples) for k, v in c.most_common(n)]

    key = []
    for kind, function, meaning in KEY_FRAMES:
        hits = [(label, n) for label, n in incl_counts.items() if label.split(" (")[0] == function]
        if hits:
            label, n = max(hits, key=lambda h: h[1])
            key.append((f"{kind}: {meaning}", label, n / samples))
    return Profile(
        samples,
        share(self_counts, top),
        share(incl_counts, top),
        share(buckets, len(buckets)),
        key,
        store_samples / samples,
        share(store, 8),
    )
