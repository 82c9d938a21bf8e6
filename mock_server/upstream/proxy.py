"""The proxy's side of an exchange with the upstream: the request forwarded as the client sent it
(less what speaks to this server), and the upstream's response head and body as they arrive.

httpx, not aiohttp: it is what the official SDKs are built on, so the upstream meets the same HTTP
client they use; `aiter_raw` hands over each piece of the body as it arrives, and `verify=` takes a
private CA. Connections to the upstream stay open between requests (`Upstream`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import cast

import httpcore
import httpx

from mock_server.errors import UpstreamError, UpstreamTimeoutError
from mock_server.scenarios.steps import Ending
from mock_server.upstream.forwarding import Forwarded, passed_back

CONNECT_TIMEOUT_S = 10.0
MAX_IDLE_CONNECTIONS = 200
"""Connections kept open to the upstream between requests; more are closed once their response is done."""
KEEPALIVE_S = 5.0
"""How long an idle connection to the upstream is kept (httpx's default)."""
MAX_UNREAD_BYTES = 256 * 1024
"""What a connection to the upstream buffers before it stops reading until some is read."""
READ_AT = "mock_llm_sse.read_at"
"""What our network streams are asked for when the bytes last read from them arrived."""


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
            await self.aclose()

    def arrived_at(self) -> float:
        """When the piece of the body last handed over (before any: the head) arrived from the
        upstream, on the event loop's clock: it may have waited unread while the stream played."""
        return _read_at(self._response)

    async def aclose(self) -> None:
        await self._response.aclose()
        release, self._release = self._release, _nothing
        release()


def _nothing() -> None:
    pass


def _read_at(response: httpx.Response) -> float:
    stream = response.extensions.get("network_stream")
    at = stream.get_extra_info(READ_AT) if stream is not None else None
    return at if isinstance(at, float) else asyncio.get_running_loop().time()


class Upstream:
    """The upstream server: connections to it, each kept open between requests, opened on first use.

    Each connection is an httpx client of its own (a pool of one), and the idle ones wait in a list,
    the most recently used taken first. One httpx pool of many connections would do the same job, but
    httpcore's pool looks over every connection it holds (a `poll` on each idle one) whenever a
    request starts or ends: at 500 streams at once that cost the proxy more than the streams did.
    The clients share one TLS context and one cookie jar, as one client's connections would, and
    talk to their socket through asyncio itself (`_Socket`).
    """

    def __init__(self, base_url: str, ca_file: Path | None = None, timeout_s: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._ca_file = ca_file
        self._timeout_s = timeout_s
        """How long its head, then each piece of its body, may take."""
        self._tls: ssl.SSLContext | None = None
        self._cookies = CookieJar()
        self._idle: list[httpx.AsyncClient] = []
        self._busy: set[httpx.AsyncClient] = set()

    def _connection(self) -> httpx.AsyncClient:
        if self._idle:
            client = self._idle.pop()
        else:
            client = httpx.AsyncClient(
                transport=_transport(self._tls_context()),
                cookies=self._cookies,
                timeout=httpx.Timeout(self._timeout_s, connect=min(CONNECT_TIMEOUT_S, self._timeout_s)),
                follow_redirects=False,
                trust_env=False,
            )
        self._busy.add(client)
        return client

    def _tls_context(self) -> ssl.SSLContext | None:
        """The one TLS context of an https:// upstream, built on first use: loading the CA
        certificates takes tens of milliseconds."""
        if self._tls is None and self.base_url.startswith("https:"):
            self._tls = (
                ssl.create_default_context(cafile=str(self._ca_file))
                if self._ca_file is not None
                else httpx.create_ssl_context(trust_env=False)
            )
        return self._tls

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
        headers = [(name, value) for name, value in response.headers.multi_items() if passed_back(name)]
        content_type = response.headers.get("content-type", "")
        return UpstreamResponse(response.status_code, headers, content_type, response, lambda: self._release(client))

    async def aclose(self) -> None:
        clients = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        for client in clients:
            await client.aclose()


def _transport(tls: ssl.SSLContext | None) -> httpx.AsyncHTTPTransport:
    """httpx's transport for one connection to the upstream, on asyncio's sockets: httpcore reads
    them through anyio by default, whose cancel scope and timeout per read cost the proxy a third
    of its time with a paced stream. httpx takes no network backend; httpcore's pool does."""
    transport = httpx.AsyncHTTPTransport(verify=tls or False, trust_env=False)  # its own pool is replaced
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls, max_connections=1, keepalive_expiry=KEEPALIVE_S, network_backend=_ASYNCIO
    )
    return transport


class _Socket(asyncio.Protocol):
    """One TCP connection to the upstream: what arrives waits here, with the moment it arrived, until
    httpcore reads it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received: deque[tuple[float, bytes]] = deque()
        self.unread = 0
        self.read_at = 0.0
        """When the bytes read last arrived (the event loop's clock)."""
        self.ended = False
        self.error: Exception | None = None
        self.readable: asyncio.Future[None] | None = None
        self.writable: asyncio.Future[None] | None = None
        self.paused = False
        self._clock = asyncio.get_running_loop().time

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.received.append((self._clock(), data))
        self.unread += len(data)
        if self.unread >= MAX_UNREAD_BYTES and self.transport is not None and not self.paused:
            self.paused = True  # until it is read: the upstream waits for a client that reads slowly
            self.transport.pause_reading()
        self._wake()

    def read(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` of what arrived first, from one arrival."""
        at, data = self.received.popleft()
        if len(data) > max_bytes:
            self.received.appendleft((at, data[max_bytes:]))
            data = data[:max_bytes]
        self.unread -= len(data)
        self.read_at = at
        if self.paused and self.unread < MAX_UNREAD_BYTES and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def _wake(self) -> None:
        if self.readable is not None and not self.readable.done():
            self.readable.set_result(None)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, socket: _Socket) -> None:
        self._transport = transport
        self._socket = socket

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        socket = self._socket
        if not socket.received and not socket.ended:
            socket.readable = asyncio.get_running_loop().create_future()
            try:
                await _within(timeout, socket.readable, httpcore.ReadTimeout)
            finally:
                socket.readable = None
        if socket.received:
            return socket.read(max_bytes)
        if socket.error is not None:
            error = httpcore.ReadError(str(socket.error) or type(socket.error).__name__)
            error.__context__ = socket.error  # what httpcore keeps when it raises this again `from None`
            raise error from socket.error
        return b""  # the upstream closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._transport.is_closing():
            raise httpcore.WriteError("the upstream closed the connection")
        self._transport.write(buffer)
        if self._socket.writable is not None:
            await _within(timeout, self._socket.writable, httpcore.WriteTimeout)

    async def aclose(self) -> None:
        self._transport.abort()  # as anyio's stream does: at once, with no TLS close_notify to wait for

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            tls = await asyncio.wait_for(
                loop.start_tls(self._transport, self._socket, ssl_context, server_hostname=server_hostname), timeout
            )
        except TimeoutError:
            self._transport.abort()
            raise httpcore.ConnectTimeout(f"no TLS handshake within {timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc)) from exc
        if tls is None:
            raise httpcore.ConnectError("the upstream closed the connection during the TLS handshake")
        return _Stream(tls, self._socket)

    def get_extra_info(self, info: str) -> object:
        if info == "is_readable":  # httpcore asks of an idle connection: has the upstream closed it?
            return bool(self._socket.received) or self._socket.ended
        if info == READ_AT:
            return self._socket.read_at
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername", "socket": "socket"}
        return self._transport.get_extra_info(names[info]) if info in names else None


class _AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address is not None else None
        try:
            transport, socket = await asyncio.wait_for(
                loop.create_connection(_Socket, host, port, local_addr=local), timeout
            )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout:g} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        for option in socket_options or ():
            transport.get_extra_info("socket").setsockopt(*option)
        return _Stream(transport, socket)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


_ASYNCIO = _AsyncioBackend()


async def _within(timeout: float | None, future: asyncio.Future[None], error: type[httpcore.TimeoutException]) -> None:
    """Wait for `future`; raises `error` after `timeout` seconds (None: no limit)."""
    if timeout is None:
        await future
        return
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        future.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        await future
    except asyncio.CancelledError:
        if expired:
            raise error(f"waited {timeout:g} s") from None
        raise
    finally:
        timer.cancel()


_CLOSING: set[asyncio.Task[None]] = set()
"""Clients being closed in the background: held until done, so none is collected half-way."""


def _closing(client: httpx.AsyncClient) -> None:
    task = asyncio.ensure_future(client.aclose())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


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
