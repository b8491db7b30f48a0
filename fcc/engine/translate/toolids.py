"""Tool-call ids both ways: Anthropic wants ^[a-zA-Z0-9_-]+$, some upstreams send
`functions.Bash:3`. The mapping is reversible without state, so the next turn's
tool_use_id becomes the upstream's own id again."""

from __future__ import annotations

import base64
import hashlib
import re

from fcc.engine.ids import hex_id

_VALID = re.compile(r"^[a-zA-Z0-9_-]{1,200}$")
_PREFIX = "fccx_"


def to_anthropic(upstream_id: str | None) -> str:
    if not upstream_id:
        return hex_id("toolu_fcc")
    if _VALID.match(upstream_id) and not upstream_id.startswith(_PREFIX):
        return upstream_id
    encoded = base64.urlsafe_b64encode(upstream_id.encode()).decode().rstrip("=")
    return _PREFIX + encoded


def to_upstream(anthropic_id: str) -> str:
    if not anthropic_id.startswith(_PREFIX):
        return anthropic_id
    body = anthropic_id[len(_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return anthropic_id


_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def upstream_id(anthropic_id: str, style: str = "keep") -> str:
    """The id to send upstream; `alnum9` (Mistral) is a stable hash, so a tool call and its
    result still pair up, even for ids another provider made earlier in the session."""
    original = to_upstream(anthropic_id)
    if style != "alnum9" or (len(original) == 9 and original.isalnum()):
        return original
    n = int.from_bytes(hashlib.sha256(original.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        n, r = divmod(n, 62)
        chars.append(_ALNUM[r])
    return "".join(chars)
