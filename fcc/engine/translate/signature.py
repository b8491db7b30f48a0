"""Gateway-made thinking signatures. A signature is required on every thinking block; fcc's
carries the block's reasoning (compressed) when the provider needs it back next turn, so the
round trip works even when the client asked for the thinking text to be omitted."""

from __future__ import annotations

import base64
import zlib

PREFIX = "fcc.v1"


def make_signature(reasoning: str, carry: bool) -> str:
    if not carry or not reasoning:
        return PREFIX
    packed = base64.urlsafe_b64encode(zlib.compress(reasoning.encode(), 6)).decode().rstrip("=")
    return f"{PREFIX}.{packed}"


def is_ours(signature: object) -> bool:
    return isinstance(signature, str) and signature.startswith(PREFIX)


def reasoning_from(signature: object) -> str | None:
    if not isinstance(signature, str) or not signature.startswith(PREFIX + "."):
        return None
    body = signature[len(PREFIX) + 1 :]
    try:
        return zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))).decode()
    except (ValueError, zlib.error, UnicodeDecodeError):
        return None
