"""The fast paths fcc uses when they are installed, and how to turn them off.

uvloop (the event loop) and httptools (uvicorn's HTTP parser) are dependencies on the
platforms that have wheels for them; elsewhere fcc runs on asyncio's own loop and h11, and
so does every test run with FCC_LOOP=asyncio FCC_HTTP=h11. The upstream leg runs on aiohttp
(through httpx's transport interface, so timeouts, limits and the no-redirect rule stay
httpx's) unless FCC_UPSTREAM=httpx asks for httpx's own connection pool.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Literal

Loop = Literal["uvloop", "asyncio"]
Http = Literal["httptools", "h11"]
Upstream = Literal["aiohttp", "httpx"]


def _choice(env: str, fast: str, module: str, slow: str) -> str:
    wanted = os.environ.get(env, "auto").strip().lower() or "auto"
    if wanted not in ("auto", fast, slow):
        raise RuntimeError(f"{env}={wanted}: use auto, {fast} or {slow}")
    if wanted == slow:
        return slow
    if importlib.util.find_spec(module) is not None:
        return fast
    if wanted == fast:
        raise RuntimeError(f"{env}={fast}, but {module} is not installed: pip install {module}")
    return slow


def loop() -> Loop:
    return "uvloop" if _choice("FCC_LOOP", "uvloop", "uvloop", "asyncio") == "uvloop" else "asyncio"


def http() -> Http:
    return "httptools" if _choice("FCC_HTTP", "httptools", "httptools", "h11") == "httptools" else "h11"


def upstream() -> Upstream:
    return "aiohttp" if _choice("FCC_UPSTREAM", "aiohttp", "aiohttp", "httpx") == "aiohttp" else "httpx"
