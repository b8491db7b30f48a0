"""Results → bench/RESULTS.md (targets first) and bench/latency.png."""

from __future__ import annotations

import datetime
import importlib.util
import math
from pathlib import Path
from typing import TYPE_CHECKING

from bench.stats import Phase, percentile

if TYPE_CHECKING:
    from bench.run import Results

CONTENDERS = ("direct", "fcc", "litellm")  # the order of a run without --baseline


def _names(results: Results) -> list[str]:
    """The contenders in the order they were interleaved (direct, fcc, fcc@REF, litellm)."""
    known = list(getattr(results, "contenders", None) or CONTENDERS)
    return known + sorted({p.contender for p in results.phases} - set(known))


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _phase(results: Results, name: str, c: int) -> Phase | None:
    return next((p for p in results.phases if p.contender == name and p.concurrency == c), None)


def added(results: Results, name: str, c: int, metric: str, q: float) -> float | None:
    mine, floor = _phase(results, name, c), _phase(results, "direct", c)
    if mine is None or floor is None or not mine.good or not floor.good:
        return None
    value: float = getattr(mine, metric)(q) - getattr(floor, metric)(q)
    return value


def _levels(results: Results) -> list[int]:
    return sorted({p.concurrency for p in results.phases})


def _verdict(value: float | None, limit: float, *, at_least: bool = False) -> str:
    if value is None or math.isnan(value):
        return "not measured"
    ok = value >= limit if at_least else value <= limit
    return "**met**" if ok else "**missed**"


def cpu_per_token_us(
    results: Results, name: str = "fcc", long: Phase | None = None
) -> tuple[float | None, float | None, int | None]:
    """fcc's CPU per streamed token: all-in at the highest concurrency, and the marginal cost
    (long answers vs short ones at c=16, so per-request work cancels out). `name` and `long`
    select another fcc build (the --baseline one); by default this commit's."""
    levels = [p for p in results.phases if p.contender == name and p.cpu is not None and p.tokens]
    allin, at = None, None
    if levels:
        top = max(levels, key=lambda p: p.concurrency)
        allin, at = (top.cpu or 0) / top.tokens * 1e6, top.concurrency
    marginal = None
    short = _phase(results, name, 16)
    long_ = results.fcc_long if name == "fcc" else long
    if (
        short
        and long_
        and short.cpu is not None
        and long_.cpu is not None
        and short.records
        and long_.records
    ):
        per_req_short = short.cpu / len(short.records)
        per_req_long = long_.cpu / len(long_.records)
        extra = long_.expected_tokens - short.expected_tokens
        marginal = (per_req_long - per_req_short) / extra * 1e6 if extra > 0 else None
    return allin, marginal, at


def ratios(results: Results) -> list[tuple[int, float | None]]:
    out = []
    for c in _levels(results):
        f, lite = added(results, "fcc", c, "ttft", 50), added(results, "litellm", c, "ttft", 50)
        out.append((c, None if f is None or lite is None else lite / max(f, 0.01)))
    return out


