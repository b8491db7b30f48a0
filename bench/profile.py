"""py-spy on the running `fcc serve`: collapsed stacks → top frames and where the time goes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

UVLOOP = "uvloop (its event loop in C: epoll, callbacks, socket I/O)"
# First match wins: the innermost frame's file decides which part of the code a sample is
# charged to. A rule is a path prefix ("aiohttp/"), or a prefix and a file's basename
# ("fcc/…/wire.py": fcc's wire.py wherever it sits, fcc/engine/wire.py or fcc/engine/translate/). C extensions
# (msgspec, aiohttp's and httptools' parsers, uvloop, sqlite3) have no Python frames: their time
# lands on the Python line that called them, hence the labels.
_BUCKETS = (
    ("fcc/…/wire.py", "msgspec via fcc's wire.py (JSON parse and encode; msgspec's C time lands here)"),
    ("msgspec/", "msgspec via fcc's wire.py (JSON parse and encode; msgspec's C time lands here)"),
    ("fcc/engine/translate/", "fcc translate (SSE decode, chunk → events, encode)"),
    ("fcc/…/edge.py", "fcc EventStream and Pump (edge.py: the client-side SSE stream, pings)"),
    ("fcc/engine/server/", "fcc server (route handler, body read, app state, records)"),
    ("fcc/…/h1.py", "fcc HTTP/1.1 upstream leg (h1.py: pool, reads; httptools' C parser lands here)"),
    ("fcc/…/aio.py", "fcc aiohttp transport (aio.py: httpx's interface over aiohttp; fcc before h1.py)"),
    ("fcc/…/transports/http.py", "fcc transport loop (stream_turn, the Silence watchdog)"),
    ("fcc/engine/transports/", "fcc adapters (upstream request, chunk reader)"),
    ("fcc/engine/routing/", "fcc routing and dispatch"),
    ("fcc/engine/dispatch", "fcc routing and dispatch"),  # before fcc/engine/routing/ existed
    ("fcc/engine/state/", "fcc state store (admission, records; SQLite's C time lands here)"),
    ("redis/", "redis client (redis-py)"),
    ("fcc/", "fcc other (request features, probes, catalog)"),
    ("json/", "json (stdlib; C encoder/decoder time lands here)"),
    ("aiohttp/", "aiohttp (upstream pool, streams; its C HTTP parser lands here)"),
    ("aiohappyeyeballs/", "aiohttp (upstream pool, streams; its C HTTP parser lands here)"),
    ("multidict/", "aiohttp (upstream pool, streams; its C HTTP parser lands here)"),
    ("yarl/", "aiohttp (upstream pool, streams; its C HTTP parser lands here)"),
    (
        "uvicorn/protocols/http/httptools_impl.py",
        "uvicorn on httptools (client-side HTTP/1.1; httptools' C parser lands here)",
    ),
    ("httptools/", "uvicorn on httptools (client-side HTTP/1.1; httptools' C parser lands here)"),
    ("uvicorn/protocols/http/h11_impl.py", "uvicorn on h11 (client-side HTTP/1.1)"),
    ("h11/", "h11 (HTTP/1.1 parsing: uvicorn's h11 protocol, httpcore)"),
    ("uvicorn/", "uvicorn (server, middleware)"),
    ("httpcore/", "httpcore (upstream connection pool: FCC_UPSTREAM=httpx or an older fcc)"),
    ("httpx/", "httpx (upstream client API)"),
    ("starlette/", "starlette (routing, middleware)"),
    ("anyio/", "anyio (cancel scopes, task groups)"),
    ("uvloop/", UVLOOP),
    ("asyncio/", "asyncio (tasks, futures, timeouts; with the stdlib loop: the loop, transports, syscalls)"),
    (
        "selectors.py",
        "asyncio (tasks, futures, timeouts; with the stdlib loop: the loop, transports, syscalls)",
    ),
)
OTHER = "other (python runtime, logging, …)"
# Generated or generic runtime code (a dataclass's __init__ in "<string>", "<frozen …>" modules,
# abc's isinstance, codecs, contextlib): charged to the innermost caller that is not, so its cost
# shows where it is paid.
_TRANSPARENT = (
    *("_weakrefset.py", "abc.py", "typing.py", "enum.py", "functools.py", "contextlib.py"),
    *("dataclasses.py", "copy.py", "weakref.py", "codecs.py", "types.py", "copyreg.py"),
)
# The state store's code, in-process: what --stores charges to each backend.
STORE_PATHS = ("fcc/engine/state/", "redis/", "sqlite3/")
# Frames down to the event loop's callback runner are the same in every sample: not interesting.
# With the stdlib loop that is Handle._run (asyncio/events.py); uvloop's loop is C, so its
# callbacks sit right on asyncio.Runner.run (asyncio/runners.py). A worker thread's own
# machinery ends at Thread.run / the executor's _worker.
_LOOP_FRAMES = {
    ("Handle._run", "asyncio/events.py"),
    ("Runner.run", "asyncio/runners.py"),
    ("Thread.run", "threading.py"),
    ("_worker", "concurrent/futures/thread.py"),
}


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
# (kind, function, what it is, where): `where` is a path suffix the frame's file must end with
# ("" for any), so a step still matches after its module moved to another package.
KEY_FRAMES = (
    ("per request", "messages", "route handler up to the first event", "server/messages.py"),
    ("per request", "read_json", "read the 50-90 KB body and parse it", ""),
    ("per request", "fast_loads", "msgspec parse of the request body (wire.py)", "wire.py"),
    ("per request", "check_request", "request validation", ""),
    ("per request", "features_of", "request features (model, tools, sizes, session)", ""),
    ("per request", "find_probe", "probe matching on the body", ""),
    ("per request", "decide", "routing rules", "router.py"),
    ("per request", "OpenAIChat.build", "to_openai: Anthropic → OpenAI request", ""),
    ("per request", "dumps", "msgspec encode: the upstream body, each event's JSON (wire.py)", "wire.py"),
    ("per request", "Sender.request", "httpx's Request with the client's headers (transports/http.py)", ""),
    ("per request", "Sender.send", "the request to the transport, the status line back", ""),
    ("per request", "BaseClient.build_request", "httpx builds the request (an older fcc)", ""),
    ("per request", "AsyncClient.send", "httpx sends it and waits for the status line (an older fcc)", ""),
    (
        "per request",
        "H1Transport.handle_async_request",
        "fcc's upstream leg: a pooled connection, the write, the status line",
        "h1.py",
    ),
    (
        "per request",
        "AiohttpTransport.handle_async_request",
        "aiohttp transport: send, await headers",
        "aio.py",
    ),
    ("per request", "ClientSession._request", "aiohttp's request: pool, headers, write", "aiohttp/client.py"),
    ("per request", "TCPConnector._create_connection", "aiohttp opens an upstream connection", ""),
    ("per request", "AsyncConnectionPool._assign_requests_to_connections", "httpcore pool bookkeeping", ""),
    ("per request", "AppState.finish", "the request's end: release, record", ""),
    ("per chunk", "Response.aiter_bytes", "httpx's read of the upstream body (over the transport)", ""),
    ("per chunk", "Response.aiter_raw", "httpx's raw read of the upstream body (nothing to decode)", ""),
    ("per chunk", "_Body.__aiter__", "fcc's leg: the upstream body's reads (h1.py)", "h1.py"),
    ("per chunk", "_Connection.data_received", "fcc's leg: httptools' C parser on each read", "h1.py"),
    ("per chunk", "_Body.__aiter__", "aiohttp's read of the upstream body (aio.py)", "aio.py"),
    ("per chunk", "ResponseHandler.data_received", "aiohttp's protocol: the C parser on each read", ""),
    ("per chunk", "Silence.wait", "the idle watchdog around each upstream read", "transports/http.py"),
    ("per chunk", "SSEDecoder.feed", "SSE decode", ""),
    ("per chunk", "_Lines.feed", "chunk JSON parse + OpenAIStreamTranslator.feed", ""),
    ("per chunk", "loads", "msgspec parse of a chunk (wire.py)", "wire.py"),
    ("per chunk", "OpenAIStreamTranslator.feed", "chunk → Anthropic events", ""),
    ("per chunk", "Pump.pull", "Pump: the next batch, in the response's task", "edge.py"),
    ("per chunk", "EventStream._stream", "EventStream: the client-side SSE stream", "edge.py"),
    ("per chunk", "EventStream._write", "EventStream → uvicorn → socket write", "edge.py"),
    ("per chunk", "encode", "Anthropic event → SSE bytes", "events.py"),
    ("per chunk", "RequestResponseCycle.send", "uvicorn's send (httptools or h11 protocol)", ""),
    ("per chunk", "HttpToolsProtocol.data_received", "uvicorn + httptools: a client read", ""),
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


_STRIP = ("site-packages/", f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/", f"{REPO}/")


def _frame(text: str) -> tuple[str, str]:
    """py-spy raw frames read "function (path/to/file.py:123)": (function, short path)."""
    name, _, where = text.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for marker in _STRIP:
        if marker in path:
            path = path.split(marker, 1)[1]
    return name, path


def _matches(path: str, rule: str) -> bool:
    if "…/" in rule:
        prefix, _, file = rule.partition("…/")
        return path.startswith(prefix) and path.endswith("/" + file)
    return path.startswith(rule)


def _bucket(path: str) -> str:
    for rule, label in _BUCKETS:
        if _matches(path, rule):
            return label
    return OTHER


def _transparent(path: str) -> bool:
    return path.startswith("<") or path in _TRANSPARENT


def leaf_bucket(frames: list[tuple[str, str]]) -> str:
    """The part of the code a sample (its frames, outermost first) is charged to."""
    if frames and frames[-1] == ("Runner.run", "asyncio/runners.py"):
        # With the stdlib loop, Runner.run always has run_until_complete below it: a sample that
        # ends here is inside a loop written in C, uvloop's.
        return UVLOOP
    for _, path in reversed(frames):
        if not _transparent(path):
            return _bucket(path)
    return OTHER


def _below_loop(frames: list[tuple[str, str]]) -> int:
    """Where the interesting part of a stack begins: after the innermost loop or thread frame."""
    for i in range(len(frames) - 1, -1, -1):
        if frames[i] in _LOOP_FRAMES:
            return i + 1
    return 0


def _key_hit(label: str, function: str, where: str) -> bool:
    name, _, path = label.rpartition(" (")
    return name == function and (not where or path.rstrip(")").endswith(where))


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
        buckets[leaf_bucket(frames)] += count
        for label in set(labels[_below_loop(frames) :]):
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
    for kind, function, meaning, where in KEY_FRAMES:
        hits = [(label, n) for label, n in incl_counts.items() if _key_hit(label, function, where)]
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
