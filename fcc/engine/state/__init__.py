"""State: the store interface and its sqlite / redis / memory backends; records, usage
aggregates, limits' windows, circuits, metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fcc.engine.catalog.config import StateSettings
from fcc.engine.state.store import Backend


def backend_for(settings: StateSettings) -> Backend:
    if settings.backend == "memory":
        from fcc.engine.state.memory import MemoryBackend

        return MemoryBackend()
    if settings.backend == "redis":
        from fcc.engine.state.redis import RedisBackend

        assert settings.url is not None  # the schema requires it
        return RedisBackend(settings.url, settings.prefix, settings.retention_days)
    from fcc.engine.state.sqlite import SqliteBackend

    return SqliteBackend(settings.db_path)


@contextlib.asynccontextmanager
async def opened(settings: StateSettings) -> AsyncIterator[Backend]:
    """The store, open for a command's few reads; StoreError if it cannot be opened."""
    backend = backend_for(settings)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
