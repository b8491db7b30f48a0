"""What the running server holds, and the checks every route shares."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import math
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from fcc.engine.catalog.config import Settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.errors import ClientError
from fcc.engine.probes import Probe
from fcc.engine.routing.candidates import Evidence
from fcc.engine.routing.dispatch import Dispatcher, TurnRecord
from fcc.engine.routing.evidence import KEEP, NAMESPACE, Finding, evidence, findings
from fcc.engine.server.catalog_models import ModelList
from fcc.engine.server.catalog_models import build as build_models
from fcc.engine.server.edge import error_response
from fcc.engine.state.service import StateService
from fcc.engine.translate import toollist, wire
from fcc.engine.translate.tokens import ToolSizes
from fcc.engine.types import JSON

if TYPE_CHECKING:
    from fcc.engine.server.reload import Reload

log = logging.getLogger("fcc.request")


class AppState(msgspec.Struct):
    settings: Settings
    keys: KeyStore
    state: StateService
    probes: tuple[Probe, ...] = ()
    dispatcher: Dispatcher | None = None
    loop: asyncio.AbstractEventLoop | None = None
    tool_sizes: ToolSizes = msgspec.field(default_factory=ToolSizes)
    evidence: Evidence | None = None  # what the doctor learned (a reason to skip a candidate)
    doctor: dict[str, str] = msgspec.field(default_factory=dict)  # its stored results, by PROVIDER/MODEL
    findings: dict[str, Finding] = msgspec.field(default_factory=dict)  # the same, parsed once
    models: ModelList = msgspec.field(default_factory=lambda: ModelList(()))  # what GET /v1/models lists
    reloaded: Reload | None = None  # the last reload of the documents, for the log and the dashboard

    def use(self, settings: Settings, keys: KeyStore) -> None:
        """Serve with these settings and keys from the next request on: one assignment
        each, with no await between them, so a request reads either the old or the new."""
        self.settings, self.keys = settings, keys
        self.probes = settings.active_probes
        self.models = build_models(settings, keys)
        self.state.providers = settings.providers
        if self.dispatcher is not None:
            self.dispatcher.keys = keys

    async def learn(self) -> None:
        """Reads the doctor's results from the store (another process may have run it)."""
        self._doctor_says(await self.state.get(NAMESPACE))

    def _doctor_says(self, stored: dict[str, str]) -> None:
        self.doctor, self.findings = stored, findings(stored)
        self.evidence = evidence(self.findings)

    def trust(self, label: str) -> None:
        """A candidate the doctor found unreachable just answered: that finding is over."""
        found = self.findings.get(label)
        if found is None or not found.reach_failed:
            return
        data = json.loads(self.doctor[label])
        data.setdefault("checks", {})["reach"] = {"ok": True, "detail": "answered a request since"}
        self._doctor_says({**self.doctor, label: json.dumps(data)})
        self.state.keep(NAMESPACE, {label: self.doctor[label]}, KEEP)

    def finish(self, record: TurnRecord, status: int) -> float:
        """Log, keep and count a finished request; returns fcc's own share of it in ms."""
        kept = record.finished(status)
        ttft, duration, overhead = kept.ttft_ms, kept.duration_ms, kept.overhead_ms or 0.0
        self.state.add(kept)  # queued: the store writes it off this path
        if status < 400 and record.served_by in self.findings:
            self.trust(record.served_by)  # a dict lookup: the findings are parsed already
        tried = f" tried={','.join(record.attempts)}" if len(record.attempts) > 1 else ""
        log.info(
            "%s %s → %s %s %d ttft=%s dur=%.0fms in=%d out=%d cached=%d%s%s",
            (record.session or "-")[:8],
            record.requested,
            record.rule if record.rule and not record.rule.startswith("tier:") else (record.tier or "direct"),
            record.served_by or (record.attempts[-1] if record.attempts else "-"),
            status,
            f"{ttft:.0f}ms" if ttft is not None else "-",
            duration,
            record.input_tokens,
            record.output_tokens,
            record.cached_tokens,
            tried + (f" skipped={len(record.skipped)}" if record.skipped else ""),
            f" error={record.error_type}" if record.error_type else "",
        )
        return overhead


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.fcc
    return state


def token_ok(request: Request) -> bool:
    """True when no token is configured, or the request presents it (constant-time)."""
    token = state_of(request).settings.server.auth_token
    if not token:
        return True
    presented = request.headers.get("x-api-key") or ""
    auth = request.headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        presented = presented or auth[7:].strip()
    return hmac.compare_digest(presented.encode(), token.encode())


def is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def deny() -> Response:
    return error_response(
        401,
        "authentication_error",
        "invalid or missing token: set ANTHROPIC_AUTH_TOKEN to fcc's server.auth_token",
        should_retry=False,
    )


# What a browser may send cross-origin without asking first: refusing them means no web page
# can make a visitor's browser spend their keys through a local fcc.
_FORM_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ClientError(f"request body has a number too large for JSON: {text[:40]}")
    return value


def _no_constants(name: str) -> Any:
    raise ClientError(f"request body is not valid JSON: {name} is not a JSON value")


async def read_json(request: Request) -> JSON:
    """The body as a JSON object, within the size limit; ClientError otherwise."""
    return (await read_body(request))[0]


async def read_body(request: Request) -> tuple[JSON, bytes]:
    """The body as a JSON object and the bytes it was parsed from; ClientError if it is not
    one within the size limit."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type in _FORM_TYPES:
        raise ClientError(f"send the body as application/json, not {content_type}", 415)
    limit = state_of(request).settings.server.max_body_bytes
    too_big = ClientError(
        f"request body is larger than {limit / (1024 * 1024):g} MB: start a new conversation or /compact, "
        "or raise server.max_body_mb",
        413,
        "request_too_large",
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    pieces: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise too_big
        if piece:
            pieces.append(piece)
    # uvicorn hands over a body it already has whole in one piece: kept as it is, not copied.
    raw = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    try:
        data = toollist.parse_body(raw)  # most bodies: msgspec, and the checks below hold for them
    except wire.DecodeError:
        data = _stdlib_json(raw)  # the standard library's own verdict, and its located error
    if not isinstance(data, dict):
        raise ClientError("request body must be a JSON object")
    return data, raw


def _stdlib_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientError(f"request body is not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        data = json.loads(text, parse_float=_finite, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise ClientError(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ClientError("request body is nested too deeply to be a Messages request") from None
    return data
