"""The engine at work outside any server: one upstream client, the state store, the
dispatcher. The server's lifespan runs it, and so does `fcc doctor`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.routing.dispatch import Dispatcher
from fcc.engine.state.service import StateService
from fcc.engine.transports import TRANSPORTS, speed
from fcc.engine.transports.http import Sender


@contextlib.asynccontextmanager
async def running(
    keys: KeyStore,
    service: StateService,
    transport: httpx.AsyncBaseTransport | None = None,
    tls: bool = True,
) -> AsyncIterator[Dispatcher]:
    """Opens the store (StoreError says why it cannot be) and yields a dispatcher; closes both.
    `tls`: some upstream is reached over HTTPS (its trust store is loaded ahead of time)."""
    # Timeouts are enforced per provider in the transport loop; redirects are never
    # followed, so an upstream cannot send fcc (and a key) to another host.
    # Keep every connection the limit allows: reopening them under load cost more than the
    # pool's own bookkeeping (bench/RESULTS.md).
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    warm = None
    if transport is None and speed.upstream() == "httptools":
        from fcc.engine.transports.h1 import H1Transport

        transport = H1Transport(limits)
        if tls:  # httpx's trust store, loaded off the loop while the server starts
            warm = asyncio.ensure_future(asyncio.to_thread(transport.prepare))
    elif transport is None:
        transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)  # httpx's own pool
    async with httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(None, connect=30.0),
        follow_redirects=False,
        limits=limits,
        trust_env=False,
    ) as client:
        await service.start()
        try:
            adapters = {name: factory() for name, factory in TRANSPORTS.items()}
            yield Dispatcher(Sender(client, transport), adapters, keys, service)
        finally:
            await service.stop()
            if warm is not None:
                await warm
