"""What the doctor learned, as the router uses it: only ever a reason to skip a candidate it
has evidence against, never a reason to refuse a model it has not seen.

- A model whose last doctor run found it cannot call tools is skipped for requests with
  tools (it still takes requests without).
- A model found unreachable, with a refused key or unknown to its provider, is tried only
  when nothing else on the route can take the request; one that then answers is trusted
  again (its result is forgotten), as is one `fcc doctor` checks again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import msgspec

from fcc.engine.request.features import Features
from fcc.engine.routing.candidates import Evidence, Learned
from fcc.engine.routing.router import Candidate

NAMESPACE = "doctor"
KEEP = 90 * 86_400.0  # how long a doctor result is kept
# Failures of `reach` that say something about the model, not about this moment.
LASTING = ("key", "model", "unreachable")


class Finding(msgspec.Struct, frozen=True):
    model: str
    verdict: str
    checked: float  # epoch seconds
    tools_failed: str | None  # the reason, when the tools check failed
    reach_failed: str | None  # the reason, when reach failed for a lasting cause
    failing: str | None = None  # the first check that failed (fcc models, the dashboard)
    reason: str | None = None  # what that check said

    def age(self, now: float | None = None) -> str:
        seconds = max(0.0, (now or time.time()) - self.checked)
        if seconds < 3600:
            return f"{int(seconds // 60)} min"
        if seconds < 2 * 86_400:
            return f"{int(seconds // 3600)} h"
        return f"{int(seconds // 86_400)} days"


def finding_of(model: str, stored: str) -> Finding | None:
    try:
        data = json.loads(stored)
        checks = data.get("checks") or {}
        tools = checks.get("tools") or {}
        reach = checks.get("reach") or {}
        failing = next((name for name, c in checks.items() if not c.get("ok")), None)
        return Finding(
            model=model,
            verdict=str(data.get("verdict")),
            checked=float(data.get("checked", 0.0)),
            tools_failed=str(tools.get("detail")) if tools.get("ok") is False else None,
            reach_failed=str(reach.get("detail"))
            if reach.get("ok") is False and reach.get("kind") in LASTING
            else None,
            failing=failing,
            reason=checks[failing].get("detail") if failing else None,
        )
    except (ValueError, TypeError, AttributeError):
        return None  # written by another fcc version: no evidence either way


def findings(stored: Mapping[str, str]) -> dict[str, Finding]:
    out = {}
    for model, value in stored.items():
        found = finding_of(model, value)
        if found is not None:
            out[model] = found
    return out


def evidence(known: Mapping[str, Finding]) -> Evidence:
    def judge(candidate: Candidate, features: Features) -> Learned | None:
        found = known.get(candidate.label)
        if found is None:
            return None
        if found.tools_failed and features.tool_count:
            return Learned(f"doctor: cannot call tools ({found.tools_failed}; {found.age()} ago)", hard=True)
        if found.reach_failed:
            return Learned(f"doctor: {found.reach_failed} ({found.age()} ago)", hard=False)
        return None

    return judge