def targets(results: Results) -> list[str]:
    rows = ["| target | this run | verdict |", "|---|---|---|"]
    t50, t99 = added(results, "fcc", 1, "ttft", 50), added(results, "fcc", 1, "ttft", 99)
    t99_64 = added(results, "fcc", 64, "ttft", 99)
    rows.append(f"| added TTFT p50 ≤ 1 ms at c=1 | {_f(t50, 2)} ms | {_verdict(t50, 1)} |")
    rows.append(f"| added TTFT p99 ≤ 3 ms at c=1 | {_f(t99, 2)} ms | {_verdict(t99, 3)} |")
    rows.append(f"| added TTFT p99 ≤ 20 ms at c=64 | {_f(t99_64, 1)} ms | {_verdict(t99_64, 20)} |")
    rs = ratios(results)
    known = [r for _, r in rs if r is not None]
    shown = ", ".join(f"c={c}: {_f(r, 1)}x" for c, r in rs)
    worst = min(known) if known else None
    complete = len(known) == len(rs) and bool(rs)
    verdict = _verdict(worst, 5, at_least=True) if complete else "not measured"
    rows.append(f"| ≥ 5x less added TTFT (p50) than LiteLLM at every concurrency | {shown} | {verdict} |")
    allin, marginal, at = cpu_per_token_us(results)
    rows.append(
        f"| fcc CPU ≤ 10 µs per streamed token | {_f(allin, 1)} µs all-in at c={at}; "
        f"{_f(marginal, 1)} µs marginal | {_verdict(allin, 10)} |"
    )
    rss = results.fcc_rss_hwm_kb / 1024 if results.fcc_rss_hwm_kb and 256 in _levels(results) else None
    rows.append(f"| fcc RSS ≤ 100 MB at 256 streams | {_f(rss, 1)} MB peak | {_verdict(rss, 100)} |")
    cold = percentile(results.cold_start, 50) if results.cold_start else None
    rows.append(f"| `fcc serve` cold start ≤ 1 s | {_f(cold, 2)} s (median) | {_verdict(cold, 1)} |")
    return rows


def latency_table(results: Results) -> list[str]:
    rows = [
        "| c | contender | n | failed | TTFT p50 | TTFT p99 | added TTFT p50 | added TTFT p99 "
        "| total p50 | total p99 | added total p50 | added total p99 | req/s | tokens/s "
        "| proxy CPU ms/req | proxy CPU ms/1k tok | proxy RSS MB |",
        "|" + "---|" * 17,
    ]
    for c in _levels(results):
        for name in _names(results):
            p = _phase(results, name, c)
            if p is None:
                continue
            direct = name == "direct"
            rss = p.rss_peak_kb / 1024 if p.rss_peak_kb else None
            cells = [
                str(c),
                name,
                str(len(p.records)),
                str(p.failed),
                _f(p.ttft(50), 2),
                _f(p.ttft(99), 2),
                "-" if direct else _f(added(results, name, c, "ttft", 50), 2),
                "-" if direct else _f(added(results, name, c, "ttft", 99), 2),
                _f(p.total(50), 1),
                _f(p.total(99), 1),
                "-" if direct else _f(added(results, name, c, "total", 50), 1),
                "-" if direct else _f(added(results, name, c, "total", 99), 1),
                _f(p.rps, 1),
                _f(p.tps, 0),
                _f(p.cpu_per_request_ms(), 2),
                _f(p.cpu_per_ktok_ms(), 1),
                _f(rss, 1),
            ]
            rows.append("| " + " | ".join(cells) + " |")
    return rows


def fcc_section(results: Results) -> list[str]:
    cold = results.cold_start
    allin, marginal, at = cpu_per_token_us(results)
    rss = results.fcc_rss_hwm_kb / 1024 if results.fcc_rss_hwm_kb else None
    check = percentile(results.check, 50) if results.check else None
    lines = [
        "| figure | value |",
        "|---|---|",
        f"| cold start, process start → /health answers (median of {len(cold)}) | "
        f"{_f(percentile(cold, 50) if cold else None, 3)} s (min {_f(min(cold) if cold else None, 3)}, "
        f"max {_f(max(cold) if cold else None, 3)}) |",
        f"| `fcc check` on the full catalog, wall (median of {len(results.check)}; exit "
        f"{results.check_exit}) | {_f(check, 3)} s |",
        f"| peak RSS (VmHWM) over the whole load run, up to c={max(_levels(results), default=0)} | "
        f"{_f(rss, 1)} MB |",
        f"| CPU per streamed token, all-in (total CPU ÷ tokens at c={at}) | {_f(allin, 1)} µs |",
        f"| CPU per streamed token, marginal ({results.plan.long_tokens}- vs {results.plan.tokens}-token "
        f"answers at c=16) | {_f(marginal, 1)} µs |",
    ]
    short = _phase(results, "fcc", 16)
    if short and marginal is not None and short.cpu_per_request_ms() is not None:
        fixed = (short.cpu_per_request_ms() or 0) - marginal * results.plan.tokens / 1000
        lines.append(f"| CPU per request excluding its tokens (c=16, derived) | {_f(fixed, 2)} ms |")
    return lines


