"""What fcc did, request by request, kept in memory (and optionally as JSON lines).

Never prompt text: a record holds the session id, the route, the outcome and the token
counts. Aggregates (per session, per provider, per minute) are kept as requests finish, so
the dashboard and /metrics read them without walking the ring.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("fcc.request")

RING = 500  # recent requests kept
MINUTES = 60  # the chart's span
SESSIONS = 200  # sessions kept, least recently seen dropped first


@dataclass(frozen=True, slots=True)
class RequestRecord:
    time: float  # epoch seconds when the request arrived
    session: str | None
    model: str
    tier: str | None
    route: str | None  # the provider/model that answered (or probe:NAME)
    attempts: tuple[str, ...]
    probe: str | None
    status: int
    ttft_ms: float | None
    duration_ms: float
    overhead_ms: float | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    error_type: str | None
    stream: bool
    rule: str | None = None  # the routing rule that decided (or tier:NAME, direct)
    skipped: tuple[str, ...] = ()  # candidates not tried: "PROVIDER/MODEL: why"

    @property
    def provider(self) -> str | None:
        """Who answered, or for a failure the last candidate tried (errors count against it)."""
        source = self.route or (self.attempts[-1] if self.attempts else None)
        if self.probe or not source:
            return None
        return source.split("/", 1)[0]

    def wire(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")
        out["attempts"] = list(self.attempts)
        out["skipped"] = list(self.skipped)
        return out


@dataclass(slots=True)
class Totals:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    probes: int = 0
    fallbacks: int = 0
    last_seen: float = 0.0

    def add(self, r: RequestRecord) -> None:
        self.requests += 1
        self.errors += r.status >= 400
        self.input_tokens += r.input_tokens
        self.output_tokens += r.output_tokens
        self.cached_tokens += r.cached_tokens
        self.probes += r.probe is not None
        self.fallbacks += len(r.attempts) > 1 and r.status < 400
        self.last_seen = max(self.last_seen, r.time)


@dataclass(slots=True)
class _Minute:
    start: int  # epoch minute
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    probes: int = 0
    by_provider: Counter[str] = field(default_factory=Counter)


class RequestLog:
    def __init__(
        self, jsonl: Path | None = None, max_bytes: int = 10 * 1024 * 1024, clock: Any = time.time
    ) -> None:
        self._clock = clock
        self.started = clock()
        self.recent: deque[RequestRecord] = deque(maxlen=RING)
        self.totals = Totals()
        self.sessions: dict[str, Totals] = {}
        self.providers: dict[str, Totals] = {}
        self.probes: Counter[str] = Counter()
        self.rules: Counter[str] = Counter()  # decisions by routing rule (or tier:NAME, direct)
        self.skipped: Counter[str] = Counter()  # candidates skipped, by PROVIDER/MODEL
        self._minutes: deque[_Minute] = deque(maxlen=MINUTES)
        self._file = _JsonLines(jsonl, max_bytes) if jsonl else None

    def add(self, record: RequestRecord) -> None:
        self.recent.append(record)
        self.totals.add(record)
        if record.session:
            self.sessions.setdefault(record.session, Totals()).add(record)
            if len(self.sessions) > SESSIONS:
                oldest = min(self.sessions, key=lambda s: self.sessions[s].last_seen)
                del self.sessions[oldest]
        if record.provider:
            self.providers.setdefault(record.provider, Totals()).add(record)
        if record.probe:
            self.probes[record.probe] += 1
        elif record.rule:
            self.rules[record.rule] += 1
        for skip in record.skipped:
            self.skipped[skip.split(": ", 1)[0]] += 1
        minute = self._minute(record.time)
        minute.requests += 1
        minute.input_tokens += record.input_tokens
        minute.output_tokens += record.output_tokens
        minute.probes += record.probe is not None
        if record.provider:
            minute.by_provider[record.provider] += 1
        if self._file is not None:
            self._file.write(record.wire())

    def _minute(self, when: float) -> _Minute:
        start = int(when // 60)
        if not self._minutes or self._minutes[-1].start < start:
            self._minutes.append(_Minute(start))
        for m in reversed(self._minutes):
            if m.start == start:
                return m
        return self._minutes[-1]  # a late record for a minute already dropped: count it now

    def series(self) -> dict[str, Any]:
        """The last MINUTES minutes, one slot each, zeros where nothing happened."""
        now = int(self._clock() // 60)
        by_start = {m.start: m for m in self._minutes}
        starts = range(now - MINUTES + 1, now + 1)
        providers = sorted({p for m in self._minutes for p in m.by_provider})
        empty = _Minute(0)
        slots = [by_start.get(s, empty) for s in starts]
        return {
            "minute": [datetime.fromtimestamp(s * 60, UTC).strftime("%H:%M") for s in starts],
            "requests": [m.requests for m in slots],
            "input_tokens": [m.input_tokens for m in slots],
            "output_tokens": [m.output_tokens for m in slots],
            "probes": [m.probes for m in slots],
            "by_provider": {p: [m.by_provider.get(p, 0) for m in slots] for p in providers},
        }


class _JsonLines:
    """An append-only JSON-lines file that rotates to NAME.1 past max_bytes."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self._path = path
        self._max = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, data: dict[str, Any]) -> None:
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            with self._lock:
                if self._path.exists() and self._path.stat().st_size + len(line) > self._max:
                    os.replace(self._path, self._path.with_name(self._path.name + ".1"))
                with open(self._path, "a", encoding="utf-8") as fh:
                    fh.write(line)
        except OSError as exc:  # a full disk must not fail the request
            log.warning("cannot write the request log %s: %s", self._path, exc.strerror)
