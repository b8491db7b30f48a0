"""What fcc did, request by request: the record the store keeps (and, when asked, a
JSON-lines file gets). Never prompt text: a record holds the session id, the route, the
outcome and the token counts."""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from msgspec.structs import asdict

log = logging.getLogger("fcc.request")


class RequestRecord(msgspec.Struct, frozen=True):
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
    def source(self) -> str | None:
        """PROVIDER/MODEL that answered, or for a failure the last candidate tried (errors
        count against it); None if none was tried."""
        return self.route or (self.attempts[-1] if self.attempts else None)

    def wire(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")
        out["attempts"] = list(self.attempts)
        out["skipped"] = list(self.skipped)
        return out


def record_from_wire(data: dict[str, Any]) -> RequestRecord:
    """A record as wire() wrote it (the stores keep that form)."""
    fields: dict[str, Any] = {k: data.get(k) for k in RequestRecord.__struct_fields__}
    fields["time"] = datetime.fromisoformat(data["time"]).timestamp()
    fields["attempts"] = tuple(data.get("attempts") or ())
    fields["skipped"] = tuple(data.get("skipped") or ())
    return RequestRecord(**fields)


class JsonLines:
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
