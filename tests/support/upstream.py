"""A real upstream for tests: replays the stream corpus and plays scripted agents.

The model name picks the behaviour:
  case:NAME            replay tests/corpus/{openai,anthropic}/NAME.sse by the route's protocol
  status:CODE          answer CODE with an error body in that protocol (retry-after on 429)
  agent:echo           a tiny agent: first a Bash tool call, then an answer quoting its result
  agent:spawn          Claude Code's main agent handing work to a subagent (its Agent tool)
  doctor:KIND[:DELAY]  shapes fcc doctor tells apart: agent, thinker, astext, schema400, talker
  text:WORDS           a plain streamed answer of WORDS
  fault:NAME[:ARG]     reset_before, reset_mid, malformed, slow_first:SECONDS, hang,
                       think (200 and a role, then nothing), trickle:SECONDS (one word
                       every SECONDS, five words)
Every request body and its headers are recorded; `active` counts streams still running,
so a test can see that fcc cancelled what its client abandoned.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def corpus_events(protocol: str, name: str) -> list[str]:
    """A corpus file split into the events the server writes one by one."""
    text = (CORPUS / protocol / f"{name}.sse").read_text(encoding="utf-8")
    return [part + "\n\n" for part in text.split("\n\n") if part.strip()]


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""  # the body's bytes as they came


class Reset(Exception):
    """Raised inside a streaming body: uvicorn drops the connection mid-response."""


@dataclass
class Upstream:
    requests: list[Recorded] = field(default_factory=list)
    delay: float = 0.0  # seconds between events
    active: int = 0  # streams being written right now
    finished: int = 0
    live: Counter[str] = field(default_factory=Counter)  # streams being written, by model

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/stats", self.stats, methods=["GET"]),
            ]
        )

    async def stats(self, request: Request) -> Response:
        live = {model: n for model, n in self.live.items() if n}
        counts = {"requests": len(self.requests), "active": self.active, "finished": self.finished}
        return JSONResponse({**counts, "live": live})

    async def _record(self, request: Request) -> Any:
        body = await request.json()
        raw = await request.body()  # read once: json() kept it
        self.requests.append(Recorded(request.url.path, dict(request.headers), body, raw))
        return body

    async def _stream(self, events: list[str], gaps: float = 0.0) -> AsyncIterator[bytes]:
        for event in events:
            if self.delay or gaps:
                await asyncio.sleep(self.delay or gaps)
            if event == "RESET":
                raise Reset("connection reset by the test upstream")
            if event == "HANG":
                await asyncio.sleep(3600)
            yield event.encode()

    def _respond(self, body: AsyncIterator[bytes]) -> Response:
        return _Counted(self, body, media_type="text/event-stream")

    async def _fault(self, name: str, arg: str) -> Response:
        if name == "slow_first":
            await asyncio.sleep(float(arg))
            return self._respond(self._stream(_openai_text("finally here")))
        role = _chunk({"role": "assistant", "content": ""})
        plans = {
            "reset_before": ([role, "RESET"], 0.0),
            "reset_mid": (
                [role, _chunk({"content": "partial "}), _chunk({"content": "answer"}), "RESET"],
                0.0,
            ),
            "malformed": (
                [role, 'data: {"choices": [{"delta": {"content": "x"\n\n', "data: [DONE]\n\n"],
                0.0,
            ),
            "hang": ([role, _chunk({"content": "thinking..."}), "HANG"], 0.0),
            "think": ([role, "HANG"], 0.0),  # answers 200, then a model that never says a word
            "trickle": (_openai_text("one two three four five"), float(arg or 1)),
        }
        events, gaps = plans[name]
        return self._respond(self._stream(events, gaps))

    async def chat(self, request: Request) -> Response:
        body = await self._record(request)
        model: str = body.get("model", "")
        kind, _, arg = model.partition(":")
        if kind == "status":
            return _error(
                int(arg), {"error": {"message": f"upstream says {arg}", "type": "test", "code": arg}}
            )
        if kind == "leak":
            # A provider that quotes the caller's key and account in its error (some do).
            secret = request.headers.get("authorization", "").removeprefix("Bearer ")
            message = (
                f"Invalid key {secret} for org-7Hq2xLm9Qa (owner jane.doe@example.com), "
                "request 1f2e3d4c-aaaa-bbbb-cccc-0123456789ab"
            )
            return _error(int(arg or 401), {"error": {"message": message, "type": "invalid_request_error"}})
        if kind == "overflow":
            message = (
                "This model's maximum context length is 32768 tokens. "
                "However, your messages resulted in 40000 tokens."
            )
            return _error(
                400,
                {
                    "error": {
                        "message": message,
                        "type": "invalid_request_error",
                        "code": "context_length_exceeded",
                    }
                },
            )
        if kind == "case":
            return self._respond(self._stream(corpus_events("openai", arg)))
        if kind == "fault":
            name, _, fault_arg = arg.partition(":")
            return await self._fault(name, fault_arg)
        if kind == "doctor":
            return await self._doctor(arg, body)
        if kind == "agent" and arg == "spawn":
            return self._respond(self._stream(_openai_spawner(body)))
        if kind == "agent":
            return self._respond(self._stream(_openai_agent(body)))
        words = arg.replace("_", " ") if kind == "text" else "hello from the test upstream"
        return self._respond(self._stream(_openai_text(words)))

    async def _doctor(self, arg: str, body: dict[str, Any]) -> Response:
        """Models with the shapes fcc doctor must tell apart (tests/doctor/cases.yaml)."""
        has_tools = bool(body.get("tools"))
        behaviour, _, delay = arg.partition(":")
        if delay:
            await asyncio.sleep(float(delay))
        if behaviour == "schema400" and has_tools:
            message = "Invalid schema for function 'Agent': 'additionalProperties' is not supported"
            return _error(400, {"error": {"message": message, "type": "invalid_request_error"}})
        if behaviour == "astext" and has_tools:
            call = '<tool_call>\n{"name": "Bash", "arguments": {"command": "echo fcc-doctor"}}\n</tool_call>'
            return self._respond(self._stream(_openai_text(call)))
        words = _openai_text("one two three four five six seven eight")
        messages = body.get("messages") or [{}]
        acting = has_tools or messages[-1].get("role") == "tool"
        if behaviour == "thinker":
            thought = _chunk({"role": "assistant", "reasoning_content": "Let me think about it."})
            return self._respond(self._stream([thought, *(_openai_agent(body) if acting else words)]))
        if behaviour.startswith("agent") and acting:  # agent, agent-says-it-reasons…
            return self._respond(self._stream(_openai_agent(body)))
        return self._respond(self._stream(words))

    async def messages(self, request: Request) -> Response:
        body = await self._record(request)
        model: str = body.get("model", "")
        kind, _, arg = model.partition(":")
        if kind == "status":
            return _error(
                int(arg), {"type": "error", "error": {"type": "api_error", "message": f"upstream says {arg}"}}
            )
        if kind == "case":
            return self._respond(self._stream(corpus_events("anthropic", arg)))
        words = arg.replace("_", " ") if kind == "text" else "hello from the test upstream"
        return self._respond(self._stream(_anthropic_text(words)))


class SSEResponse(StreamingResponse):
    """A stream that stops the moment its client leaves: Starlette listens for the
    disconnect (and cancels the body) only for ASGI 2.3 servers, so it is told it has one."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asgi = {**scope.get("asgi", {}), "spec_version": "2.3"}
        await super().__call__({**scope, "asgi": asgi}, receive, send)


