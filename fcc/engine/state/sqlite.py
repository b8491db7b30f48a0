"""The state store in one SQLite file (the default: $XDG_STATE_HOME/free-claude-code/fcc.db).

WAL journal, so readers never wait for the writer and a crash (kill -9 included) leaves the
file readable: the next start needs no step of its own. Several fcc processes on one
machine share it safely: admission runs as one IMMEDIATE transaction, which SQLite
serializes across processes. Writes run on a thread of their own so the event loop never
waits for another process's lock; a read that only looks (a circuit) runs inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from fcc.engine.state.admission import (
    QUOTA_TTL,
    WINDOW,
    Admission,
    Check,
    CircuitPolicy,
    CircuitState,
    Lease,
    Scope,
    Usage,
    admit,
    circuit_from_json,
    circuit_json,
    usage_of,
)
from fcc.engine.state.records import RequestRecord, record_from_wire
from fcc.engine.state.store import Row, StoreError
from fcc.engine.state.tally import Increments, day_of, minute_of

T = TypeVar("T")
SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records(time REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS records_time ON records(time);
CREATE TABLE IF NOT EXISTS days(bucket TEXT, dim TEXT, key TEXT, field TEXT, value REAL,
    PRIMARY KEY(bucket, dim, key, field)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS minutes(bucket INTEGER, dim TEXT, key TEXT, field TEXT, value REAL,
    PRIMARY KEY(bucket, dim, key, field)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters(name TEXT, labels TEXT, value REAL,
    PRIMARY KEY(name, labels)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS windows(key TEXT NOT NULL, t REAL NOT NULL);
CREATE INDEX IF NOT EXISTS windows_key ON windows(key, t);
CREATE TABLE IF NOT EXISTS leases(key TEXT, id TEXT, expires REAL, PRIMARY KEY(key, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quota(key TEXT, bucket TEXT, requests INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0, expires REAL, PRIMARY KEY(key, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS last_by_session(session TEXT PRIMARY KEY, time REAL NOT NULL, data TEXT NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS circuits(key TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv(ns TEXT, key TEXT, value TEXT, expires REAL,
    PRIMARY KEY(ns, key)) WITHOUT ROWID;
"""
_UPSERT = "INSERT INTO {t}(bucket, dim, key, field, value) VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET "
_ADD = _UPSERT + "value = value + excluded.value"
_MAX = _UPSERT + "value = max(value, excluded.value)"


