"""`fcc doctor`: which backends really work with Claude Code, found out with a handful of
small requests before a session fails on them, and kept in the state store.

For each model, in order, stopping where the rest would be pointless:
reach (the server answers, the key is accepted, the model exists), stream (a short streamed
answer translates cleanly; its time to first token and output rate are the timing), tools
(given Claude Code's own tool definitions and a task that needs one, it makes a real call),
tool_result (the result, sent back as Claude Code sends it, is answered), and where the
catalog says the model reasons, reasoning (it arrives, and the next turn that carries it
back is accepted). Every request goes through the normal dispatcher, so the provider's rate
limits and quotas hold, and is recorded like any other (session fcc-doctor).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from fcc.engine.catalog.config import ModelRef, Settings
from fcc.engine.catalog.providers import Provider
from fcc.engine.errors import UpstreamError
from fcc.engine.request.features import features_of
from fcc.engine.routing.candidates import plan
from fcc.engine.routing.dispatch import Dispatcher, TurnRecord
from fcc.engine.routing.dispatch import Request as TurnRequest
from fcc.engine.routing.evidence import KEEP, NAMESPACE
from fcc.engine.routing.router import Candidate, Route
from fcc.engine.state.service import StateService
from fcc.engine.translate.events import BlockStart, Delta, MessageAccumulator, MessageDelta
from fcc.engine.types import JSON

Verdict = Literal["works", "degraded", "broken"]
CHECKS = ("reach", "stream", "tools", "tool_result", "reasoning")
TOOLS_FILE = Path(__file__).with_name("claude_code_tools.json")
SESSION = "fcc-doctor"
SLOW_TTFT_MS = 20_000.0
SLOW_TOKENS_PER_S = 5.0
_TEXT_CALL = re.compile(r"<tool_call>|<function[=>]|\"name\"\s*:\s*\"\w+\"|\bBash\s*\(|\"command\"\s*:", re.I)
Progress = Callable[[str, str, str], None]  # (model, check, state: running/ok/failed/skipped)


def claude_code_tools() -> list[JSON]:
    data = json.loads(TOOLS_FILE.read_text(encoding="utf-8"))
    tools: list[JSON] = data["tools"]
    return tools


class Check(msgspec.Struct):
    ok: bool
    detail: str
    kind: str = "ok"  # why it failed: key, model, unreachable, busy, rejected, no_call, text_call…

    def wire(self) -> JSON:
        out: JSON = {"ok": self.ok, "detail": self.detail}
        if not self.ok:
            out["kind"] = self.kind
        return out


class Report(msgspec.Struct):
    model: str
    checks: dict[str, Check] = msgspec.field(default_factory=dict)
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    checked: float = msgspec.field(default_factory=time.time)
    slow_ttft_ms: float = SLOW_TTFT_MS
    slow_tokens_per_s: float = SLOW_TOKENS_PER_S

    @property
    def failing(self) -> str | None:
        return next((name for name, c in self.checks.items() if not c.ok), None)

    @property
    def verdict(self) -> Verdict:
        core = ("reach", "stream", "tools", "tool_result")
        if any(not self.checks[c].ok for c in core if c in self.checks):
            return "broken"
        if any(not c.ok for c in self.checks.values()) or self.slow:
            return "degraded"
        return "works"

    @property
    def slow(self) -> str | None:
        if self.ttft_ms is not None and self.ttft_ms > self.slow_ttft_ms:
            return f"slow: {self.ttft_ms / 1000:.1f} s to the first token"
        if self.tokens_per_s is not None and self.tokens_per_s < self.slow_tokens_per_s:
            return f"slow: {self.tokens_per_s:.1f} tokens/s"
        return None

    def wire(self) -> JSON:
        return {
            "model": self.model,
            "verdict": self.verdict,
            "checks": {name: c.wire() for name, c in self.checks.items()},
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 1),
            "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 1),
            "checked": self.checked,
        }


class Answer(msgspec.Struct):
    message: JSON | None = None
    error: UpstreamError | None = None
    problem: str | None = None  # the stream broke after it began (an error event)
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    thinking: str = ""

    @property
    def blocks(self) -> list[JSON]:
        return list((self.message or {}).get("content") or [])

    def text(self) -> str:
        return "".join(str(b.get("text", "")) for b in self.blocks if b.get("type") == "text")


class Doctor:
    def __init__(
        self,
        dispatcher: Dispatcher,
        state: StateService,
        settings: Settings,
        tools: list[JSON],
        *,
        slow_ttft_ms: float = SLOW_TTFT_MS,
    ) -> None:
        self.dispatcher = dispatcher
        self.state = state
        self.settings = settings
        self.tools = tools
        self.slow_ttft_ms = slow_ttft_ms

    async def ask(self, provider: Provider, model: str, body: JSON) -> Answer:
        label = f"{provider.id}/{model}"
        body = {"model": label, "stream": True, **body}
        features = features_of(body, {})
        route = Route(label, None, (Candidate(provider, model),), None)
        found = plan(route, features)
        record = TurnRecord(requested=label, tier=None, rule="doctor", session=SESSION, stream=True)
        if found.error is not None:
            return Answer(
                error=UpstreamError(
                    str(found.error), status=400, error_type="invalid_request_error", retryable=False
                )
            )
        request = TurnRequest(body, features, route, found, None, "2023-06-01")
        acc = MessageAccumulator()
        answer = Answer()
        first: float | None = None
        began = time.perf_counter()
        thinking: list[str] = []
        try:
            async for batch in self.dispatcher.events(request, record):
                for event in batch:
                    acc.feed(event)
                    if first is None and isinstance(event, BlockStart | Delta):
                        first = time.perf_counter()
                    if isinstance(event, Delta) and event.kind == "thinking_delta":
                        thinking.append(event.value)
                    if isinstance(event, BlockStart) and event.block.get("type") == "thinking":
                        thinking.append("")  # a thinking block, even one whose text is omitted
                    if isinstance(event, MessageDelta) and first is not None:
                        spent = time.perf_counter() - first
                        if spent > 0 and event.usage.output_tokens > 1:
                            answer.tokens_per_s = event.usage.output_tokens / spent
            status = 200
        except UpstreamError as exc:
            answer.error = exc
            status = exc.status
        finally:
            self.state.add(record.finished(status if answer.error is None else answer.error.status))
        if acc.error is not None:
            answer.problem = f"{acc.error.error_type}: {acc.error.message}"
        answer.message = acc.result()
        answer.ttft_ms = None if first is None else (first - began) * 1000
        answer.thinking = "".join(thinking) if thinking else ""
        if thinking and not answer.thinking:
            answer.thinking = " "  # present but omitted
        return answer

    # -- the checks ------------------------------------------------------------------------

    async def examine(self, ref: ModelRef, progress: Progress | None = None) -> Report:
        provider = self.settings.providers[ref.provider]
        report = Report(str(ref), slow_ttft_ms=self.slow_ttft_ms)
        say = progress or (lambda *_: None)

        async def run(name: str, check: Callable[[], Awaitable[Check]]) -> bool:
            say(report.model, name, "running")
            result = await check()
            report.checks[name] = result
            say(report.model, name, "ok" if result.ok else "failed")
            return result.ok

        if not await run("reach", lambda: self._reach(provider, ref.model)):
            return self._skip_rest(report, say)
        stream: list[Answer] = []
        if not await run("stream", lambda: self._stream(provider, ref.model, report, stream)):
            return self._skip_rest(report, say)
        called: list[Answer] = []
        if await run("tools", lambda: self._tools(provider, ref.model, called)):
            await run("tool_result", lambda: self._tool_result(provider, ref.model, called[0]))
        else:
            report.checks["tool_result"] = Check(False, "not tried: no tool call to answer", "skipped")
            say(report.model, "tool_result", "skipped")
        info = provider.model(ref.model)
        if info is not None and info.reasoning:
            await run("reasoning", lambda: self._reasoning(provider, ref.model))
        if report.slow:
            say(report.model, "timing", "slow")
        return report

    @staticmethod
    def _skip_rest(report: Report, say: Progress) -> Report:
        for name in CHECKS:
            if name not in report.checks and name != "reasoning":
                report.checks[name] = Check(False, f"not tried: {report.failing} failed", "skipped")
                say(report.model, name, "skipped")
        return report

    async def _reach(self, provider: Provider, model: str) -> Check:
        answer = await self.ask(
            provider,
            model,
            {"max_tokens": 16, "messages": [{"role": "user", "content": "Reply with one word: ok"}]},
        )
        if answer.error is not None:
            return _refusal(answer.error, provider)
        if answer.problem:
            return Check(False, f"the answer broke off: {answer.problem}", "error")
        return Check(True, "answers")

    async def _stream(self, provider: Provider, model: str, report: Report, out: list[Answer]) -> Check:
        ask = {
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Count from 1 to 30, separated by spaces."}],
        }
        answer = await self.ask(provider, model, ask)
        out.append(answer)
        report.ttft_ms, report.tokens_per_s = answer.ttft_ms, answer.tokens_per_s
        if answer.error is not None:
            return _refusal(answer.error, provider)
        if answer.problem:
            return Check(False, f"the stream broke off: {answer.problem}", "error")
        if not answer.text().strip():
            return Check(False, "the stream ended without any text", "empty")
        rate = f", {answer.tokens_per_s:.0f} tokens/s" if answer.tokens_per_s else ""
        first = f"first token after {answer.ttft_ms:.0f} ms" if answer.ttft_ms is not None else "streams"
        return Check(True, first + rate)

    async def _tools(self, provider: Provider, model: str, out: list[Answer]) -> Check:
        ask = {
            "max_tokens": 200,
            "system": "You are a coding agent in a terminal. Act with the tools you are given.",
            "tools": self.tools,
            "messages": [
                {"role": "user", "content": "Run the shell command `echo fcc-doctor` with the Bash tool."}
            ],
        }
        answer = await self.ask(provider, model, ask)
        if answer.error is not None:
            refused = _refusal(answer.error, provider)
            if answer.error.status == 400:
                return Check(False, f"rejected Claude Code's tool definitions: {answer.error}", "rejected")
            return refused
        if answer.problem:
            return Check(False, f"the answer broke off: {answer.problem}", "error")
        calls = [b for b in answer.blocks if b.get("type") == "tool_use"]
        if not calls:
            if _TEXT_CALL.search(answer.text()):
                return Check(False, "wrote the tool call as text instead of calling the tool", "text_call")
            stop = (answer.message or {}).get("stop_reason")
            if stop == "max_tokens":
                return Check(False, "ran out of output tokens before calling a tool", "no_call")
            return Check(False, "answered in text without calling a tool", "no_call")
        call = calls[0]
        schemas = {t["name"]: t.get("input_schema") or {} for t in self.tools}
        if call.get("name") not in schemas:
            return Check(False, f"called a tool that does not exist: {call.get('name')!r}", "unknown_tool")
        required = schemas[call["name"]].get("required") or []
        missing = [r for r in required if r not in (call.get("input") or {})]
        if missing:
            return Check(
                False, f"called {call['name']} without its required {', '.join(missing)}", "bad_arguments"
            )
        out.append(answer)
        return Check(True, f"called {call['name']} with {json.dumps(call.get('input'))[:80]}")

    async def _tool_result(self, provider: Provider, model: str, called: Answer) -> Check:
        call = next(b for b in called.blocks if b.get("type") == "tool_use")
        ask = {
            "max_tokens": 150,
            "system": "You are a coding agent in a terminal. Act with the tools you are given.",
            "tools": self.tools,
            "messages": [
                {"role": "user", "content": "Run the shell command `echo fcc-doctor` with the Bash tool."},
                {"role": "assistant", "content": called.blocks},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": call["id"],
                            "content": "fcc-doctor\n",
                            "is_error": False,
                        }
                    ],
                },
            ],
        }
        answer = await self.ask(provider, model, ask)
        if answer.error is not None:
            return Check(False, f"refused the tool result: {answer.error}", "rejected")
        if answer.problem:
            return Check(False, f"the answer broke off: {answer.problem}", "error")
        if not answer.blocks:
            return Check(False, "answered the tool result with nothing", "empty")
        return Check(True, "answered the tool result")

    async def _reasoning(self, provider: Provider, model: str) -> Check:
        question = {
            "role": "user",
            "content": "Is 1009 a prime number? Think it through, then answer yes or no.",
        }
        ask = {"max_tokens": 400, "thinking": {"type": "adaptive"}, "messages": [question]}
        answer = await self.ask(provider, model, ask)
        if answer.error is not None:
            return Check(False, f"refused a thinking request: {answer.error}", "rejected")
        if not answer.thinking:
            where = provider.quirks.reasoning_field
            return Check(
                False,
                f"no reasoning arrived (the catalog says it reasons; reasoning_field {where}, "
                f"reasoning_param {provider.quirks.reasoning_param})",
                "no_reasoning",
            )
        # The next turn carries the reasoning back, as Claude Code sends it.
        follow = {
            "max_tokens": 100,
            "thinking": {"type": "adaptive"},
            "messages": [
                question,
                {"role": "assistant", "content": answer.blocks},
                {"role": "user", "content": "And 1013?"},
            ],
        }
        again = await self.ask(provider, model, follow)
        if again.error is not None:
            return Check(
                False, f"refused the next turn carrying its reasoning back: {again.error}", "round_trip"
            )
        return Check(True, f"reasons ({len(answer.thinking.strip())} characters), and takes it back")


def _refusal(exc: UpstreamError, provider: Provider) -> Check:
    text = str(exc)
    if "needs an API key" in text or ("needs " in text and exc.status == 500):
        return Check(False, text, "key")
    if exc.status in (401, 403) and provider.api_key_env:
        env = provider.api_key_env
        return Check(
            False, f"the key was refused ({exc.status}): check {env}, then run fcc doctor again", "key"
        )
    if exc.status in (401, 403):
        return Check(
            False,
            f"the server wants a key ({exc.status}): give the provider api_key_env in config.yaml and set it",
            "key",
        )
    if exc.status == 404:
        return Check(
            False, f"the model is not known there (404): a retired or misspelled id ({text})", "model"
        )
    if "cannot reach" in text:
        return Check(False, text.split("; to use another backend")[0], "unreachable")
    if exc.status == 429:
        return Check(
            False, f"rate-limited or out of quota right now: run fcc doctor again later ({text})", "busy"
        )
    if exc.status in (504, 529) or exc.status >= 500:
        return Check(False, f"the server failed ({exc.status}): {text}", "error")
    return Check(False, text, "error")


def targets(settings: Settings, given: Sequence[str], provider: str | None) -> list[ModelRef]:
    """What to examine: the models named, a provider's catalog models, else every model the
    config routes to (tiers, their fallbacks, rules)."""
    if given:
        return [ModelRef.parse(g) for g in given]
    if provider is not None:
        p = settings.providers[provider]
        return [ModelRef(p.id, m.id) for m in p.models]
    return settings.routed()


def primary_models(settings: Settings) -> set[str]:
    return {str(t.target) for t in settings.tiers.values()}


async def run(
    doctor: Doctor, refs: Sequence[ModelRef], *, concurrency: int = 3, progress: Progress | None = None
) -> list[Report]:
    """Examines a few models at a time; saves each result in the state store as it comes."""
    gate = asyncio.Semaphore(concurrency)

    async def one(ref: ModelRef) -> Report:
        async with gate:
            report = await doctor.examine(ref, progress)
        await doctor.state.put(NAMESPACE, {report.model: json.dumps(report.wire())}, KEEP)
        return report

    return list(await asyncio.gather(*(one(r) for r in refs)))


class DoctorProgress:
    """The live display while fcc doctor runs: each model, the check it is on, what is done."""

    MARKS = {"ok": "✓", "failed": "✗", "skipped": "·", "running": "…", "slow": "⌛"}

    def __init__(self, models: list[str]) -> None:
        self.models = models
        self.states: dict[str, dict[str, str]] = {m: {} for m in models}
        self.current: dict[str, str] = {}

    def update(self, model: str, check: str, state: str) -> None:
        self.states.setdefault(model, {})[check] = state
        self.current[model] = check if state == "running" else ""

    def render(self) -> Any:
        from rich.table import Table

        table = Table(title="fcc doctor: checking", title_justify="left")
        table.add_column("model", overflow="fold")
        for check in CHECKS:
            table.add_column(check.replace("_", " "), justify="center")
        table.add_column("now")
        for model in self.models:
            done = self.states.get(model, {})
            row = [self.MARKS.get(done.get(c, ""), "") for c in CHECKS]
            now = self.current.get(model) or ("done" if done and not self.current.get(model) else "waiting")
            table.add_row(model, *row, now)
        return table
