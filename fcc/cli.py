"""The `fcc` command: thin Typer commands over engine functions, rendered with rich."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer
from msgspec.structs import asdict

from fcc import __version__
from fcc.commands.models import (
    doctor_findings,
    doctor_rows,
    live_health,
    probe_rows,
    provider_rows,
    rule_rows,
    tier_rows,
)
from fcc.engine.catalog.config import Overrides, Settings, config_dir, load_settings
from fcc.engine.catalog.resources import catalog_dir
from fcc.engine.catalog.secrets import ENV_FILE_NAME, KeyStore
from fcc.engine.errors import ConfigError, FccError

# Each command imports what it alone uses, so `fcc serve` starts without the others' modules.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from fcc.commands.doctor import Report
    from fcc.engine.catalog.config import ModelRef

app = typer.Typer(
    name="fcc",
    help="Run the Claude Code client on any model: a local Anthropic Messages proxy.",
    epilog="Example: fcc init && fcc check && fcc claude; or fcc serve, then "
    "ANTHROPIC_BASE_URL=http://127.0.0.1:8082 ANTHROPIC_AUTH_TOKEN=anything claude",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


class _Console:
    """A rich Console made on first use: importing and setting up rich is a tenth of a start
    on a slow machine, and `fcc serve` prints its banner as plain lines (`_plain`)."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            if self._stderr:
                self._console = Console(stderr=True, soft_wrap=True)
            else:
                # Piped output (not a terminal) would otherwise wrap every table at 80 columns.
                self._console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
        return self._console


out = _Console(stderr=False)
err = _Console(stderr=True)


def _table(title: str) -> Table:
    from rich.table import Table

    return Table(title=title, title_justify="left")


def _plain(*lines: str) -> None:
    """Lines to stdout as they are, without rich (`fcc serve`'s banner)."""
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


def _columns(title: str, heads: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """A table as aligned plain lines, for output that must not wait for rich."""
    widths = [max(len(cell) for cell in column) for column in zip(heads, *rows, strict=True)]
    shown = [heads, *rows]
    return [title] + [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in shown
    ]


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $XDG_CONFIG_HOME/free-claude-code/config.yaml)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(message, markup=False, highlight=False)
    raise typer.Exit(code)


def _settings(config: Path | None, overrides: Overrides | None = None) -> Settings:
    try:
        return load_settings(config, overrides)
    except ConfigError as exc:
        _fail("\n".join(str(p) for p in exc.problems) + "\nfix the above, then run `fcc check`")


def _keys(settings: Settings) -> KeyStore:
    return KeyStore(settings.config_dir / ENV_FILE_NAME)


