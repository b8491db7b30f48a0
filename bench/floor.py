"""The start floor: what `fcc serve`'s start → first answer would cost with none of fcc's own
code, on the libraries it starts on. `python -m bench.floor --port P --upstream URL`.

It parses its options with typer, imports what the server's process imports before it can
answer (uvicorn on the loop and parser fcc would choose, starlette, httpx, msgspec), listens,
and answers each POST /v1/messages by asking the upstream (…/v1) for one streamed answer through
an aiohttp session, imported in a thread once it listens, as fcc's transport is; the answer
is the upstream's bytes. No catalog, routing, translation or state store: the difference
between this and fcc in the same run is fcc's own start (bench/run.py's `first_answers`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.util import find_spec
from typing import Annotated, Any

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # as fcc's executable does

import httpx  # noqa: E402,F401  (fcc's upstream client interface)
import msgspec  # noqa: E402,F401
import typer  # noqa: E402
import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

BODY = json.dumps(
    {"model": "tokens-1", "stream": True, "messages": [{"role": "user", "content": "Say hi."}]}
).encode()


def build(upstream: str) -> Starlette:
    url = upstream.rstrip("/") + "/chat/completions"
    ready: dict[str, Any] = {}

    def load() -> None:
        import aiohttp  # noqa: F401

    async def lifespan(app: Starlette) -> Any:
        ready["import"] = asyncio.ensure_future(asyncio.to_thread(load))
        yield
        if "session" in ready:
            await ready["session"].close()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def messages(request: Request) -> Response:
        await request.body()
        await ready["import"]
        import aiohttp

        if "session" not in ready:
            ready["session"] = aiohttp.ClientSession(auto_decompress=False)
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        async with ready["session"].post(url, data=BODY, headers=headers) as answer:
            body = await answer.read()
        return Response(body, media_type="text/plain")

    return Starlette(
        routes=[Route("/health", health), Route("/v1/messages", messages, methods=["POST"])],
        lifespan=lifespan,
    )


def main(
    port: Annotated[int, typer.Option("--port")],
    upstream: Annotated[str, typer.Option("--upstream")],
) -> None:
    # fcc's own choice when nothing turns it off (fcc/engine/transports/speed.py), without
    # importing fcc's engine to make it.
    uvicorn.run(
        build(upstream),
        host="127.0.0.1",
        port=port,
        loop="uvloop" if find_spec("uvloop") else "asyncio",
        http="httptools" if find_spec("httptools") else "h11",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    typer.run(main)
