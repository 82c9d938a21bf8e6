"""An HTTP/1.1 client to one upstream origin, on asyncio's own transports: each response is parsed
(httptools, as uvicorn parses requests) in the callback that receives its bytes, and each piece of
its body is handed to its reader in that same callback, with the moment it arrived. No task wakes
up per piece: a live stream's events reach the client's socket in the call that read them.

Connections stay open between requests (`Origin`), the idle ones kept up to a bound and for a
while. A timeout bounds each silence of the upstream: before the head (`ClientTimeout`), then
between two pieces of the body (the body ends as cut, `Ending.DROP`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Protocol, cast

import httptools

from mock_server.scenarios.steps import Ending

CONNECT_TIMEOUT_S = 10.0
MAX_IDLE_CONNECTIONS = 200
"""Connections kept open to the upstream between requests; more are closed once their response is done."""
KEEPALIVE_S = 5.0
"""How long an idle connection to the upstream is kept (uvicorn, the usual upstream, keeps its own for 5 s)."""
MAX_UNREAD_BYTES = 256 * 1024
"""What a response buffers for a reader that has not started reading before the upstream waits."""
INFORMATIONAL = range(100, 200)
CLOSE_TURNS = 100
"""How many turns of the loop (the third on, 1 ms each) closing waits for the sockets to be closed."""


class ClientError(Exception):
    """The upstream could not be reached, or failed before its response head."""


class ClientTimeout(ClientError):
    """The upstream did not connect or send its response head in time."""


class BodyReader(Protocol):
    """Where a response's body goes, piece by piece, from the callback that received it."""

    def received(self, data: bytes, at: float, last: bool) -> None:
        """A piece of the body, which arrived at `at` (the event loop's clock); `last` when the body
        ends whole with it (`ended` follows in the same call)."""

    def ended(self, broke: Ending | None, at: float) -> None:
        """The body is over: whole (`broke` None), cut short or silent too long (`DROP`), or reset (`RESET`)."""


class Response:
    """The upstream's response head, and its body as it arrives (`read_into`)."""

    __slots__ = (
        "_connection",
        "_end",
        "_reader",
        "_unread",
        "_waiting",
        "content_type",
        "head_at",
        "headers",
        "status",
    )

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], head_at: float, connection: _Connection
    ) -> None:
        self.status = status
        self.headers = headers
        """Every header as it came, names in lower case."""
        self.content_type = next((value for name, value in headers if name == b"content-type"), b"").decode("latin-1")
        self.head_at = head_at
        self._connection: _Connection | None = connection
        """While the body arrives: the connection it arrives on."""
        self._reader: BodyReader | None = None
        self._waiting: list[tuple[bytes, float]] = []
        """What arrived before a reader: handed to it when it starts."""
        self._unread = 0
        self._end: tuple[Ending | None, float] | None = None

    def read_into(self, reader: BodyReader) -> None:
        """Hand `reader` the body: what arrived already at once, the rest as it arrives."""
        waiting, self._waiting = self._waiting, []
        whole = self._end is not None and self._end[0] is None
        for index, (data, at) in enumerate(waiting, 1):
            reader.received(data, at, whole and index == len(waiting))
        if self._end is not None:
            reader.ended(*self._end)
            return
        self._reader = reader
        if self._unread >= MAX_UNREAD_BYTES and self._connection is not None:
            self._connection.resume_reading()
        self._unread = 0

    def pause_reading(self) -> None:
        """Read no more of the body until `resume_reading`: its reader has enough to do."""
        if self._connection is not None:
            self._connection.pause_reading()

    def resume_reading(self) -> None:
        if self._connection is not None:
            self._connection.resume_reading()

    def close(self) -> None:
        """Let go of the body: the connection goes back to the pool when the body was read whole,
        else it is closed, its rest unread."""
        self._reader = None
        self._waiting = []
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort()

    def _received(self, data: bytes, at: float, last: bool) -> None:
        reader = self._reader
        if reader is not None:
            reader.received(data, at, last)
        elif self._connection is not None:
            self._waiting.append((data, at))
            self._unread += len(data)
            if self._unread >= MAX_UNREAD_BYTES:
                self._connection.pause_reading()

    def _ended(self, broke: Ending | None, at: float) -> None:
        self._connection = None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.ended(broke, at)
        else:
            self._end = (broke, at)


