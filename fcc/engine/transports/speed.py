"""The fast paths fcc uses when they are installed, and how to turn them off.

uvloop (the event loop) and httptools (uvicorn's HTTP parser) are dependencies on the
platforms that have wheels for them; elsewhere fcc runs on asyncio's own loop and h11, and
so does every test run with FCC_LOOP=asyncio FCC_HTTP=h11. The upstream leg runs on fcc's own
HTTP/1.1 client over httptools (transports/h1.py, behind httpx's transport interface, so
timeouts, limits and the no-redirect rule stay httpx's) unless FCC_UPSTREAM=httpx asks for
httpx's own connection pool.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Literal, cast

Loop = Literal["uvloop", "asyncio"]
Http = Literal["httptools", "h11"]
Upstream = Literal["httptools", "httpx"]


def _choice(env: str, fast: str, slow: str) -> str:
    """`fast` (also the module's name) when it is installed and not turned off, else `slow`."""
    wanted = os.environ.get(env, "auto").strip().lower() or "auto"
    if wanted not in ("auto", fast, slow):
        raise RuntimeError(f"{env}={wanted}: use auto, {fast} or {slow}")
    if wanted == slow:
        return slow
    if importlib.util.find_spec(fast) is not None:
        return fast
    if wanted == fast:
        raise RuntimeError(f"{env}={fast}, but {fast} is not installed: pip install {fast}")
    return slow


def loop() -> Loop:
    return cast(Loop, _choice("FCC_LOOP", "uvloop", "asyncio"))


def http() -> Http:
    return cast(Http, _choice("FCC_HTTP", "httptools", "h11"))


def upstream() -> Upstream:
    return cast(Upstream, _choice("FCC_UPSTREAM", "httptools", "httpx"))
