"""A request record for tests: a served opus turn, any field changed by keyword."""

from __future__ import annotations

from fcc.engine.state.records import RequestRecord


def record(t: float = 1_700_000_000.0, **changes: object) -> RequestRecord:
    base: dict[str, object] = dict(
        time=t,
        session="s1",
        model="claude-opus-5-5",
        tier="opus",
        route="groq/openai/gpt-oss-120b",
        attempts=("groq/openai/gpt-oss-120b",),
        probe=None,
        status=200,
        ttft_ms=12.5,
        duration_ms=80.0,
        overhead_ms=0.4,
        input_tokens=100,
        output_tokens=20,
        cached_tokens=50,
        error_type=None,
        stream=True,
        rule="tier:opus",
    )
    return RequestRecord(**{**base, **changes})  # type: ignore[arg-type]