def _ratio(mine: float | None, theirs: float | None) -> str:
    """mine ÷ theirs, or "-" when either is missing or the quotient means nothing (≤ 0)."""
    if mine is None or theirs is None or math.isnan(mine) or math.isnan(theirs):
        return "-"
    if theirs <= 0 or mine < 0:
        return "-"
    return f"{mine / theirs:.2f}"


def baseline_section(results: Results) -> list[str]:
    """This commit's figures next to the --baseline ref's, from the same interleaved run."""
    b = results.baseline
    if b is None:
        return []
    name = b.name
    head = results.head or "the working tree"
    rows: list[tuple[str, float | None, float | None, int]] = []  # figure, this, ref, digits
    failed: list[tuple[str, str, str]] = []
    for c in _levels(results):
        mine, theirs = _phase(results, "fcc", c), _phase(results, name, c)
        if mine is None or theirs is None:
            continue
        for metric, q, label in (
            ("ttft", 50, "added TTFT p50 (ms)"),
            ("ttft", 99, "added TTFT p99 (ms)"),
            ("total", 50, "added total p50 (ms)"),
            ("total", 99, "added total p99 (ms)"),
        ):
            rows.append(
                (
                    f"c={c}: {label}",
                    added(results, "fcc", c, metric, q),
                    added(results, name, c, metric, q),
                    2,
                )
            )
        rows += [
            (f"c={c}: req/s (higher is better)", mine.rps, theirs.rps, 1),
            (f"c={c}: tokens/s (higher is better)", mine.tps, theirs.tps, 0),
            (f"c={c}: proxy CPU ms/req", mine.cpu_per_request_ms(), theirs.cpu_per_request_ms(), 2),
            (f"c={c}: proxy CPU µs per streamed token", mine.cpu_per_ktok_ms(), theirs.cpu_per_ktok_ms(), 1),
            (
                f"c={c}: proxy RSS MB (after its batches)",
                mine.rss_peak_kb / 1024 if mine.rss_peak_kb else None,
                theirs.rss_peak_kb / 1024 if theirs.rss_peak_kb else None,
                1,
            ),
        ]
        failed.append(
            (
                f"c={c}: failed requests",
                f"{mine.failed} of {len(mine.records)}",
                f"{theirs.failed} of {len(theirs.records)}",
            )
        )
    allin, marginal, at = cpu_per_token_us(results)
    b_allin, b_marginal, _ = cpu_per_token_us(results, name, b.long)
    top = max(_levels(results), default=0)
    rows += [
        (f"CPU per streamed token, all-in at c={at} (µs)", allin, b_allin, 1),
        (
            f"CPU per streamed token, marginal ({results.plan.long_tokens}- vs "
            f"{results.plan.tokens}-token answers, µs)",
            marginal,
            b_marginal,
            1,
        ),
        (
            f"peak RSS (VmHWM) up to c={top} (MB)",
            results.fcc_rss_hwm_kb / 1024 if results.fcc_rss_hwm_kb else None,
            b.rss_hwm_kb / 1024 if b.rss_hwm_kb else None,
            1,
        ),
        (
            f"cold start, median of {len(results.cold_start)} / {len(b.cold_start)} (s)",
            percentile(results.cold_start, 50) if results.cold_start else None,
            percentile(b.cold_start, 50) if b.cold_start else None,
            3,
        ),
    ]
    theirs_micro = {r.name: r for r in b.micro}
    for r in results.micro:
        other = theirs_micro.get(r.name)
        rows.append(
            (f"in-process: {r.name} (µs per {r.unit[:-1]})", r.micros, other.micros if other else None, 1)
        )
    lines = [
        f"`{name}` is {b.sha[:12]} ({b.subject}); this commit is {head}. Both ran in this run with the same "
        "config, upstream and core, interleaved round by round with the other contenders. "
        f"Ratio = this commit ÷ {name}: below 1 means this commit's figure is smaller, which is better "
        "for times, CPU and memory and worse for req/s and tokens/s. Added figures are small differences "
        "of noisy percentiles: read a ratio of an added p99 as a direction, not a measure."
        + (
            f" This is the `{results.plan.name}` run: "
            + ", ".join(f"{lv.per_contender} requests at c={lv.concurrency}" for lv in results.plan.levels)
            + " per contender, and CPU is read in 10 ms ticks of /proc: differences of 20-30% are "
            "within its noise; use the full run to decide."
            if results.plan.name == "quick"
            else ""
        ),
        "",
        f"| figure | this commit | {name} | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {label} | {_f(m, d)} | {_f(t, d)} | {_ratio(m, t)} |" for label, m, t, d in rows]
    lines += [f"| {label} | {m} | {t} | - |" for label, m, t in failed]
    if b.micro_problem:
        lines += ["", f"The in-process micro-benchmarks could not run against {name}: {b.micro_problem}"]
    return lines


