"""The proxy's side of an exchange with the upstream: the request forwarded as the client sent it
(less what speaks to this server), and the upstream's response head and body as they arrive.

httpx, not aiohttp: it is what the official SDKs are built on, so the upstream meets the same HTTP
client they use; `aiter_raw` hands over each piece of the body as it arrives, and `verify=` takes a
private CA. Connections to the upstream stay open between requests (`Upstream`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path

import httpx

from mock_server.errors import UpstreamError, UpstreamTimeoutError
from mock_server.timeline.overrides import OVERRIDE_QUERY

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers"}
    | {"transfer-encoding", "upgrade", "proxy-connection"}
)
"""Headers of one connection, never forwarded (RFC 9110 7.6.1)."""
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "accept-encoding"}
"""Request headers httpx sets itself; bodies are asked for unencoded, so events can be counted."""
NOT_PASSED_BACK = HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}
"""Response headers this server sets itself (framing, date) or that no longer hold."""
CONNECT_TIMEOUT_S = 10.0
HEAD_TIMEOUT_S = 300.0
"""How long the upstream may take to send its head, and then each piece of its body: a model may
think for minutes before its first token."""
MAX_IDLE_CONNECTIONS = 200
"""Connections kept open to the upstream between requests; more are closed once their response is done."""


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What goes upstream: the client's method, path, query and headers (less ours) and body."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes


def forwarded(
    method: str, path: str, query: Iterable[tuple[str, str]], headers: Iterable[tuple[str, str]], body: bytes
) -> Forwarded:
    """The request as the upstream gets it: without hop-by-hop headers, `X-Mock-*` headers and the
    override parameters (`fault=`, `seed=`, ...), which are for this server."""
    kept_query = tuple((name, value) for name, value in query if name not in OVERRIDE_QUERY)
    kept_headers = tuple(
        (name, value)
        for name, value in headers
        if name.lower() not in NOT_FORWARDED and not name.lower().startswith("x-mock-")
    )
    return Forwarded(method, path, kept_query, kept_headers, body)


@dataclass(slots=True)
class UpstreamResponse:
    """The upstream's head, and its body still to be read."""

    status: int
    headers: list[tuple[str, str]]
    """The headers passed back to the client."""
    content_type: str
    _response: httpx.Response
    _release: Callable[[], None]
    """Hands the connection back for the next request, once this response is done with it."""

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body as it arrives; the connection goes back to the pool (or closes) when done."""
        try:
            async for piece in self._response.aiter_raw():
                yield piece
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self._response.aclose()
        release, self._release = self._release, _nothing
        release()


def _nothing() -> None:
    pass


class Upstream:
    """The upstream server: connections to it, each kept open between requests, opened on first use.

    Each connection is an httpx client of its own (a pool of one), and the idle ones wait in a list,
    the most recently used taken first. One httpx pool of many connections would do the same job, but
    httpcore's pool looks over every connection it holds (a `poll` on each idle one) whenever a
    request starts or ends: at 500 streams at once that cost the proxy more than the streams did.
    The clients share one TLS context and one cookie jar, as one client's connections would.
    """

    def __init__(self, base_url: str, ca_file: Path | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._ca_file = ca_file
        self._tls: ssl.SSLContext | None = None
        self._cookies = CookieJar()
        self._idle: list[httpx.AsyncClient] = []
        self._busy: set[httpx.AsyncClient] = set()

    def _connection(self) -> httpx.AsyncClient:
        if self._idle:
            client = self._idle.pop()
        else:
            if self._tls is None:  # built once: loading the CA certificates takes tens of milliseconds
                self._tls = (
                    ssl.create_default_context(cafile=str(self._ca_file))
                    if self._ca_file is not None
                    else httpx.create_ssl_context(trust_env=False)
                )
            client = httpx.AsyncClient(
                verify=self._tls,
                cookies=self._cookies,
                timeout=httpx.Timeout(HEAD_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                follow_redirects=False,
                trust_env=False,
            )
        self._busy.add(client)
        return client

    def _release(self, client: httpx.AsyncClient) -> None:
        """Take `client` back: kept for the next request, or closed when enough are kept already."""
        self._busy.discard(client)
        if len(self._idle) < MAX_IDLE_CONNECTIONS:
            self._idle.append(client)
        else:
            _closing(client)

    async def open(self, request: Forwarded) -> UpstreamResponse:
        """Send `request` and wait for the response head; raises UpstreamError (502) when the upstream
        cannot be reached or fails first, UpstreamTimeoutError (504) when its head does not come."""
        url = self.base_url + request.path
        client = self._connection()
        sent = client.build_request(
            request.method, url, params=request.query, headers=request.headers, content=request.body or None
        )
        sent.headers["accept-encoding"] = "identity"
        try:
            response = await client.send(sent, stream=True)
        except httpx.TimeoutException as exc:
            self._release(client)
            raise UpstreamTimeoutError(f"the upstream {self.base_url} did not answer in time: {_why(exc)}") from None
        except httpx.HTTPError as exc:
            self._release(client)
            raise UpstreamError(f"the upstream {self.base_url} could not be reached: {_why(exc)}") from None
        except BaseException:
            self._release(client)
            raise
        headers = [(name, value) for name, value in response.headers.multi_items() if name not in NOT_PASSED_BACK]
        content_type = response.headers.get("content-type", "")
        return UpstreamResponse(response.status_code, headers, content_type, response, lambda: self._release(client))

    async def aclose(self) -> None:
        clients = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        for client in clients:
            await client.aclose()


_CLOSING: set[asyncio.Task[None]] = set()
"""Clients being closed in the background: held until done, so none is collected half-way."""


def _closing(client: httpx.AsyncClient) -> None:
    task = asyncio.ensure_future(client.aclose())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


def _why(exc: Exception) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    return f"{text} ({cause})" if cause is not None and str(cause) not in text else text
