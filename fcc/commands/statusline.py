"""`fcc statusline`: one short line for Claude Code's status line, from the fcc it talks to.

Claude Code runs the command (settings.json: {"statusLine": {"type": "command", "command":
"fcc statusline"}}) after every turn with a JSON object on stdin, session_id among its
fields, and in its own environment, so ANTHROPIC_BASE_URL and ANTHROPIC_AUTH_TOKEN say where
fcc is. Only the standard library is imported here: the line must come in well under 100 ms,
and it must never make Claude Code wait or fail — anything wrong prints a short line and
exits 0.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

TIMEOUT = 0.3
DEFAULT_URL = "http://127.0.0.1:8082"


def _tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def line(status: dict[str, Any]) -> str:
    """`fcc · groq/openai/gpt-oss-120b · rule subagents · 12.3k in / 1.1k out ⚠ circuit open`"""
    last = status.get("last") or {}
    route = last.get("route") or (last.get("attempts") or [None])[-1] or "no request yet"
    rule = last.get("rule")
    parts = ["fcc", str(route)]
    if rule and not str(rule).startswith("tier:") and rule != "direct":
        parts.append(f"rule {rule}")
    today = status.get("today") or {}
    parts.append(
        f"{_tokens(int(today.get('input_tokens', 0)))} in / {_tokens(int(today.get('output_tokens', 0)))} out"
    )
    text = " · ".join(parts)
    warnings = status.get("warnings") or []
    if int(last.get("status", 200)) >= 400:
        warnings = [f"last request failed ({last.get('error_type') or last.get('status')})", *warnings]
    return text + "".join(f" ⚠ {w}" for w in warnings)


def fetch(url: str, token: str | None, session: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{url.rstrip('/')}/session/{urllib.parse.quote(session, safe='')}")
    if token:
        request.add_header("x-api-key", token)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


def main(url: str | None = None, token: str | None = None, stdin: Any = None) -> int:
    url = url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_URL
    token = (
        token
        if token is not None
        else os.environ.get("ANTHROPIC_AUTH_TOKEN") or os.environ.get("ANTHROPIC_API_KEY")
    )
    try:
        given = json.load(stdin or sys.stdin)
        session = str(given.get("session_id") or "") if isinstance(given, dict) else ""
    except (ValueError, OSError):
        session = ""
    if not session:
        print("fcc: no session yet")
        return 0
    try:
        status = fetch(url, token, session)
    except urllib.error.HTTPError as exc:
        print("fcc: token refused" if exc.code == 401 else f"fcc: {exc.code} from {url}")
        return 0
    except (OSError, ValueError):
        print("fcc: not running")
        return 0
    print(line(status))
    return 0
