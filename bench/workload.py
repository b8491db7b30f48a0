"""The requests every contender sends: Claude Code's own, and what fcc makes of them upstream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fcc.engine.catalog.config import Settings

# fcc itself is imported where the upstream bodies are built, not here: bench/micro.py loads the
# fixtures from this module under a --baseline ref's fcc too, whose modules may sit elsewhere.

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "fixtures" / "claude-code"
# Headers a client library would set itself (or that would leak the recording's session).
_DROP_HEADERS = {"authorization", "content-length", "host", "x-claude-code-session-id", "x-api-key"}


@dataclass(frozen=True, slots=True)
class Fixture:
    name: str
    body: dict[str, Any]
    headers: dict[str, str]


def load_fixtures(folder: Path = FIXTURES) -> list[Fixture]:
    """Claude Code's main-loop turns: the streaming /v1/messages requests with the full prompt."""
    out = []
    for path in sorted(folder.glob("*-main-*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        body = data.get("body")
        if not str(data.get("path", "")).startswith("/v1/messages?") or not isinstance(body, dict):
            continue
        if not body.get("stream"):
            continue
        headers = {k.lower(): v for k, v in data.get("headers", {}).items() if k.lower() not in _DROP_HEADERS}
        out.append(Fixture(path.stem, body, headers))
    if not out:
        raise SystemExit(f"no Claude Code fixtures found in {folder}")
    return out


# A declared limit on the bench's provider, far above anything the bench sends, so that every
# attempt's admission really runs (one SQLite transaction, one Redis script, or the memory
# store's dictionaries) instead of the no-limit shortcut; every fcc contender has the same.
BENCH_LIMITS = {"requests_per_minute": 1_000_000, "concurrent_streams": 100_000}


def _flow(mapping: dict[str, object]) -> str:
    """A YAML flow mapping; strings JSON-quoted (YAML reads JSON strings as they are)."""
    cells = [f"{k}: {json.dumps(v) if isinstance(v, str) else v}" for k, v in mapping.items()]
    return "{" + ", ".join(cells) + "}"


def fcc_config(
    upstream_port: int,
    tokens: int,
    state: dict[str, str] | None = None,
    limits: dict[str, int] | None = None,
) -> str:
    """fcc's config.yaml for the bench. `state`: the `state:` mapping (None: leave the key out,
    for an older fcc without a store); `limits`: the bench provider's `limits:` (None: none)."""
    model = f"bench/tokens-{tokens}"
    lines = [
        "providers:",
        "  bench:",
        "    display_name: Bench upstream",
        "    transport: openai_chat",
        f"    base_url: http://127.0.0.1:{upstream_port}/v1",
        "    auth: none",
        "    local: true",
    ]
    if limits:
        lines.append(f"    limits: {_flow(dict(limits))}")
    lines += ["tiers:", *(f"  {tier}: {model}" for tier in ("opus", "sonnet", "haiku", "default"))]
    if state is not None:
        lines.append(f"state: {_flow(dict(state))}")
    return "\n".join(lines) + "\n"


def anthropic_body(fixture: Fixture, tokens: int | None) -> bytes:
    """The client's request; `tokens` names the upstream model directly (fcc's PROVIDER/MODEL)."""
    body = dict(fixture.body)
    if tokens is not None:
        body["model"] = f"bench/tokens-{tokens}"
    return json.dumps(body).encode()


def openai_body(fixture: Fixture, settings: Settings, tokens: int) -> bytes:
    """Exactly the upstream request fcc builds for this fixture (its own adapter, its own route)."""
    from fcc.engine.catalog.secrets import KeyStore
    from fcc.engine.routing.router import direct
    from fcc.engine.translate.openai_request import thinking_requested
    from fcc.engine.transports.base import Turn
    from fcc.engine.transports.openai_chat import OpenAIChat

    route = direct(f"bench/tokens-{tokens}", settings)  # a PROVIDER/MODEL the client names
    assert route is not None
    candidate = route.primary
    turn = Turn(
        body=fixture.body,
        provider=candidate.provider,
        model=candidate.model,
        requested_model=fixture.body["model"],
        message_id="msg_bench",
        thinking=thinking_requested(fixture.body),
        input_estimate=0,
        beta=fixture.headers.get("anthropic-beta"),
        version=fixture.headers.get("anthropic-version"),
    )
    request = OpenAIChat().build(turn, KeyStore(environ={}))
    return json.dumps(request.json).encode()


def write_workload(path: Path, config_path: Path, tokens: int, *others: int) -> list[Fixture]:
    """The file the load client reads: bodies per (shape, token count) and headers per fixture.
    `tokens` is the answer length fcc's tiers map to; each of `others` names its own model."""
    from fcc.engine.catalog.config import load_settings

    fixtures = load_fixtures()
    settings = load_settings(config_path)
    counts = [tokens, *(n for n in dict.fromkeys(others) if n != tokens)]
    data = {
        "headers": [f.headers for f in fixtures],
        "anthropic": {
            str(n): [anthropic_body(f, None if n == tokens else n).decode() for f in fixtures] for n in counts
        },
        "openai": {str(n): [openai_body(f, settings, n).decode() for f in fixtures] for n in counts},
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return fixtures