class _View:
    """admission.View over the tables, inside the caller's IMMEDIATE transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def circuit(self, key: str) -> CircuitState | None:
        row = self.db.execute("SELECT data FROM circuits WHERE key = ?", (key,)).fetchone()
        return circuit_from_json(row[0]) if row else None

    def set_circuit(self, key: str, state: CircuitState) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO circuits(key, data) VALUES (?, ?)", (key, circuit_json(state))
        )

    # Reads count on the (key, t) index and change nothing, so usage_now needs no
    # transaction; what has left the window goes when a request is added (and at prune).

    def window(self, key: str, since: float) -> int:
        sql = "SELECT count(*) FROM windows WHERE key = ? AND t > ?"
        return int(self.db.execute(sql, (key, since)).fetchone()[0])

    def newest(self, key: str, since: float, n: int) -> float:
        sql = "SELECT t FROM windows WHERE key = ? AND t > ? ORDER BY t DESC LIMIT 1 OFFSET ?"
        return float(self.db.execute(sql, (key, since, n - 1)).fetchone()[0])

    def add_to_window(self, key: str, t: float) -> None:
        self.db.execute("DELETE FROM windows WHERE key = ? AND t <= ?", (key, t - WINDOW))
        self.db.execute("INSERT INTO windows(key, t) VALUES (?, ?)", (key, t))

    def leases(self, key: str, now: float) -> int:
        sql = "SELECT count(*) FROM leases WHERE key = ? AND expires > ?"
        return int(self.db.execute(sql, (key, now)).fetchone()[0])

    def add_lease(self, key: str, lease: str, expires: float) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO leases(key, id, expires) VALUES (?, ?, ?)", (key, lease, expires)
        )

    def quota(self, key: str, buckets: list[str]) -> tuple[list[int], list[int]]:
        marks = ",".join("?" * len(buckets))
        found = {
            b: (r, t)
            for b, r, t in self.db.execute(
                f"SELECT bucket, requests, tokens FROM quota WHERE key = ? AND bucket IN ({marks})",
                (key, *buckets),
            )
        }
        slots = [found.get(b, (0, 0)) for b in buckets]
        return [int(r) for r, _ in slots], [int(t) for _, t in slots]

    def add_request(self, key: str, bucket: str, expires: float) -> None:
        self.db.execute(
            "INSERT INTO quota(key, bucket, requests, tokens, expires) VALUES (?, ?, 1, 0, ?) "
            "ON CONFLICT DO UPDATE SET requests = requests + 1",
            (key, bucket, expires),
        )


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the writer connection is used by one thread at a time
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fcc-sqlite")

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._connect()
            # executescript runs its own transaction (it commits first); CREATE … IF NOT EXISTS
            # makes a second process's start harmless.
            self._writer.executescript(SCHEMA)
            with self._tx() as db:
                db.execute("INSERT OR IGNORE INTO meta(k, v) VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self._reader = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the state store at {self.path} ({exc}): set state.path in config.yaml to a "
                "writable file, or use state: {backend: memory} to keep nothing on disk"
            ) from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses at most the last commits
        db.execute("PRAGMA busy_timeout=10000")
        if os.name == "posix":
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)  # session ids and usage: the user's business
        return db

    async def close(self) -> None:
        await self._run(self._checkpoint)
        self._pool.shutdown(wait=True)
        for db in (self._writer, self._reader):
            if db is not None:
                db.close()
        self._writer = self._reader = None

    def _checkpoint(self) -> None:
        assert self._writer is not None
        self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        assert self._writer is not None
        with self._lock:
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except sqlite3.Error as exc:
            raise StoreError(f"the state store at {self.path} failed: {exc}") from None

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        assert self._reader is not None
        try:
            return self._reader.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"the state store at {self.path} failed: {exc}") from None

    # -- admission -----------------------------------------------------------------------

    async def admit(self, check: Check, lease_id: str, now: float, policy: CircuitPolicy) -> Admission:
        if not check.scopes:
            # Nothing to take but a possible half-open trial: a read decides most of the time.
            row = self._read("SELECT data FROM circuits WHERE key = ?", (check.candidate,))
            if not row:
                return Admission(0.0, None, Lease((), lease_id))

        def step() -> Admission:
            with self._tx() as db:
                return admit(_View(db), check, lease_id, now, policy)

        return await self._run(step)

    async def release(self, lease: Lease) -> None:
        if not lease.keys:
            return

        def step() -> None:
            with self._tx() as db:
                db.executemany(
                    "DELETE FROM leases WHERE key = ? AND id = ?", [(k, lease.id) for k in lease.keys]
                )

        await self._run(step)

    async def refresh(self, leases: Iterable[Lease], expires: float) -> None:
        rows = [(expires, k, lease.id) for lease in leases for k in lease.keys]
        if not rows:
            return

        def step() -> None:
            with self._tx() as db:
                db.executemany("UPDATE leases SET expires = ? WHERE key = ? AND id = ?", rows)

        await self._run(step)

    async def update_circuit(self, key: str, change: Callable[[CircuitState], CircuitState | None]) -> None:
        def step() -> None:
            with self._tx() as db:
                view = _View(db)
                new = change(view.circuit(key) or CircuitState())
                if new is None:
                    db.execute("DELETE FROM circuits WHERE key = ?", (key,))
                else:
                    view.set_circuit(key, new)

        await self._run(step)

    async def circuits(self) -> dict[str, CircuitState]:
        return {k: circuit_from_json(d) for k, d in self._read("SELECT key, data FROM circuits")}

    async def usage_now(self, scopes: Iterable[Scope], now: float) -> list[Usage]:
        # Counts on the reader: no write lock, no queue behind this process's admissions.
        assert self._reader is not None
        view = _View(self._reader)
        try:
            return [usage_of(view, scope, now) for scope in scopes]
        except sqlite3.Error as exc:
            raise StoreError(f"the state store at {self.path} failed: {exc}") from None

    # -- records, aggregates, counters -----------------------------------------------------

    async def write(self, batch: Increments) -> None:
        days = [(b, d, k, f, n) for (b, d, k), fields in batch.days.items() for f, n in fields.items()]
        seen = [(b, d, k, "last_seen", t) for (b, d, k), t in batch.last_seen.items()]
        minutes = [
            (int(b), d, k, f, n) for (b, d, k), fields in batch.minutes.items() for f, n in fields.items()
        ]
        counters = [(name, labels, n) for (name, labels), n in batch.counters.items()]
        # A bucket no admission opened (the record's hour is not its admission's) expires too.
        expires = time.time() + QUOTA_TTL
        tokens = [(scope, bucket, n, expires) for (scope, bucket), n in batch.tokens.items()]
        records = [(r.time, json.dumps(r.wire(), separators=(",", ":"))) for r in batch.records]
        latest = [(r.session, t, d) for r, (t, d) in zip(batch.records, records, strict=True) if r.session]

        def step() -> None:
            with self._tx() as db:
                db.executemany("INSERT INTO records(time, data) VALUES (?, ?)", records)
                db.executemany(
                    "INSERT INTO last_by_session(session, time, data) VALUES (?, ?, ?) ON CONFLICT DO UPDATE "
                    "SET time = excluded.time, data = excluded.data WHERE excluded.time >= time",
                    latest,
                )
                db.executemany(_ADD.format(t="days"), days)
                db.executemany(_MAX.format(t="days"), seen)
                db.executemany(_ADD.format(t="minutes"), minutes)
                db.executemany(
                    "INSERT INTO counters(name, labels, value) VALUES (?,?,?) "
                    "ON CONFLICT DO UPDATE SET value = value + excluded.value",
                    counters,
                )
                db.executemany(
                    "INSERT INTO quota(key, bucket, requests, tokens, expires) VALUES (?, ?, 0, ?, ?) "
                    "ON CONFLICT DO UPDATE SET tokens = tokens + excluded.tokens",
                    tokens,
                )

        await self._run(step)

    async def days(self, first: str, last: str, dims: Iterable[str]) -> list[Row]:
        wanted = list(dims)
        marks = ",".join("?" * len(wanted))
        found: dict[tuple[str, str, str], dict[str, float]] = {}
        for bucket, dim, key, field, value in self._read(
            "SELECT bucket, dim, key, field, value FROM days "
            f"WHERE bucket >= ? AND bucket <= ? AND dim IN ({marks})",
            (first, last, *wanted),
        ):
            found.setdefault((bucket, dim, key), {})[field] = value
        return [Row(b, d, k, f) for (b, d, k), f in found.items()]

    async def minutes(self, first: int, last: int) -> list[Row]:
        found: dict[tuple[str, str, str], dict[str, float]] = {}
        for bucket, dim, key, field, value in self._read(
            "SELECT bucket, dim, key, field, value FROM minutes WHERE bucket BETWEEN ? AND ?", (first, last)
        ):
            found.setdefault((str(bucket), dim, key), {})[field] = value
        return [Row(b, d, k, f) for (b, d, k), f in found.items()]

    async def recent(self, limit: int) -> list[RequestRecord]:
        rows = self._read("SELECT data FROM records ORDER BY time DESC LIMIT ?", (limit,))
        return [record_from_wire(json.loads(d)) for (d,) in rows]

    async def last(self, session: str) -> RequestRecord | None:
        rows = self._read("SELECT data FROM last_by_session WHERE session = ?", (session,))
        return record_from_wire(json.loads(rows[0][0])) if rows else None

    async def counters(self) -> dict[tuple[str, str], float]:
        return {(n, labels): v for n, labels, v in self._read("SELECT name, labels, value FROM counters")}

    async def prune(self, before: float, now: float) -> None:
        day, minute = day_of(before), minute_of(now) - 120

        def step() -> None:
            with self._tx() as db:
                db.execute("DELETE FROM records WHERE time < ?", (before,))
                db.execute("DELETE FROM last_by_session WHERE time < ?", (before,))
                db.execute("DELETE FROM days WHERE bucket < ?", (day,))
                db.execute("DELETE FROM minutes WHERE bucket < ?", (minute,))
                db.execute("DELETE FROM windows WHERE t < ?", (now - 120,))
                db.execute("DELETE FROM leases WHERE expires < ?", (now,))
                db.execute("DELETE FROM quota WHERE COALESCE(expires, 0) < ?", (now,))  # NULL: older fcc
                db.execute("DELETE FROM kv WHERE expires < ?", (now,))

        await self._run(step)

    # -- small values ----------------------------------------------------------------------

    async def put(self, ns: str, items: dict[str, str], ttl: float) -> None:
        expires = time.time() + ttl
        rows = [(ns, k, v, expires) for k, v in items.items()]

        def step() -> None:
            with self._tx() as db:
                db.executemany("INSERT OR REPLACE INTO kv(ns, key, value, expires) VALUES (?,?,?,?)", rows)

        await self._run(step)

    async def get(self, ns: str, keys: Iterable[str] | None = None) -> dict[str, str]:
        now = time.time()
        if keys is None:
            rows = self._read("SELECT key, value FROM kv WHERE ns = ? AND expires > ?", (ns, now))
        else:
            names = list(keys)
            if not names:
                return {}
            marks = ",".join("?" * len(names))
            rows = self._read(
                f"SELECT key, value FROM kv WHERE ns = ? AND expires > ? AND key IN ({marks})",
                (ns, now, *names),
            )
        return dict(rows)
