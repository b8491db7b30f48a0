"""Provider documents frozen into typed values."""

from __future__ import annotations

from typing import Any, Literal, cast

import msgspec

from fcc.engine.types import JSON, AuthStyle, TransportName

ReasoningField = Literal["auto", "reasoning_content", "reasoning", "none"]
ReasoningParam = Literal["none", "reasoning_effort", "openrouter", "enable_thinking", "deepseek"]
ReasoningEcho = Literal["none", "reasoning_content", "reasoning"]


DayReset = Literal["utc_midnight", "rolling_24h"]


class Limits(msgspec.Struct, frozen=True):
    requests_per_minute: int | None = None
    concurrent_streams: int | None = None
    requests_per_day: int | None = None
    tokens_per_day: int | None = None
    day_reset: DayReset = "utc_midnight"

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (
                self.requests_per_minute,
                self.concurrent_streams,
                self.requests_per_day,
                self.tokens_per_day,
            )
        )


class ModelInfo(msgspec.Struct, frozen=True):
    id: str
    display_name: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    reasoning: bool | None = None
    vision: bool | None = None
    tools: bool | None = None
    free: bool | None = None
    limits: Limits | None = None  # this model's own limits, beside the provider's


class Quirks(msgspec.Struct, frozen=True):
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    max_output_tokens: int | None = None
    stream_options: bool = True
    reasoning_field: ReasoningField = "auto"
    think_tags: bool = True
    reasoning_param: ReasoningParam = "none"
    reasoning_echo: ReasoningEcho = "none"
    thought_signatures: bool = False
    strip_keywords: frozenset[str] = frozenset()
    drop_empty_properties: bool = False
    strict_tools: bool = False
    top_k: bool = False
    vision: bool = True
    system_messages: Literal["anywhere", "first_only"] = "anywhere"
    assistant_null_content: bool = True
    user_field: bool = False
    drop_fields: frozenset[str] = frozenset()
    drop_betas: frozenset[str] = frozenset()
    fold_system_messages: bool = False
    tool_call_ids: Literal["keep", "alnum9"] = "keep"


class Timeouts(msgspec.Struct, frozen=True):
    connect: float
    first_byte: float
    idle: float


HOSTED_TIMEOUTS = Timeouts(connect=10.0, first_byte=120.0, idle=120.0)
LOCAL_TIMEOUTS = Timeouts(connect=5.0, first_byte=600.0, idle=300.0)


def sees_images(info: ModelInfo | None, quirks: Quirks) -> bool:
    """The model's own vision flag where the catalog has one, else the provider's."""
    return info.vision if info is not None and info.vision is not None else quirks.vision


class Provider(msgspec.Struct, frozen=True):
    id: str
    display_name: str
    transport: TransportName
    base_url: str  # may hold ${VAR} placeholders, filled from the key store per request
    auth: AuthStyle
    api_key_env: str | None = None
    auth_header: str | None = None  # auth: header
    path: str | None = None  # None: the transport's own path
    query: tuple[tuple[str, str], ...] = ()
    local: bool = False
    models: tuple[ModelInfo, ...] = ()
    quirks: Quirks = msgspec.field(default_factory=Quirks)
    limits: Limits = msgspec.field(default_factory=Limits)
    timeouts: Timeouts = HOSTED_TIMEOUTS
    free_tier: str | None = None
    docs: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    source: str = "<builtin>"

    def model(self, model_id: str) -> ModelInfo | None:
        for m in self.models:
            if m.id == model_id:
                return m
        return None

    def output_cap(self, model_id: str) -> int | None:
        info = self.model(model_id)
        if info is not None and info.max_output_tokens:
            return info.max_output_tokens
        return self.quirks.max_output_tokens


def provider_from_data(data: JSON, source: str) -> Provider:
    """A schema-valid provider mapping as a frozen value."""
    q: dict[str, Any] = dict(data.get("quirks", {}))
    schema_policy = q.pop("tool_schema", {})
    fields: dict[str, Any] = {k: frozenset(v) if isinstance(v, list) else v for k, v in q.items()}
    quirks = Quirks(
        **fields,
        strip_keywords=frozenset(schema_policy.get("strip_keywords", ())),
        drop_empty_properties=schema_policy.get("empty_properties") == "drop",
    )
    local = bool(data.get("local", False))
    base = LOCAL_TIMEOUTS if local else HOSTED_TIMEOUTS
    t = data.get("timeouts", {})
    free = data.get("free_tier") or {}
    return Provider(
        id=data["id"],
        display_name=data.get("display_name") or data["id"],
        transport=cast(TransportName, data["transport"]),
        base_url=data["base_url"].rstrip("/"),
        # A provider with a key variable sends it as a bearer token unless it says otherwise.
        auth=cast(AuthStyle, data.get("auth") or ("bearer" if data.get("api_key_env") else "none")),
        api_key_env=data.get("api_key_env"),
        auth_header=data.get("auth_header"),
        path=data.get("path"),
        query=tuple(sorted(data.get("query", {}).items())),
        local=local,
        models=tuple(_model(m) for m in data.get("models", ())),
        quirks=quirks,
        limits=Limits(**data.get("limits", {})),
        timeouts=Timeouts(
            connect=float(t.get("connect", base.connect)),
            first_byte=float(t.get("first_byte", base.first_byte)),
            idle=float(t.get("idle", base.idle)),
        ),
        free_tier=free.get("rate_limits") or free.get("notes"),
        docs=data.get("docs"),
        headers=tuple(sorted(data.get("headers", {}).items())),
        source=source,
    )


def _model(data: JSON) -> ModelInfo:
    fields = {k: v for k, v in data.items() if k not in ("notes", "limits")}
    limits = Limits(**data["limits"]) if "limits" in data else None
    return ModelInfo(**fields, limits=limits)
