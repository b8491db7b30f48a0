"""The start floor: what `fcc serve`'s start → first answer would cost with none of fcc's own
code, on the libraries it starts on. `python -m bench.floor --port P --upstream URL`.

It parses its options with typer, imports what the server's process imports before it can
answer (uvicorn on the loop and parser fcc would choose, starlette, httpx, msgspec), listens,
and answers each POST /v1/messages by asking the upstream (…/v1) for one streamed answer over
one asyncio connection (fcc's own upstream leg is asyncio's transport and httptools' parser,
which uvicorn has already imported); the answer is the upstream's bytes. No catalog, routing,
translation or state store: the difference between this and fcc in the same run is fcc's own
start (bench/run.py's `first_answers`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.util import find_spec
from typing import Annotated

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # as fcc's executable does

import httpx  # noqa: E402  (fcc's upstream client interface)
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
    url = httpx.URL(upstream.rstrip("/") + "/chat/completions")
    head = (
        f"POST {url.path} HTTP/1.1\r\nhost: {url.host}:{url.port}\r\ncontent-type: application/json\r\n"
        f"accept: text/event-stream\r\ncontent-length: {len(BODY)}\r\nconnection: close\r\n\r\n"
    ).encode()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def messages(request: Request) -> Response:
        await request.body()
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(head + BODY)
        body = await reader.read()  # the upstream closes after the answer (connection: close)
        writer.close()
        return Response(body, media_type="text/plain")

    return Starlette(routes=[Route("/health", health), Route("/v1/messages", messages, methods=["POST"])])


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
