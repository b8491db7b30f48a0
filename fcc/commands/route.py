"""`fcc route REQUEST.json`: where fcc would send a recorded request, and why.

The same decision the server makes (engine/routing): the rule that matched or the family's
tier, then every candidate in the order its strategy gives, each `ok` or skipped with the
reason — a window too small, no vision, no tools, or (when an fcc is running) its circuit
open or its rate limit reached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from fcc.engine.catalog.config import Settings
from fcc.engine.errors import ClientError, FccError
from fcc.engine.request.features import Features, features_of
from fcc.engine.routing.candidates import Evidence, Verdict, plan
from fcc.engine.routing.router import decide
from fcc.engine.translate.validate import check_request
from fcc.engine.types import JSON


class RequestFileError(FccError):
    pass


class Explanation(msgspec.Struct, frozen=True):
    rule: str | None
    tier: str | None
    strategy: str
    features: Features
    candidates: tuple[Verdict, ...]
    error: str | None = None  # what the client would hear when nothing can take it

    def wire(self) -> JSON:
        return {
            "rule": self.rule,
            "tier": self.tier,
            "candidates": [v.wire() for v in self.candidates],
        }


def read_request(path: Path) -> tuple[JSON, dict[str, str]]:
    """A request body, or a recording of one ({"headers": …, "body": …}, as in the fixtures)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RequestFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestFileError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise RequestFileError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    headers: dict[str, str] = {}
    if isinstance(data, dict) and isinstance(data.get("body"), dict) and "messages" not in data:
        raw = data.get("headers")
        headers = {str(k).lower(): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        data = data["body"]
    if not isinstance(data, dict):
        raise RequestFileError(f"{path}: expected a Messages request body (a JSON object)")
    try:
        check_request(data, need_max_tokens=False)
    except ClientError as exc:
        raise RequestFileError(f"{path}: not a Messages request: {exc}") from None
    return data, headers


def explain(
    settings: Settings,
    body: JSON,
    headers: Mapping[str, str],
    live: Mapping[str, Any] | None = None,
    evidence: Evidence | None = None,
) -> Explanation:
    """`live`: a running fcc's /health (circuits and provider limits), when one answers."""
    features = features_of(body, headers, wanted_headers=settings.header_names)
    route = decide(features, body, settings)
    found = plan(route, features, evidence)
    verdicts = found.verdicts
    if live:
        verdicts = tuple(_live_verdict(v, live) for v in verdicts)
    error = str(found.error) if found.error is not None else None
    return Explanation(route.rule, route.tier, route.strategy, features, verdicts, error)


def _live_verdict(verdict: Verdict, live: Mapping[str, Any]) -> Verdict:
    if not verdict.ok:
        return verdict
    circuits = live.get("candidates") or {}
    circuit = circuits.get(verdict.model) if isinstance(circuits, dict) else None
    if isinstance(circuit, dict) and circuit.get("state") == "open":
        left = circuit.get("cooldown_left")
        return Verdict(verdict.model, False, f"circuit open ({circuit.get('last_error')}; {left}s left)")
    providers = live.get("providers") or {}
    gate = providers.get(verdict.model.split("/", 1)[0]) if isinstance(providers, dict) else None
    if isinstance(gate, dict):
        rpm, used = gate.get("requests_per_minute"), gate.get("requests_last_minute", 0)
        if isinstance(rpm, int) and isinstance(used, int) and used >= rpm:
            return Verdict(verdict.model, False, f"rate-limited ({used}/{rpm} requests this minute)")
        streams, active = gate.get("concurrent_streams"), gate.get("active_streams", 0)
        if isinstance(streams, int) and isinstance(active, int) and active >= streams:
            return Verdict(verdict.model, False, f"rate-limited ({active}/{streams} streams open)")
    return verdict
