"""/metrics in the Prometheus text exposition format (0.0.4), without a client library.

Counters and histograms come from the store (state/tally.py adds them up, so every worker's
requests count once and a restart does not reset them); gauges (circuits, streams in
flight, today's use of each daily quota) are read at scrape time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from fcc.engine.state.admission import Usage
from fcc.engine.state.tally import labels

_COUNTERS = {
    "fcc_requests_total": "Requests answered, by tier, provider and HTTP status.",
    "fcc_tokens_total": "Tokens reported by upstreams (input excludes cached).",
    "fcc_fallbacks_total": "Requests served by a candidate after the first failed.",
    "fcc_probe_answers_total": "Busywork requests answered locally, not sent upstream.",
    "fcc_rule_decisions_total": (
        "Routing decisions, by rule (tier:NAME when no rule matched, direct for PROVIDER/MODEL)."
    ),
    "fcc_candidates_skipped_total": (
        "Candidates not tried because they cannot take the request (context, output, vision, tools…)."
    ),
}
_HISTOGRAMS = {
    "fcc_request_duration_seconds": "Whole request time.",
    "fcc_time_to_first_token_seconds": "Time until the first content event.",
}
_STATES = {"closed": 0, "half_open": 1, "open": 2}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}"


def _sample(name: str, label_text: str, value: float) -> str:
    return f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}"


def render(
    counters: Mapping[tuple[str, str], float],
    circuits: Mapping[str, Mapping[str, object]],
    usage: Iterable[Usage],
) -> str:
    out: list[str] = []
    by_name: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (name, label_text), value in counters.items():
        by_name[name].append((label_text, value))
    for name, help_text in _COUNTERS.items():
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        out += [_sample(name, lt, v) for lt, v in sorted(by_name.get(name, ()))]
    for name, help_text in _HISTOGRAMS.items():
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        series = sorted(by_name.get(f"{name}_count", ()))
        for base, count in series:
            buckets = [(lt, v) for lt, v in by_name.get(f"{name}_bucket", ()) if lt.startswith(base + ",")]
            buckets.sort(key=lambda b: _le(b[0]))
            out += [_sample(f"{name}_bucket", lt, v) for lt, v in buckets]
            total = next((v for lt, v in by_name.get(f"{name}_sum", ()) if lt == base), 0.0)
            out.append(f"{name}_sum{{{base}}} {total:.6f}")
            out.append(_sample(f"{name}_count", base, count))
    out += ["# HELP fcc_candidate_health Circuit state per provider/model: 0 closed, 1 half-open, 2 open."]
    out += ["# TYPE fcc_candidate_health gauge"]
    out += [
        _sample("fcc_candidate_health", labels(candidate=k), _STATES.get(str(v.get("state")), 0))
        for k, v in sorted(circuits.items())
    ]
    rows = list(usage)
    out += ["# HELP fcc_active_streams Upstream streams open now, per provider (all workers)."]
    out += ["# TYPE fcc_active_streams gauge"]
    out += [_sample("fcc_active_streams", labels(provider=u.key), u.active_streams) for u in rows]
    quotas = [
        (labels(scope=u.key, kind=kind), used, limit)
        for u in rows
        for kind, used, limit in (
            ("requests", u.requests, u.requests_per_day),
            ("tokens", u.tokens, u.tokens_per_day),
        )
        if limit is not None
    ]
    out += ["# HELP fcc_quota_used_today Today's use of a daily quota, per provider or provider/model."]
    out += ["# TYPE fcc_quota_used_today gauge"]
    out += [_sample("fcc_quota_used_today", lt, used) for lt, used, _ in quotas]
    out += ["# HELP fcc_quota_limit A daily quota's size (requests or tokens)."]
    out += ["# TYPE fcc_quota_limit gauge"]
    out += [_sample("fcc_quota_limit", lt, float(limit)) for lt, _, limit in quotas if limit is not None]
    return "\n".join(out) + "\n"


def _le(label_text: str) -> float:
    value = label_text.rsplit('le="', 1)[-1].rstrip('"')
    return float("inf") if value == "+Inf" else float(value)
