"""An upstream's refusal → an Anthropic error the client can act on (PROTOCOL.md C, G, J).

Claude Code keys its recovery on wording: `prompt is too long…` compacts the conversation,
and a whole message `capability_rejected: <class>` makes it retry without the feature. Those
are produced only when the upstream's words make the class certain.
"""

from __future__ import annotations

import json
import re

import msgspec

from fcc.engine.errors import UpstreamError

_STATUS: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    402: (402, "billing_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    408: (504, "timeout_error"),
    409: (409, "conflict_error"),
    413: (413, "request_too_large"),
    422: (400, "invalid_request_error"),
    429: (429, "rate_limit_error"),
    500: (500, "api_error"),
    502: (529, "overloaded_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
    529: (529, "overloaded_error"),
}
# Another candidate may well succeed after these (fallback); the rest are about the request.
RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 529})

_OVERFLOW = re.compile(
    r"context[ _-]?(length|window|size)|maximum context|prompt is too long|too many tokens"
    r"|input (is )?too long|exceeds? the (model'?s? )?(maximum|max)|reduce the length",
    re.IGNORECASE,
)
_NUMBERS = re.compile(r"(\d[\d,]*)\s*tokens?", re.IGNORECASE)


class _Capability(msgspec.Struct, frozen=True):
    token: str
    needs: str  # a request feature that must be present
    words: re.Pattern[str]


_CAPABILITIES = (
    _Capability("image_block", "image", re.compile(r"\bimage|vision|multimodal|image_url", re.I)),
    _Capability("document_block", "document", re.compile(r"\bdocument|\bpdf\b|file part|\bfile\b", re.I)),
    _Capability(
        "structured_outputs_unsupported",
        "format",
        re.compile(r"response_format|json_schema|structured", re.I),
    ),
    _Capability(
        "thinking_type:adaptive", "thinking", re.compile(r"reasoning|thinking|enable_thinking", re.I)
    ),
)


def upstream_message(body: bytes) -> tuple[str, str | None]:
    """The human message and machine code from an error body of any common shape."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return (text[:500] or "no details"), None
    if isinstance(data, list) and data and isinstance(data[0], dict):  # Gemini wraps errors in a list
        data = data[0]
    if not isinstance(data, dict):
        return text[:500], None
    err = data.get("error", data)
    if isinstance(err, str):
        return err[:500], None
    if not isinstance(err, dict):
        return text[:500], None
    message = (
        err.get("message") or err.get("detail") or data.get("message") or data.get("detail") or text[:500]
    )
    code = err.get("code") or err.get("type")
    return str(message)[:1000], (str(code) if code is not None else None)


# What identifies an account or a credential in an upstream's error text. The client gets
# the message without them; the operator's log keeps the rest (PROTOCOL.md J).
_IDENTIFIERS = re.compile(
    r"\b(?:sk|pk|rk|gsk|nvapi|csk|fw|xai|AIza)[-_][\w-]{8,}"  # key-shaped tokens
    r"|\b(?:org|user|acct|account|proj|project|team|ws|workspace)[-_][\w-]{6,}"  # account ids
    r"|\b[\w.+-]+@[\w-]+\.[\w.-]+\b"  # e-mail addresses
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"  # UUIDs
    r"|\b[0-9a-fA-F]{24,}\b"  # long hex ids
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[key]")
    return _IDENTIFIERS.sub("[id]", text)


def classify(
    status: int,
    raw: str,
    code: str | None,
    asked: frozenset[str],
    who: str,
    retry_after: float | None = None,
    secrets: tuple[str, ...] = (),
) -> UpstreamError:
    """`raw` and `code` as upstream_message() read them from the error body; `asked`, the
    features the request used that an upstream may lack (request/features.py)."""
    # The wording Claude Code's recovery keys on is relayed as is; everything else loses
    # account identifiers (and any echo of the key itself).
    message = redact(raw, secrets)
    if status in (400, 413, 422) and (code == "context_length_exceeded" or _OVERFLOW.search(raw)):
        return UpstreamError(
            _too_long(message), status=400, error_type="invalid_request_error", retryable=False
        )
    out_status, error_type = _STATUS.get(
        status, (500, "api_error") if status >= 500 else (400, "invalid_request_error")
    )
    if status in (400, 422):
        token = _capability(message, asked)
        if token is not None:
            return UpstreamError(
                f"capability_rejected: {token}",
                status=400,
                error_type="invalid_request_error",
                retryable=False,
            )
    if status == 404:
        return UpstreamError(
            f"{who} does not know this model ({message}): check the tier's PROVIDER/MODEL with `fcc models`",
            status=404,
            error_type="not_found_error",
            retryable=True,
            should_retry=False,
        )
    if status in (401, 403):
        return UpstreamError(
            f"{who} refused the key ({message}): check the key, then restart fcc",
            status=out_status,
            error_type=error_type,
            retryable=True,
            should_retry=False,
        )
    return UpstreamError(
        f"{who}: {message}",
        status=out_status,
        error_type=error_type,
        retryable=status in RETRYABLE or status >= 500,
        retry_after=retry_after,
    )


def in_stream(message: str, error_type: str, who: str) -> UpstreamError:
    """An error event that arrived before any content: as if the upstream had refused."""
    if _OVERFLOW.search(message):
        return UpstreamError(
            _too_long(message), status=400, error_type="invalid_request_error", retryable=False
        )
    status = {"overloaded_error": 529, "rate_limit_error": 429, "invalid_request_error": 400}.get(
        error_type, 500
    )
    return UpstreamError(f"{who}: {message}", status=status, error_type=error_type, retryable=status != 400)


def _too_long(message: str) -> str:
    numbers = [int(n.replace(",", "")) for n in _NUMBERS.findall(message)]
    if len(numbers) >= 2:
        limit = min(numbers)
        used = max(numbers)
        return f"prompt is too long: {used} tokens > {limit} maximum ({message})"
    return f"prompt is too long: {message}"


def _capability(message: str, asked: frozenset[str]) -> str | None:
    if not re.search(
        r"not support|unsupported|does not accept|not allowed|not available|invalid type|unknown",
        message,
        re.I,
    ):
        return None
    for cap in _CAPABILITIES:
        if cap.needs in asked and cap.words.search(message):
            return cap.token
    return None
