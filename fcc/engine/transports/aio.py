"""The upstream leg on aiohttp, behind httpx's transport interface.

fcc talks to upstreams through `httpx.AsyncClient` (its timeouts, limits, no-redirect rule,
content decoding and errors are what the transport loop is written against). httpx's own
connection pool (httpcore over anyio) costs fcc more CPU than everything else under load: it
scans every kept-alive connection per request and turns the socket's reading off and on per
read (bench/RESULTS.md). This transport hands the wire to aiohttp, whose pool is a dict of
idle connections per host and whose parser is C, and answers in httpx's terms: the same
response object, and the httpx exception a dropped, refused or timed-out connection raises
with httpcore, so the transport loop's decisions (retry a stale keep-alive once, "cannot
reach", "connection lost mid-answer") do not depend on which one runs.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import aiohttp


@contextlib.contextmanager
def _as_httpx(request: httpx.Request, answered: bool) -> Iterator[None]:
    """aiohttp's exceptions as the httpx ones httpcore raises for the same event."""
    import aiohttp

    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.SocketTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx.TimeoutException(str(exc) or "timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, no route, DNS, TLS handshake
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ClientPayloadError as exc:  # the body ended before its framing said
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ServerDisconnectedError as exc:
        # Before the status line this is a kept-alive connection the server had closed.
        error = httpx.ReadError if answered else httpx.RemoteProtocolError
        raise error(str(exc) or "server disconnected", request=request) from exc
    except aiohttp.ClientResponseError as exc:  # a status line or headers that do not parse
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except (aiohttp.ClientConnectionError, OSError) as exc:  # reset, broken pipe
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx(self._request, answered=True):
            # Whatever each read brought, at once: an SSE event must not wait for company.
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A body not read to its end leaves a connection nobody can reuse: aiohttp closes it.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (opened on first use, in the running loop) for every upstream.

    Importing aiohttp takes a fifth of a second and loading httpx's trust store (for HTTPS
    upstreams only) a few hundredths more: `prepare` does what the routes need, and the
    server runs it in a thread once it is listening (the first request, if it comes sooner,
    waits for it). A route added later to an HTTPS upstream loads the trust store then."""

    def __init__(self, limits: httpx.Limits, verify: bool = True) -> None:
        self._limits = limits
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None

    def prepare(self, tls: bool = True) -> None:
        import aiohttp  # noqa: F401  (what the first request would otherwise wait for)

        if tls:
            self._tls()

    def _tls(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context(verify=self._verify)  # httpx's trust store
            return self._ssl

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        limits = self._limits
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0,
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # httpx decodes, as it does for httpcore
            trust_env=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),  # httpx's own are sent
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = self._open()
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        body: bytes | httpx.AsyncByteStream | None
        try:
            body = request.content or None
        except httpx.RequestNotRead:
            body = request.stream  # type: ignore[assignment]
        with _as_httpx(request, answered=False):
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body,
                allow_redirects=False,  # httpx decides about redirects (fcc never follows one)
                compress=False,
                # httpx's verification rules and trust store, never aiohttp's defaults.
                ssl=self._tls() if request.url.scheme == "https" else True,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        version = response.version
        shown = f"HTTP/{version.major}.{version.minor}" if version is not None else "HTTP/1.1"
        extensions: dict[str, Any] = {"http_version": shown.encode()}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