class _Counted(SSEResponse):
    """Counts the streams being written: from the response's start until it has ended,
    however it ended (finished, reset, or its client gone)."""

    def __init__(self, upstream: Upstream, body: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self._upstream = upstream

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        model = self._upstream.requests[-1].body.get("model", "?") if self._upstream.requests else "?"
        self._upstream.active += 1
        self._upstream.live[model] += 1
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._upstream.active -= 1
            self._upstream.live[model] -= 1
            self._upstream.finished += 1


def _error(status: int, body: Any) -> Response:
    headers = {"retry-after": "7"} if status == 429 else {}
    return JSONResponse(body, status_code=status, headers=headers)


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> str:
    data: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        data["usage"] = usage
    return f"data: {json.dumps(data)}\n\n"


def _openai_text(words: str) -> list[str]:
    pieces = [w + " " for w in words.split(" ")]
    pieces[-1] = pieces[-1].rstrip()
    out = [_chunk({"role": "assistant", "content": ""})]
    out += [_chunk({"content": p}) for p in pieces]
    out.append(
        _chunk(
            {},
            "stop",
            {"prompt_tokens": 21, "completion_tokens": len(pieces), "total_tokens": 21 + len(pieces)},
        )
    )
    out.append("data: [DONE]\n\n")
    return out


def _openai_agent(body: dict[str, Any]) -> list[str]:
    """Calls Bash once, then answers quoting the tool's output."""
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return _openai_text(f"The command printed: {last.get('content', '')}")
    if not any(t.get("function", {}).get("name") == "Bash" for t in body.get("tools", [])):
        return _openai_text("ok")
    args = json.dumps({"command": "echo hello-from-tool", "description": "Print a greeting"})
    return [
        _chunk({"role": "assistant", "content": "I'll run a command."}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_echo1",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": ""},
                    }
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[:20]}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[20:]}}]}),
        _chunk({}, "tool_calls", {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}),
        "data: [DONE]\n\n",
    ]


def _openai_spawner(body: dict[str, Any]) -> list[str]:
    """Claude Code's main agent: hands the work to a subagent (its Agent tool), then passes
    on what the subagent reported."""
    last = body.get("messages", [{}])[-1]
    if last.get("role") == "tool":
        return _openai_text("The subagent said: " + ("hi" if "hi" in str(last.get("content")) else "nothing"))
    args = json.dumps(
        {
            "description": "Say hi",
            "prompt": "Reply with just the word: hi",
            "subagent_type": "general-purpose",
            "run_in_background": False,
        }
    )
    call = {
        "index": 0,
        "id": "call_spawn1",
        "type": "function",
        "function": {"name": "Agent", "arguments": args},
    }
    return [
        _chunk({"role": "assistant", "content": None, "tool_calls": [call]}),
        _chunk({}, "tool_calls", {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}),
        "data: [DONE]\n\n",
    ]


def _anthropic_event(data: dict[str, Any]) -> str:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"


def _anthropic_text(words: str) -> list[str]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_up",
            "type": "message",
            "role": "assistant",
            "model": "up",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 17, "output_tokens": 1},
        },
    }
    return [
        _anthropic_event(start),
        _anthropic_event(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        ),
        *[
            _anthropic_event(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            )
            for w in words.split(" ")
        ],
        _anthropic_event({"type": "content_block_stop", "index": 0}),
        _anthropic_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 5},
            }
        ),
        _anthropic_event({"type": "message_stop"}),
    ]


if __name__ == "__main__":  # python -m tests.support.upstream PORT (the soak runs it so)
    import sys

    import uvicorn

    uvicorn.run(Upstream(requests=[]).app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="critical")