def micro_section(results: Results) -> list[str]:
    rows = ["| in-process benchmark | rate | per item |", "|---|---|---|"]
    for r in results.micro:
        rows.append(f"| {r.name} | {r.per_second:,.0f} {r.unit}/s | {r.micros:.1f} µs |")
    return rows


def profile_section(results: Results) -> list[str]:
    prof = results.profile
    if prof is None:
        if not results.plan.profile_seconds:
            return [f"No profile in this run: the `{results.plan.name}` run does not profile."]
        return ["No profile in this run: py-spy is not installed (`pip install py-spy`) or failed."]
    plan = results.plan
    lines = [
        f"py-spy, {plan.profile_seconds} s at c={plan.profile_concurrency} with {plan.tokens}-token answers, "
        f"{prof.samples} samples of the busy fcc process (idle time in epoll is not sampled). "
        f"Raw stacks: `{getattr(results, 'run_dir', 'bench/.cache/run')}/fcc-profile.txt`.",
        "",
        "Where the on-CPU time goes (by the file of the innermost frame):",
        "",
        "| part | share |",
        "|---|---|",
    ]
    lines += [f"| {name} | {share:.0%} |" for name, share in prof.buckets]
    lines += [
        "",
        "fcc's steps (inclusive: the step and everything it calls; they nest, so shares do not add up):",
        "",
        "| step | frame | inclusive |",
        "|---|---|---|",
    ]
    lines += [f"| {what} | `{frame}` | {share:.1%} |" for what, frame, share in prof.key]
    lines += ["", "Top frames by self time:", "", "| frame | self |", "|---|---|"]
    lines += [f"| `{name}` | {share:.1%} |" for name, share in prof.self_top]
    lines += ["", "Top frames by inclusive time:", "", "| frame | inclusive |", "|---|---|"]
    lines += [f"| `{name}` | {share:.0%} |" for name, share in prof.inclusive_top]
    return lines


def _floor_note(results: Results) -> str:
    levels = _levels(results)
    top = _phase(results, "direct", levels[-1]) if levels else None
    if top is None or not top.good:
        return ""
    ttft = top.ttft(50)
    return (
        f"The direct floor's TTFT p50 at c={top.concurrency} is {ttft:.1f} ms against the upstream's "
        f"{results.plan.ttft_ms:g} ms: {ttft - results.plan.ttft_ms:.1f} ms of it is the client and the "
        "upstream sharing core 1 (and the loopback), which inflates every contender's absolute numbers "
        "at high concurrency."
    )


