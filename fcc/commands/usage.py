"""`fcc usage`: what the sessions spent, from the state store's daily aggregates."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from fcc.engine.catalog.config import StateSettings
from fcc.engine.errors import FccError
from fcc.engine.state import opened
from fcc.engine.types import JSON

By = Literal["day", "provider", "model", "session"]
_DIM = {"day": "total", "provider": "provider", "model": "model", "session": "session"}
FIELDS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "probe_answers")


class UsageError(FccError):
    pass


def since_day(text: str, today: date | None = None) -> date:
    """`7d` (the last seven days, today included) or a date, `2026-11-20`."""
    today = today or datetime.now(UTC).date()
    m = re.fullmatch(r"(\d+)d", text.strip())
    if m:
        days = int(m.group(1))
        if days < 1:
            raise UsageError(f"--since {text}: give at least 1d (today)")
        return today - timedelta(days=days - 1)
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text}: expected a number of days (7d) or a date (2026-11-20)") from None


async def usage(state: StateSettings, since: date, by: By, today: date | None = None) -> list[JSON]:
    """One row per day, provider, model or session: requests, errors, tokens, probe answers."""
    async with opened(state) as backend:
        last = (today or datetime.now(UTC).date()).isoformat()
        rows = await backend.days(since.isoformat(), last, [_DIM[by]])
    grouped: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0.0))
    for row in rows:
        key = row.bucket if by == "day" else row.key
        slot = grouped[key]
        for name in FIELDS:
            slot[name] += row.fields.get(name, 0.0)
    out: list[JSON] = [{by: key, **{k: int(v) for k, v in values.items()}} for key, values in grouped.items()]
    if by == "day":
        out.sort(key=lambda r: str(r["day"]))
    else:
        out.sort(key=lambda r: (-int(r["requests"]), str(r[by])))
    return out
