"""What fcc needs to know about a request, read once at the door.

Rules, capability checks, error classification and the request record all read this one
small value; none of them walks the body again, and the parsed body can go once the
upstream request is built. Computing it is a walk over the message blocks and the tool
list (no serialization: translate/tokens.py), about 70 µs for a 90 KB Claude Code turn.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, Literal

import msgspec

from fcc.engine.translate import toollist
from fcc.engine.translate.openai_request import BILLING_PREFIX, thinking_requested
from fcc.engine.translate.tokens import ToolSizes, tally
from fcc.engine.types import JSON

Family = Literal["opus", "sonnet", "haiku"]
FAMILIES: tuple[Family, ...] = ("opus", "sonnet", "haiku")
# Claude Code marks a subagent's requests with this header (observed, 2.1.330; a nested
# subagent adds x-claude-code-parent-agent-id too), and its attribution block ends with
# cc_is_subagent=true (gone when CLAUDE_CODE_ATTRIBUTION_HEADER=0).
SUBAGENT_HEADER = "x-claude-code-agent-id"
_SUBAGENT_MARK = "cc_is_subagent=true"


def family_of(model_name: str) -> Family | None:
    """Claude Code names models by family (claude-opus-5-5, claude-3-5-haiku-latest, "sonnet"…).
    Order matters only for names that mention two families."""
    lowered = model_name.lower()
    for family in FAMILIES:
        if family in lowered:
            return family
    return None


class Features(msgspec.Struct, frozen=True):
    model: str  # what the client asked for
    family: Family | None
    stream: bool
    input_tokens: int  # the estimate count_tokens answers
    max_tokens: int | None
    thinking: bool  # the client asked for reasoning (enabled or adaptive)
    images: int
    documents: int
    tools: frozenset[str]  # custom tool names and server tool types
    tool_count: int
    subagent: bool
    session: str | None
    format: bool  # output_config.format: structured output asked for
    headers: Mapping[str, str]  # only the headers routing rules name, lower-case

    @property
    def has_images(self) -> bool:
        return self.images > 0

    @property
    def has_documents(self) -> bool:
        return self.documents > 0

    @property
    def asked(self) -> frozenset[str]:
        """What the request used that an upstream may lack: how its refusal is classified
        into the client's capability tokens (translate/upstream_errors.py)."""
        found = {"thinking"} if self.thinking else set()
        found |= {"format"} if self.format else set()
        found |= {"image"} if self.images else set()
        found |= {"document"} if self.documents else set()
        return frozenset(found)


def features_of(
    body: JSON,
    headers: Mapping[str, str],
    *,
    wanted_headers: Collection[str] = (),
    sizes: ToolSizes | None = None,
) -> Features:
    """`body` was checked at the door (translate/validate.py); `headers` is any mapping whose
    keys are lower-case names (Starlette's Headers, or a recording's, lower-cased)."""
    counted = tally(body, sizes)
    raw_tools = body.get("tools") or ()
    known = toollist.shared(raw_tools)
    tools = known.derived("names", _tool_names) if known is not None else _tool_names(raw_tools)
    output = body.get("output_config")
    max_tokens = body.get("max_tokens")
    return Features(
        model=str(body.get("model", "")),
        family=family_of(str(body.get("model", ""))),
        stream=body.get("stream") is True,
        input_tokens=counted.tokens,
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
        thinking=thinking_requested(body),
        images=counted.images,
        documents=counted.documents,
        tools=tools,
        tool_count=len(raw_tools),
        subagent=bool(headers.get(SUBAGENT_HEADER)) or _marked_subagent(body.get("system")),
        session=session_of(headers, body),
        format=isinstance(output, dict) and isinstance(output.get("format"), dict),
        headers={name: headers[name] for name in wanted_headers if name in headers},
    )


def _tool_names(tools: Any) -> frozenset[str]:
    names: set[str] = set()
    for tool in tools:
        if isinstance(tool, dict):
            for key in ("name", "type"):
                value = tool.get(key)
                if isinstance(value, str) and value and value != "custom":
                    names.add(value)
    return frozenset(names)


def _marked_subagent(system: object) -> bool:
    if not isinstance(system, list) or not system or not isinstance(system[0], dict):
        return False
    text = system[0].get("text")
    return isinstance(text, str) and text.startswith(BILLING_PREFIX) and _SUBAGENT_MARK in text


def session_of(headers: Mapping[str, str], body: JSON) -> str | None:
    """Claude Code's session: its header, else the session_id inside metadata.user_id."""
    header = headers.get("x-claude-code-session-id")
    if header:
        return header[:64]
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user, str) and user.startswith("{"):
        try:
            session = json.loads(user).get("session_id")
        except (ValueError, AttributeError):
            return None
        return str(session)[:64] if session else None
    return None