def cores_section(results: Results) -> list[str]:
    load = results.load_cpu
    share = (
        "The proxy under test (fcc or LiteLLM) was pinned to core 0; the load client and the upstream "
        "were pinned together to core 1. So a proxy never competes with the client or the upstream, "
        "but the client and the upstream compete with each other, for every contender alike, "
        "and the kernel's loopback work lands on whichever core runs the sender."
        if results.pinned
        else "No pinning: the client, the upstream and the proxy were free to compete for both cores."
    )
    engine = (
        "bench/rawhttp.py (a bare asyncio.Protocol client that counts token markers in raw bytes)"
        if results.engine == "raw"
        else "httpx.AsyncClient"
    )
    return [
        share,
        "",
        f"The load client ran on {engine}, in its own process.",
        f"Over the measured load phases the client used {_f(load.get('client'), 1)} CPU-s and the upstream "
        f"{_f(load.get('upstream'), 1)} CPU-s. {_floor_note(results)} Added latency is still a difference "
        "measured under the same load, but once the proxy's own core is saturated it is mostly queueing. "
        "On a real machine the model is elsewhere and the proxy has the machine to itself.",
        "",
        "This is a 2-vCPU virtual machine: a cross-core loopback round trip takes ~40 µs when both "
        "sides are busy and ~110 µs after an idle gap, with a p99 of 3-4 ms (vCPU scheduling), "
        "and an asyncio wake-up after a blocking epoll wait costs ~50-140 µs of CPU. Both weigh "
        "on p99 at c=1 and on CPU per token at low concurrency, where every chunk wakes the proxy.",
    ]


def write(results: Results, md: Path, png: Path, repo: Path) -> None:
    plan = results.plan
    plotted = importlib.util.find_spec("matplotlib") is not None
    results.plotted = plotted
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    levels = ", ".join(
        f"c={lv.concurrency}: {lv.per_contender} requests ({lv.rounds} rounds)" for lv in plan.levels
    )
    lines = [
        "# fcc benchmark results",
        "",
        f"Run `{plan.name}` on {when}, {results.machine}, took {results.elapsed:.0f} s. "
        f"Upstream: TTFT {plan.ttft_ms:g} ms, one token every {plan.interval_ms:g} ms, "
        f"{plan.tokens} tokens per answer. Requests: Claude Code's recorded main-loop turns "
        f"(50-90 KB). Per contender: {levels}. Regenerate with `python -m bench`; see bench/README.md.",
        "",
        "## Targets",
        "",
        *targets(results),
        "",
        "Added = contender's percentile minus the direct floor's percentile at the same concurrency "
        "(ms). LiteLLM ratio = LiteLLM's added TTFT p50 ÷ fcc's.",
        "",
        "## Latency and throughput (ms unless stated)",
        "",
        *latency_table(results),
        "",
        "![latency percentiles vs concurrency](latency.png)"
        if plotted
        else "No plot: matplotlib is not installed (`pip install -e '.[bench]'`).",
        "",
        *(
            [f"## This commit vs {results.baseline.name}", "", *baseline_section(results), ""]
            if getattr(results, "baseline", None)
            else []
        ),
        "## fcc process",
        "",
        *fcc_section(results),
        "",
        "## Translators in-process",
        "",
        *micro_section(results),
        "",
        "## Profile of fcc under load",
        "",
        *profile_section(results),
        "",
        "## How the two cores were shared",
        "",
        *cores_section(results),
        "",
    ]
    missed = Path(__file__).resolve().parent / "MISSED.md"
    if missed.exists():  # the hand-written analysis of the missed targets
        lines += [missed.read_text(encoding="utf-8").rstrip(), ""]
    if results.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in results.notes], ""]
    md.write_text("\n".join(lines), encoding="utf-8")
    if plotted:
        plot(results, png)


def plot(results: Results, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"direct": "tab:gray", "fcc": "tab:blue", "litellm": "tab:red"}
    for ax, metric, title in ((axes[0], "ttft", "time to first token"), (axes[1], "total", "total time")):
        for name in _names(results):
            phases = sorted((p for p in results.phases if p.contender == name), key=lambda p: p.concurrency)
            if not phases:
                continue
            xs = [p.concurrency for p in phases]
            for q, style in ((50, "-"), (99, "--")):
                ys = [getattr(p, metric)(q) for p in phases]
                color = colors.get(name, "tab:green")  # tab:green: the --baseline ref
                ax.plot(xs, ys, style, marker="o", color=color, label=f"{name} p{q}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("ms")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"fcc benchmark ({results.plan.name} run): latency percentiles vs concurrency")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