class Origin:
    """Connections to one origin (scheme, host and port), kept open between requests."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.timeout_s = timeout_s
        self._idle: list[_Connection] = []
        """The most recently used last: it is taken first, and the oldest expire first."""
        self._busy: set[_Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None

    async def request(self, method: str, head: bytes, body: bytes) -> Response:
        """Send a request (`head`: its request line and headers, with the blank line) and wait for
        the response head. Raises ClientTimeout or ClientError when it does not come."""
        while self._idle:
            connection = self._idle.pop()
            if connection.closed:
                continue
            self._busy.add(connection)
            try:
                return await connection.send(method, head, body)
            except _Stale:
                self._busy.discard(connection)
                continue  # the upstream closed it as it was taken: one that is not kept cannot be stale
        connection = await self._connect()
        self._busy.add(connection)
        try:
            return await connection.send(method, head, body)
        except _Stale:
            self._busy.discard(connection)
            raise ClientError("the upstream closed the connection before its response") from None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        timeout = min(CONNECT_TIMEOUT_S, self.timeout_s)
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                ),
                timeout,
            )
        except TimeoutError:
            raise ClientTimeout(f"no connection within {timeout:g} s") from None
        except OSError as exc:  # refused, unreachable, a certificate not trusted (ssl.SSLError)
            raise ClientError(str(exc) or type(exc).__name__) from exc
        return connection

    def _release(self, connection: _Connection) -> None:
        """Take back a connection whose response is done: kept for the next request, or closed."""
        self._busy.discard(connection)
        if len(self._idle) >= MAX_IDLE_CONNECTIONS:
            connection.abort()
            return
        loop = asyncio.get_running_loop()
        connection.idle_since = loop.time()
        self._idle.append(connection)
        if self._sweep is None:
            self._sweep = loop.call_later(KEEPALIVE_S, self._expire)

    def _forget(self, connection: _Connection) -> None:
        self._busy.discard(connection)

    def _expire(self) -> None:
        """Close the connections idle for longer than KEEPALIVE_S; look again when the next one is due."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired = 0
        for connection in self._idle:
            if connection.idle_since + KEEPALIVE_S > now:
                break
            connection.abort()
            expired += 1
        del self._idle[:expired]
        live = [connection for connection in self._idle if not connection.closed]
        self._idle[:] = live
        if live:
            self._sweep = loop.call_at(live[0].idle_since + KEEPALIVE_S, self._expire)

    async def aclose(self) -> None:
        """Close every connection, idle or busy (what is still arriving ends as cut), and return once
        their sockets are: asyncio closes an aborted one on a later turn of the loop, which a server
        stopping next would never take."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        connections = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        for connection in connections:
            connection.abort()
        for turn in range(CLOSE_TURNS):
            if all(connection.lost for connection in connections):
                return
            await asyncio.sleep(0 if turn < 2 else 0.001)


class _Stale(Exception):
    """A connection kept from an earlier request ended before a byte of the response to this one."""


class _Connection(asyncio.Protocol):
    """One connection to the upstream, and the parser of the response arriving on it."""

    def __init__(self, origin: Origin) -> None:
        self._origin = origin
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._clock = loop.time
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.lost = False
        """True once asyncio has closed the socket (`connection_lost`)."""
        self.idle_since = 0.0
        self._served = 0
        """Responses received whole on this connection."""
        self._method = ""
        self._head: asyncio.Future[Response] | None = None
        """Set once the response head is in; None while no request waits for one."""
        self._headers: list[tuple[bytes, bytes]] = []
        self._response: Response | None = None
        """The response whose body is arriving."""
        self._body: list[bytes] = []
        """The pieces of the body parsed from the bytes being received now."""
        self._complete = False
        self._keep_alive = False
        self._until_close = False
        """The body has no length and no chunks: it ends when the connection does."""
        self._got_bytes = False
        self._paused = False
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        at = self._last_read = self._clock()
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._end(Ending.DROP, ClientError(f"the upstream's response is not HTTP/1.1 ({exc})"), at)
            return
        if self._body:
            body = self._body
            piece = body[0] if len(body) == 1 else b"".join(body)
            body.clear()
            if self._response is not None:
                self._response._received(piece, at, self._complete)
        if self._complete:
            self._complete = False
            response, self._response = self._response, None
            reusable = self._keep_alive and self._method != "HEAD" and not self.closed
            if not reusable:
                self._stop_timer()
            if response is not None:
                response._ended(None, at)
            if reusable:
                self.resume_reading()  # its reader may have paused it as this last piece arrived
                self._origin._release(self)
            else:
                self.abort()

    def eof_received(self) -> bool:
        return False  # close the connection: connection_lost says how the response ended

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.lost = True
        self._stop_timer()
        self._origin._forget(self)
        at = self._clock()
        if self._until_close and exc is None:
            self._end(None, None, at)
        elif isinstance(exc, ConnectionResetError):
            self._end(Ending.RESET, ClientError(str(exc) or "the upstream reset the connection"), at)
        else:
            why = str(exc) if exc is not None else "the upstream closed the connection"
            self._end(Ending.DROP, ClientError(f"{why} before its response"), at)

    # httptools' side

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        headers, self._headers = self._headers, []
        if status in INFORMATIONAL and status != 101:
            return  # 100 Continue and the like: the response follows
        head = self._head
        if head is None or head.done():
            raise ClientError("the upstream sent a response nobody asked for")
        self._head = None
        # The moment its bytes arrived, as its body's pieces have theirs (`loop.time()` moves on between calls).
        self._response = response = Response(status, headers, self._last_read, self)
        framed = False
        for name, value in headers:
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
                framed = True
                break
        self._until_close = not framed
        head.set_result(response)
        if self._method == "HEAD":
            self._complete = True  # no body, whatever its head says: the connection is not kept

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._response is not None:
            self._complete = True
            self._until_close = False
            self._keep_alive = self._parser.should_keep_alive()  # only now: the parser then moves on

    # the origin's and the response's side

    async def send(self, method: str, head: bytes, body: bytes) -> Response:
        """Write the request and wait for the response head; raises _Stale when a kept connection
        ended before any of it."""
        transport = self._transport
        assert transport is not None
        reused = self._served > 0
        if self.closed or transport.is_closing():
            raise _Stale
        self._method = method
        self._got_bytes = False
        head_future: asyncio.Future[Response] = self._loop.create_future()
        self._head = head_future
        transport.write(head + body)
        self._last_read = self._clock()
        if self._timer is None:
            # Left armed while the connection is kept: it looks again from the latest read when due,
            # and lets go once it finds the connection idle, so back-to-back requests set it once.
            self._timer = self._loop.call_at(self._last_read + self._origin.timeout_s, self._check_silence)
        try:
            response = await head_future
        except ClientError:
            if reused and not self._got_bytes and not isinstance(head_future.exception(), ClientTimeout):
                raise _Stale from None
            raise
        except BaseException:
            self.abort()  # the request was given up (the client left): its response is not read
            raise
        self._served += 1
        return response

    def pause_reading(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            self._last_read = self._clock()  # the silence counts from here: it was ours
            self._transport.resume_reading()

    def abort(self) -> None:
        """Close at once, without waiting for anything to be written or read."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def _check_silence(self) -> None:
        """The timer of the upstream's silence: a response that has waited too long for its next
        bytes ends (timed out); until then, look again when it would be due."""
        self._timer = None
        if self._head is None and self._response is None:
            return
        due = self._last_read + self._origin.timeout_s
        now = self._clock()
        if self._paused or now < due:
            self._timer = self._loop.call_at(max(due, now + 0.001), self._check_silence)
            return
        timeout = self._origin.timeout_s
        self._end(Ending.DROP, ClientTimeout(f"nothing arrived for {timeout:g} s"), now)
        self.abort()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end(self, broke: Ending | None, error: ClientError | None, at: float) -> None:
        """End what is under way: the head awaited fails with `error`; the body ends as `broke`."""
        head, self._head = self._head, None
        if head is not None and not head.done() and error is not None:
            head.set_exception(error)
        response, self._response = self._response, None
        if response is not None:
            response._ended(broke, at)
        if broke is not None or error is not None:
            self.abort()


def request_head(method: str, target: bytes, host: bytes, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The request line and headers of a request, with the blank line that ends them: `Host` first,
    the body's length when it has one (or the method usually has one), and bodies unencoded."""
    head = b"%b %b HTTP/1.1\r\nHost: %b\r\n%bAccept-Encoding: identity\r\n" % (
        method.encode("latin-1"),
        target,
        host,
        b"".join([b"%b: %b\r\n" % header for header in headers]),
    )
    if body or method in ("POST", "PUT", "PATCH"):
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n"
