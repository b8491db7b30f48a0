"""One small error hierarchy; each surface (HTTP, CLI) maps it in exactly one place."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec


class Problem(msgspec.Struct, frozen=True):
    """One located finding in a document: rendered as `file:line:col: message`."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class FccError(Exception):
    """Base of every error fcc raises on purpose."""


class ConfigError(FccError):
    """Catalog or config documents that cannot be used; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RoutingError(FccError):
    """A model name that cannot be routed, or a route that cannot be served as configured."""


class ClientError(FccError):
    """A request the client must change: rendered as an Anthropic 4xx."""

    def __init__(self, message: str, status: int = 400, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class UpstreamError(FccError):
    """The upstream refused or failed; status and type are already in Anthropic terms."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str,
        retryable: bool,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        # retryable: another candidate may succeed (fallback). should_retry: the client's own
        # retry loop may help (None = let the client decide by status).
        self.retryable = retryable
        self.retry_after = retry_after
        self.should_retry = should_retry
