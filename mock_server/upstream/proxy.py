"""The proxy's side of an exchange with the upstream: the request forwarded as the client sent it
(less what speaks to this server), and the upstream's response head and body as they arrive.

httpx, not aiohttp: it is what the official SDKs are built on, so the upstream meets the same HTTP
client they use; its pool keeps connections to the upstream open between requests, `aiter_raw`
hands over each piece of the body as it arrives, and `verify=` takes a private CA.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from mock_server.errors import UpstreamError, UpstreamTimeoutError
from mock_server.scenarios.steps import Ending
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


def passed_back(name: str) -> bool:
    """Whether an upstream response header (lower-case) reaches the client: not framing, and not CORS,
    which this server answers for itself (a browser refuses a header given twice)."""
    return name not in NOT_PASSED_BACK and not name.startswith("access-control-") and name != "vary"


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
    broke: Ending | None = None
    """How the upstream's body ended early, when it did: `drop` (cut short, or silent past the
    timeout) or `reset`; the client's stream ends the same way."""

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body as it arrives; the connection goes back to the pool (or closes) when done."""
        try:
            async for piece in self._response.aiter_raw():
                yield piece
        except httpx.HTTPError as exc:
            self.broke = Ending.RESET if _was_reset(exc) else Ending.DROP
        finally:
            await self._response.aclose()

    async def aclose(self) -> None:
        await self._response.aclose()


class Upstream:
    """The upstream server: one pool of connections to it, opened on first use."""

    def __init__(self, base_url: str, ca_file: Path | None = None, timeout_s: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._ca_file = ca_file
        self._timeout_s = timeout_s
        """How long its head, then each piece of its body, may take."""
        self._client: httpx.AsyncClient | None = None

    def _pool(self) -> httpx.AsyncClient:
        if self._client is None:
            verify: ssl.SSLContext | bool = True
            if self._ca_file is not None:
                verify = ssl.create_default_context(cafile=str(self._ca_file))
            self._client = httpx.AsyncClient(
                verify=verify,
                timeout=httpx.Timeout(self._timeout_s, connect=min(CONNECT_TIMEOUT_S, self._timeout_s)),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=200),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def open(self, request: Forwarded) -> UpstreamResponse:
        """Send `request` and wait for the response head; raises UpstreamError (502) when the upstream
        cannot be reached or fails first, UpstreamTimeoutError (504) when its head does not come."""
        url = self.base_url + request.path
        client = self._pool()
        sent = client.build_request(
            request.method, url, params=request.query, headers=request.headers, content=request.body or None
        )
        sent.headers["accept-encoding"] = "identity"
        try:
            response = await client.send(sent, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(f"the upstream {self.base_url} did not answer in time: {_why(exc)}") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the upstream {self.base_url} could not be reached: {_why(exc)}") from None
        headers = [(name, value) for name, value in response.headers.multi_items() if passed_back(name)]
        content_type = response.headers.get("content-type", "")
        return UpstreamResponse(response.status_code, headers, content_type, response)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _was_reset(exc: BaseException) -> bool:
    """Whether a connection reset (ECONNRESET) is among the causes of `exc`."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ConnectionResetError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _why(exc: Exception) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    return f"{text} ({cause})" if cause is not None and str(cause) not in text else text
