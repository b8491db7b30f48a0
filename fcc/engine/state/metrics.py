"""/metrics in the Prometheus text exposition format (0.0.4), without a client library:
counters and histograms fed by finished requests, gauges read from health at scrape time."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping

from fcc.engine.state.records import RequestRecord

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


class _Histogram:
    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.sum = 0.0
        self.total = 0

    def observe(self, value: float) -> None:
        i = bisect_left(BUCKETS, value)
        if i < len(BUCKETS):
            self.counts[i] += 1
        self.sum += value
        self.total += 1


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[Labels, int] = defaultdict(int)
        self.tokens: dict[Labels, int] = defaultdict(int)
        self.fallbacks: dict[Labels, int] = defaultdict(int)
        self.probes: dict[Labels, int] = defaultdict(int)
        self.rules: dict[Labels, int] = defaultdict(int)
        self.skipped: dict[Labels, int] = defaultdict(int)
        self.duration: dict[Labels, _Histogram] = defaultdict(_Histogram)
        self.ttft: dict[Labels, _Histogram] = defaultdict(_Histogram)

    def observe(self, r: RequestRecord) -> None:
        provider = "probe" if r.probe else (r.provider or "none")
        tier = r.tier or "direct"
        self.requests[(("tier", tier), ("provider", provider), ("status", str(r.status)))] += 1
        for kind, n in (("input", r.input_tokens), ("output", r.output_tokens), ("cached", r.cached_tokens)):
            if n:
                self.tokens[(("provider", provider), ("kind", kind))] += n
        if len(r.attempts) > 1:
            self.fallbacks[(("tier", tier),)] += 1
        if r.probe:
            self.probes[(("probe", r.probe),)] += 1
        elif r.rule:
            self.rules[(("rule", r.rule),)] += 1
        for skip in r.skipped:
            candidate, _, why = skip.partition(": ")
            self.skipped[(("candidate", candidate), ("reason", why.split(":", 1)[0]))] += 1
        key = (("tier", tier), ("provider", provider))
        self.duration[key].observe(r.duration_ms / 1000)
        if r.ttft_ms is not None:
            self.ttft[key].observe(r.ttft_ms / 1000)

    def render(
        self, health: Mapping[str, Mapping[str, object]], limits: Mapping[str, Mapping[str, object]]
    ) -> str:
        out: list[str] = []
        _counter(
            out, "fcc_requests_total", "Requests answered, by tier, provider and HTTP status.", self.requests
        )
        _counter(
            out, "fcc_tokens_total", "Tokens reported by upstreams (input excludes cached).", self.tokens
        )
        _counter(
            out,
            "fcc_fallbacks_total",
            "Requests served by a candidate after the first failed.",
            self.fallbacks,
        )
        _counter(
            out,
            "fcc_probe_answers_total",
            "Busywork requests answered locally, not sent upstream.",
            self.probes,
        )
        _counter(
            out,
            "fcc_rule_decisions_total",
            "Routing decisions, by rule (tier:NAME when no rule matched, direct for PROVIDER/MODEL).",
            self.rules,
        )
        _counter(
            out,
            "fcc_candidates_skipped_total",
            "Candidates not tried because they cannot take the request (context, output, vision, tools…).",
            self.skipped,
        )
        _histogram(out, "fcc_request_duration_seconds", "Whole request time.", self.duration)
        _histogram(out, "fcc_time_to_first_token_seconds", "Time until the first content event.", self.ttft)
        states = {"closed": 0, "half_open": 1, "open": 2}
        _gauge(
            out,
            "fcc_candidate_health",
            "Circuit state per provider/model: 0 closed, 1 half-open, 2 open.",
            (((("candidate", k),), states.get(str(v.get("state")), 0)) for k, v in health.items()),
        )
        _gauge(
            out,
            "fcc_active_streams",
            "Upstream streams open now, per provider.",
            (((("provider", k),), int(str(v.get("active_streams", 0)))) for k, v in limits.items()),
        )
        return "\n".join(out) + "\n"


def _counter(out: list[str], name: str, help_text: str, values: Mapping[Labels, int]) -> None:
    out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    out += [f"{name}{_labels(k)} {v}" for k, v in sorted(values.items())]


def _gauge(out: list[str], name: str, help_text: str, values: Iterable[tuple[Labels, int]]) -> None:
    out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    out += [f"{name}{_labels(k)} {v}" for k, v in sorted(values)]


def _histogram(out: list[str], name: str, help_text: str, values: Mapping[Labels, _Histogram]) -> None:
    out += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for labels, h in sorted(values.items()):
        running = 0
        for bound, count in zip(BUCKETS, h.counts, strict=True):
            running += count
            out.append(f"{name}_bucket{_labels((*labels, ('le', repr(bound))))} {running}")
        out.append(f"{name}_bucket{_labels((*labels, ('le', '+Inf')))} {h.total}")
        out.append(f"{name}_sum{_labels(labels)} {h.sum:.6f}")
        out.append(f"{name}_count{_labels(labels)} {h.total}")
