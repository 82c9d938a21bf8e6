"""The proxy's side of an exchange with the upstream: the request forwarded as the client sent it
(less what speaks to this server), and the upstream's response head and body as they arrive.

The HTTP client is our own (`client`): a live stream's bytes are parsed and passed on in the
callback that reads them, which an HTTP library's streaming reads (httpx's `aiter_raw`, aiohttp's
`iter_any`) cannot do: they hand each piece over through a chain of coroutines, and at hundreds of
paced streams that cost the proxy more than the streams did. Connections to the upstream stay open
between requests.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mock_server.errors import UpstreamError, UpstreamTimeoutError
from mock_server.upstream.client import ClientError, ClientTimeout, Origin, Response, request_head
from mock_server.upstream.forwarding import Forwarded, passed_back


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """The upstream's head, and its body still to arrive."""

    status: int
    raw_headers: list[tuple[bytes, bytes]]
    """The headers passed back to the client, as they came (names in lower case)."""
    content_type: str
    body: Response

    @property
    def headers(self) -> list[tuple[str, str]]:
        """`raw_headers` decoded."""
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self.raw_headers]

    def header(self, name: bytes) -> str | None:
        """The first value of the header `name` (lower case) passed back, if any."""
        return next((value.decode("latin-1") for key, value in self.raw_headers if key == name), None)


class Upstream:
    """The upstream server (`--upstream URL`): where requests are forwarded, over connections kept
    open between them."""

    def __init__(self, base_url: str, ca_file: Path | None = None, timeout_s: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        url = urlsplit(self.base_url)
        self._prefix = url.path.encode("latin-1")
        self._host = url.netloc.rpartition("@")[2].encode("latin-1")
        self._ca_file = ca_file
        self._origin = Origin(url.hostname or "", url.port or (443 if url.scheme == "https" else 80), None, timeout_s)
        self._tls = url.scheme == "https"
        self._login: tuple[bytes, bytes] | None = None
        """The `user:password@` of the URL, as Basic credentials for a request that brings none."""
        if url.username is not None:
            pair = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
            self._login = (b"authorization", b"Basic " + base64.b64encode(pair))

    def _tls_context(self) -> ssl.SSLContext:
        """The TLS context of an https:// upstream: the given CA's certificates, else the system's."""
        context = ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file is not None else None)
        context.set_alpn_protocols(["http/1.1"])
        return context

    async def open(self, request: Forwarded) -> UpstreamResponse:
        """Send `request` and wait for the response head; raises UpstreamError (502) when the upstream
        cannot be reached or fails first, UpstreamTimeoutError (504) when its head does not come."""
        if self._tls and self._origin.tls is None:
            # Built on first use, not at start-up: loading the CA certificates takes tens of milliseconds.
            self._origin.tls = self._tls_context()
        sent = request.headers
        if self._login is not None and all(name != b"authorization" for name, _ in sent):
            sent = (*sent, self._login)
        head = request_head(request.method, self._prefix + request.target, self._host, sent, request.body)
        try:
            response = await self._origin.request(request.method, head, request.body)
        except ClientTimeout as exc:
            raise UpstreamTimeoutError(f"the upstream {self.base_url} did not answer in time: {exc}") from None
        except ClientError as exc:
            raise UpstreamError(f"the upstream {self.base_url} could not be reached: {exc}") from None
        return UpstreamResponse(response.status, passed_back(response.headers), response.content_type, response)

    async def aclose(self) -> None:
        await self._origin.aclose()