@app.command()
def check(
    paths: Annotated[list[Path] | None, typer.Argument(help="More files or folders to validate.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate the provider catalog, your config and any given files; list every problem.

    Example: fcc check ~/.config/free-claude-code/config.yaml my-provider.yaml
    """
    from fcc.commands.check import run_check

    report = run_check(paths or [], config)
    if as_json:
        out.print_json(
            json.dumps(
                {"ok": report.ok, "files": report.files, "problems": [asdict(p) for p in report.problems]}
            )
        )
    else:
        for p in report.problems:
            out.print(str(p), markup=False, highlight=False)
        n = len(report.problems)
        summary = f"{len(report.files)} files checked, " + ("no problems" if not n else f"{n} problem(s)")
        (err if n else out).print(summary, markup=False, highlight=False)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write (default: $XDG_CONFIG_HOME/free-claude-code)."),
    ] = None,
) -> None:
    """Write a commented config.yaml and a keys.env template for your provider keys.

    Example: fcc init && fcc check
    """
    from fcc.commands.init import scaffold

    target = directory or config_dir()
    settings = _builtin_settings()
    tiers: dict[str, str] = {t: str(r.target) for t, r in settings.tiers.items()}
    result = scaffold(target, tiers, list(settings.providers.values()), force)
    for path in result.written:
        out.print(f"wrote {path}", markup=False, highlight=False)
    out.print(
        f"next: put your keys in {result.written[1]}, edit the tiers, then run `fcc check`", markup=False
    )
    out.print("then start Claude Code on fcc with: fcc claude", markup=False)
    out.print(
        "for fcc's status line in Claude Code, add to ~/.claude/settings.json:\n"
        '  "statusLine": {"type": "command", "command": "fcc statusline"}',
        markup=False,
        highlight=False,
    )


def _builtin_settings() -> Settings:
    """The catalog and built-in defaults alone (ignoring any user config)."""
    try:
        return load_settings(user_config=False)
    except ConfigError as exc:
        _fail("\n".join(str(p) for p in exc.problems))


_TIER_FLAG = re.compile(r"^([a-z][a-z0-9_-]*)=([a-z][a-z0-9_]*/\S+)$")


def _parse_tier_flags(values: list[str] | None) -> dict[str, str]:
    tiers: dict[str, str] = {}
    for value in values or []:
        m = _TIER_FLAG.match(value)
        if not m:
            _fail(
                f"--tier {value}: expected TIER=PROVIDER/MODEL, a tier such as opus, sonnet, haiku or "
                "default (or a name of your own)"
            )
        tiers[m.group(1)] = m.group(2)
    return tiers


TierOpt = Annotated[
    list[str] | None,
    typer.Option("--tier", "-t", help="Route a tier: TIER=PROVIDER/MODEL (repeatable)."),
]


@app.command()
def models(
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="Show only this provider.")] = None,
    config: ConfigOpt = None,
    tier: TierOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show where each Claude tier is routed, and what each provider offers.

    Example: fcc models --provider nvidia_nim
    """
    settings = _settings(config, Overrides(tiers=_parse_tier_flags(tier)))
    if provider is not None and provider not in settings.providers:
        _fail(f"unknown provider {provider!r}: known providers are {', '.join(sorted(settings.providers))}")
    tiers = tier_rows(settings)
    rules = rule_rows(settings)
    providers = provider_rows(settings, _keys(settings), provider)
    probes = probe_rows(settings)
    health = live_health(settings)
    doctor = doctor_rows(settings)
    if as_json:
        data = {
            "tiers": [asdict(t) for t in tiers],
            "routes": [asdict(r) for r in rules],
            "providers": [asdict(p) for p in providers],
            "probes": [asdict(p) for p in probes],
            "health": health,
            "doctor": [asdict(d) for d in doctor],
        }
        out.print_json(json.dumps(data))
        return
    if provider is None:
        table = _table("Tiers")
        for col in ("tier", "routes to", "from", "thinking", "fallbacks"):
            table.add_column(col)
        for t in tiers:
            table.add_row(t.tier, t.route, t.origin, t.thinking, ", ".join(t.fallbacks) or "-")
        out.print(table)
        if rules:
            table = _table("Routing rules (first match decides)")
            for col in ("#", "rule", "when", "use", "strategy", "thinking"):
                table.add_column(col, overflow="fold")
            for i, r in enumerate(rules, 1):
                table.add_row(str(i), r.name, r.when, ", ".join(r.use), r.strategy, r.thinking)
            out.print(table)
    table = _table("Providers")
    for col in ("id", "transport", "base URL", "auth", "key", "models"):
        table.add_column(col, overflow="fold")
    for p in providers:
        key = (
            "not needed"
            if p.key_set is None
            else (f"{p.key_env} set" if p.key_set else f"{p.key_env} missing")
        )
        more = (f"+{len(p.models) - 2} more",) if provider is None and len(p.models) > 2 else ()
        shown = p.models if provider is not None else p.models[:2] + more
        table.add_row(p.id, p.transport, p.base_url, p.auth, key, "\n".join(shown) or "-")
    out.print(table)
    if provider is None:
        table = _table("Local answers (probes)")
        for col in ("probe", "on", "answer", "from"):
            table.add_column(col, overflow="fold")
        for pr in probes:
            table.add_row(pr.name, "yes" if pr.active else "no", pr.answer, _short_source(pr.source))
        out.print(table)
    _print_health(health)
    if doctor:
        table = _table("Last fcc doctor results")
        for col in ("model", "verdict", "failing check", "why", "checked"):
            table.add_column(col, overflow="fold")
        for d in doctor:
            table.add_row(d.model, d.verdict, d.failing or "-", d.reason or "-", f"{d.age} ago")
        out.print(table)


def _print_health(health: dict[str, object] | None) -> None:
    if health is None:
        out.print("Health: no fcc is running at the configured address.", markup=False)
        return
    candidates = health.get("candidates") or {}
    assert isinstance(candidates, dict)
    if not candidates:
        out.print("Health (live): every backend that has been used is healthy.", markup=False)
        return
    table = _table("Health (live)")
    for col in ("candidate", "state", "recent failures", "cool-down left", "last error"):
        table.add_column(col, overflow="fold")
    for key, c in candidates.items():
        table.add_row(
            key, c["state"], str(c["recent_failures"]), f"{c['cooldown_left']}s", c["last_error"] or "-"
        )
    out.print(table)


def _short_source(source: str) -> str:
    return "built-in" if source.startswith(str(catalog_dir())) else source


@app.command()
def route(
    request: Annotated[Path, typer.Argument(help="A request body, or a recording ({headers, body}).")],
    config: ConfigOpt = None,
    tier: TierOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Explain where fcc sends a request: the rule that matched (or the family's tier), then
    every candidate in order, ok or skipped and why.

    Example: fcc route ~/recorded/turn.json --json
    """
    from fcc.commands.route import RequestFileError, explain, read_request
    from fcc.engine.routing.evidence import evidence

    settings = _settings(config, Overrides(tiers=_parse_tier_flags(tier)))
    try:
        body, headers = read_request(request)
    except RequestFileError as exc:
        _fail(str(exc))
    # What the server also knows: a running fcc's health, and what fcc doctor found.
    learned = evidence(doctor_findings(settings))
    result = explain(settings, body, headers, live_health(settings), learned)
    if as_json:
        out.print_json(json.dumps(result.wire()))
        return
    f = result.features
    decided = f"rule {result.rule}" if result.rule else (f"tier {result.tier}" if result.tier else "direct")
    out.print(f"{f.model} → {decided} (strategy {result.strategy})", markup=False, highlight=False)
    facts = [f"~{f.input_tokens} input tokens", f"{f.tool_count} tools"]
    facts += [
        w for w, on in (("thinking", f.thinking), ("images", f.has_images), ("subagent", f.subagent)) if on
    ]
    out.print("request: " + ", ".join(facts), markup=False, highlight=False)
    table = _table("Candidates, in order")
    for col in ("model", "verdict", "why"):
        table.add_column(col, overflow="fold")
    for v in result.candidates:
        table.add_row(v.model, "ok" if v.ok else "skipped", v.reason or "-")
    out.print(table)
    if result.error:
        out.print(f"the client would hear: {result.error}", markup=False, highlight=False)


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default 8082).")] = None,
    tier: TierOpt = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes on the one port, sharing the state store.")
    ] = 1,
    run_doctor: Annotated[
        bool, typer.Option("--doctor", help="Run fcc doctor on every routed model in the background.")
    ] = False,
) -> None:
    """Run the proxy. Then point Claude Code at it:

    ANTHROPIC_BASE_URL=http://127.0.0.1:8082 ANTHROPIC_AUTH_TOKEN=anything claude

    Example: fcc serve --tier opus=nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct --tier haiku=ollama/qwen3:8b
    """
    import uvicorn

    from fcc.engine.server import create_app
    from fcc.engine.server.workers import ENV, describe
    from fcc.engine.transports import speed

    overrides = Overrides(host=host, port=port, tiers=_parse_tier_flags(tier))
    settings = _settings(config, overrides)
    try:
        loop, http = speed.loop(), speed.http()
        speed.upstream()
    except RuntimeError as exc:
        _fail(str(exc))
    s = settings.server
    if s.host not in _LOOPBACK and not s.auth_token:
        _fail(
            f"refusing to listen on {s.host} without a token: anyone who can reach it could spend your keys. "
            "Set server.auth_token in config.yaml (8+ characters), or bind 127.0.0.1"
        )
    if workers > 1 and settings.state.backend == "memory":
        _fail(
            f"--workers {workers} needs a shared state store, or each worker would enforce the limits alone: "
            "use state: {backend: sqlite} (the default) or {backend: redis, url: …} in config.yaml"
        )
    _check_store(settings)
    url = s.url
    token = "<your server.auth_token>" if s.auth_token else "anything"
    several = f" ({workers} workers)" if workers > 1 else ""
    rows = [(t.tier, t.route, t.origin, ", ".join(t.fallbacks) or "-") for t in tier_rows(settings)]
    _plain(
        f"fcc {__version__} listening on {url}{several}",
        "Point Claude Code at it:",
        f"  export ANTHROPIC_BASE_URL={url}",
        f"  export ANTHROPIC_AUTH_TOKEN={token}",
        f"Dashboard: {url}/dashboard",
        f"State: {settings.state.shown}",
        *_columns("Tiers:", ("tier", "routes to", "from", "fallbacks"), rows),
    )
    options: dict[str, Any] = {
        "host": s.host,
        "port": s.port,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 5,
        "loop": loop,
        "http": http,
    }
    if workers > 1:
        os.environ[ENV] = describe(config, overrides)
        if run_doctor:
            # Once for all workers: its results reach them through the shared store.
            _doctor_in_background(settings)
        uvicorn.run("fcc.engine.server.workers:app", factory=True, workers=workers, **options)
        return
    from fcc.engine.server.reload import POLL, Source

    source = Source(config, overrides)
    uvicorn.run(create_app(settings, doctor=run_doctor, source=source, watch=POLL), **options)


def _doctor_in_background(settings: Settings) -> None:
    import asyncio
    import threading

    from fcc.commands.doctor import targets

    refs = targets(settings, [], None)
    work = _doctor(settings, _keys(settings), refs, 3, quiet=True)
    threading.Thread(target=asyncio.run, args=(work,), daemon=True, name="fcc-doctor").start()


def _check_store(settings: Settings) -> None:
    """The store opens, or fcc does not start: the same words whatever the backend."""
    import asyncio

    from fcc.engine.state import opened
    from fcc.engine.state.store import StoreError

    async def probe() -> None:
        async with opened(settings.state):
            pass

    try:
        asyncio.run(probe())
    except StoreError as exc:
        _fail(f"fcc cannot start: {exc}")


@app.command()
def doctor(
    models: Annotated[
        list[str] | None, typer.Argument(help="PROVIDER/MODEL to examine (default: all routed).")
    ] = None,
    config: ConfigOpt = None,
    provider: Annotated[
        str | None, typer.Option("--provider", "-p", help="Every catalog model of this provider.")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Models examined at a time.")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Find out which backends really work with Claude Code: reach, stream, tool calls, tool
    results, reasoning, timing. Results are kept and the router uses them.

    Example: fcc doctor groq/openai/gpt-oss-120b --json
    """
    import asyncio

    from fcc.commands.doctor import primary_models, targets
    from fcc.engine.state.store import StoreError

    settings = _settings(config)
    keys = _keys(settings)
    if provider is not None:
        p = settings.providers.get(provider)
        if p is None:
            _fail(f"unknown provider {provider!r}: `fcc models` lists them")
        if p.api_key_env and keys.get(p.api_key_env) is None and not p.local:
            _fail(f"{provider} has no key: set {p.api_key_env} in the environment or keys.env first")
        if not p.models:
            _fail(f"the catalog lists no models for {provider}: name them, fcc doctor {provider}/MODEL")
    refs = targets(settings, models or [], provider)
    for ref in refs:
        if ref.provider not in settings.providers:
            _fail(f"{ref}: unknown provider {ref.provider!r} (`fcc models` lists them)")
    # The table says what each upstream answered; its warnings would say it twice.
    upstream_log = logging.getLogger("fcc.upstream")
    level = upstream_log.level
    upstream_log.setLevel(logging.ERROR)
    try:
        reports = asyncio.run(_doctor(settings, keys, refs, concurrency, quiet=as_json))
    except StoreError as exc:
        _fail(str(exc))
    finally:
        upstream_log.setLevel(level)  # a caller in the same process keeps its logging
    if as_json:
        out.print_json(json.dumps([r.wire() for r in reports]))
    else:
        out.print(_doctor_table(reports))
    broken = {r.model for r in reports if r.verdict == "broken"} & primary_models(settings)
    if broken:
        err.print(
            f"a tier's primary model is broken: {', '.join(sorted(broken))}", markup=False, highlight=False
        )
        raise typer.Exit(1)


async def _doctor(
    settings: Settings, keys: KeyStore, refs: list[ModelRef], concurrency: int, quiet: bool
) -> list[Report]:
    from rich.live import Live

    from fcc.commands.doctor import Doctor, DoctorProgress, claude_code_tools, run
    from fcc.engine.routing.runtime import running
    from fcc.engine.state import backend_for
    from fcc.engine.state.service import StateService

    service = StateService(backend_for(settings.state), settings.providers)
    progress = DoctorProgress([str(r) for r in refs])
    async with running(keys, service) as dispatcher:
        doctor = Doctor(dispatcher, service, settings, claude_code_tools())
        if quiet or not err.is_terminal:
            return await run(doctor, refs, concurrency=concurrency)
        with Live(progress.render(), console=err.get(), refresh_per_second=8, transient=True) as live:

            def update(model: str, check: str, state: str) -> None:
                progress.update(model, check, state)
                live.update(progress.render())

            return await run(doctor, refs, concurrency=concurrency, progress=update)


def _doctor_table(reports: list[Report]) -> Table:
    table = _table("fcc doctor")
    for col in ("model", "verdict", "failing check", "why", "TTFT", "tokens/s"):
        table.add_column(col, overflow="fold", justify="right" if col in ("TTFT", "tokens/s") else "left")
    for r in reports:
        failing = r.failing
        why = r.checks[failing].detail if failing else (r.slow or "-")
        ttft = f"{r.ttft_ms / 1000:.2f} s" if r.ttft_ms is not None else "-"
        rate = f"{r.tokens_per_s:.0f}" if r.tokens_per_s is not None else "-"
        table.add_row(r.model, r.verdict, failing or "-", why, ttft, rate)
    return table


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def claude(
    ctx: typer.Context,
    config: ConfigOpt = None,
) -> None:
    """Start Claude Code wired to fcc (starting fcc for as long as it runs, if none answers).
    Every other argument goes to claude unchanged.

    Example: fcc claude -p "explain this repo" --output-format json
    """
    from fcc.commands.claude import LaunchError, launch

    settings = _settings(config)
    try:
        code = launch(settings, config, list(ctx.args))
    except LaunchError as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@app.command()
def statusline(config: ConfigOpt = None) -> None:
    """One line for Claude Code's status line: the route of the session's last turn, its
    tokens, and a mark when that route is in trouble. Reads Claude Code's JSON on stdin.

    Settings: {"statusLine": {"type": "command", "command": "fcc statusline"}}
    """
    from fcc.commands.statusline import main as show

    settings = _settings(config)
    raise typer.Exit(show(settings.server.url, settings.server.auth_token or ""))


@app.command()
def usage(
    config: ConfigOpt = None,
    since: Annotated[
        str, typer.Option("--since", help="7d (the last seven days) or a date, 2026-11-20.")
    ] = "7d",
    by: Annotated[str, typer.Option("--by", help="day, provider, model or session.")] = "day",
    as_json: JsonOpt = False,
) -> None:
    """What your sessions spent, from fcc's state store: requests, errors, tokens, local answers.

    Example: fcc usage --since 30d --by model
    """
    import asyncio

    from fcc.commands.usage import By, UsageError, since_day
    from fcc.commands.usage import usage as compute
    from fcc.engine.state.store import StoreError

    if by not in ("day", "provider", "model", "session"):
        _fail(f"--by {by}: use day, provider, model or session")
    settings = _settings(config)
    try:
        first = since_day(since)
        rows = asyncio.run(compute(settings.state, first, cast("By", by)))
    except (UsageError, StoreError) as exc:
        _fail(str(exc))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = _table(f"Usage since {first.isoformat()} (UTC), by {by}")
    columns = (by, "requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "probe_answers")
    for col in columns:
        table.add_column(col.replace("_", " "), justify="left" if col == by else "right", overflow="fold")
    for row in rows:
        table.add_row(*(str(row[c]) if c == by else f"{row[c]:,}" for c in columns))
    if rows:
        total = {c: sum(int(r[c]) for r in rows) for c in columns[1:]}
        table.add_row("all", *(f"{total[c]:,}" for c in columns[1:]), style="bold")
    out.print(table if rows else "No requests recorded in that time.", markup=False)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"fcc {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """fcc: point Claude Code at ANTHROPIC_BASE_URL=http://127.0.0.1:8082 and pick any backend."""


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is ours
    try:
        app()
    except FccError as exc:
        err.print(str(exc), markup=False, highlight=False)
        sys.exit(1)
    except Exception as exc:  # the one place an unexpected failure becomes an exit code
        if os.environ.get("FCC_DEBUG"):
            raise
        what = f"{type(exc).__name__}: {exc}"
        err.print(
            f"fcc: internal error ({what}); rerun with FCC_DEBUG=1 for details", markup=False, highlight=False
        )
        sys.exit(2)
