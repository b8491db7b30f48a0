"""The order a chain's attempts are tried in: as written, least busy first, or round robin.
Health, rate limits and fallback apply to whatever order comes out (routing/dispatch.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from fcc.engine.catalog.providers import Provider
from fcc.engine.types import Strategy

T = TypeVar("T")


class RoundRobin:
    """Where each chain starts next: one step further per request (per process)."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def start(self, key: str, size: int) -> int:
        n = self._next.get(key, 0)
        self._next[key] = n + 1
        return n % size if size else 0


def order(
    items: Sequence[T],
    strategy: Strategy,
    provider: Callable[[T], Provider],
    active: Callable[[str], int],
    key: str,
    rotation: RoundRobin,
) -> list[T]:
    if strategy == "ordered" or len(items) < 2:
        return list(items)
    if strategy == "round_robin":
        start = rotation.start(key, len(items))
        return [*items[start:], *items[:start]]

    # least_busy: fewest streams in flight first; among equals, the most concurrency headroom
    # left, then the order as written.
    def load(pair: tuple[int, T]) -> tuple[int, float, int]:
        position, item = pair
        p = provider(item)
        busy = active(p.id)
        limit = p.limits.concurrent_streams
        headroom = (limit - busy) if limit is not None else float("inf")
        return (busy, -headroom, position)

    return [item for _, item in sorted(enumerate(items), key=load)]
