"""What a connection may cost the server, enforced by the HTTP protocol while it reads: only the
protocol sees a connection before the app does, and each byte as it arrives.

- **Head caps** (`MAX_HEADERS`, `MAX_HEADER_BYTES`) are counted in httptools' callbacks while the
  head is parsed, so a request of 80,000 headers costs the parsing of 257 of them: it is answered
  431 and the rest is never parsed (nor copied into a scope, nor seen by the app).
- **A request read timeout** (`Settings.request_timeout_s`): one timer per connection, from its
  opening (or the first byte of its next request) until the request is whole; a connection that
  sends nothing, half a head or half a body is closed, with a 408 when part of a request came.
  uvicorn's own keep-alive timeout covers only the idle time after a response.
- **A connection limit** (`Settings.max_connections`, lowered to what the open-file limit allows):
  past it, a new connection is answered 503 with `Retry-After` in `connection_made` and closed,
  freeing its descriptor at once. uvicorn's `limit_concurrency` is left off: it answers 503 only
  once a request's head has arrived (a connection that sends nothing keeps its descriptor), counts
  running tasks as well, and sends no `Retry-After`.
Each kind of refusal reaches the log through its `RateLimitedWarning`: a flood of them is a line
per interval, not a line per connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import httptools
import uvicorn

# httptools comes with uvicorn[standard], which we depend on: the head caps below live in its callbacks.
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEADERS = 256
"""Header fields per request. Browsers and SDKs send a few dozen at most; a request of 80,000 of
them is refused after the 257th, before anything but the parser has seen it."""
MAX_HEADER_BYTES = 64 * 1024
"""Bytes of header names and values per request (a request line or header line still arriving
counts too, so one that never ends is stopped as well). Browsers send under 8 KiB, cookies
included; Node refuses more than 16 KiB for the whole head."""
_LINE_SYNTAX_BYTES = 32
"""What a head line holds besides a header's name and value (colon, spaces, CR; a request line's
method and version): a line still arriving is refused only once its header is certainly past the cap."""
REFUSAL_LINGER_S = 1.0
"""How long a connection whose request was refused unread keeps reading (and dropping) what the
client still sends: closing with unread bytes would answer them with a reset, and a client still
sending would see the reset instead of our answer."""
WARNING_INTERVAL_S = 10.0
_HEADER_COUNT_MESSAGE = (
    f"The request has more than {MAX_HEADERS} header fields, the server's limit; send fewer "
    "(browsers and SDKs send a few dozen at most)."
)
_HEADER_BYTES_MESSAGE = (
    f"The request's header fields are over {MAX_HEADER_BYTES // 1024} KiB (names and values; a request line or "
    "header still arriving counts too), the server's limit; send shorter headers, and large data in the body."
)
_logger = logging.getLogger("uvicorn.error")


class RateLimitedWarning:
    """A warning that reaches the log at most once per `interval_s`: the first occurrence at once,
    later ones counted and reported together, in one line, when the interval is over."""

    def __init__(self, describe: Callable[[int], str], interval_s: float = WARNING_INTERVAL_S) -> None:
        self.describe = describe
        """The line for `count` occurrences since the last one."""
        self.interval_s = interval_s
        self._count = 0
        self._quiet_until = -math.inf
        self._flush: asyncio.TimerHandle | None = None

    def note(self) -> None:
        """Count one occurrence (on the server's event loop)."""
        self._count += 1
        if self._flush is not None:
            return  # a line is already due at the end of the interval
        loop = asyncio.get_running_loop()
        wait = self._quiet_until - loop.time()
        if wait <= 0:
            self._log(loop)
        else:
            self._flush = loop.call_later(wait, self._log, loop)

    def _log(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush = None
        _logger.warning(self.describe(self._count))
        self._count = 0
        self._quiet_until = loop.time() + self.interval_s


class ConnectionLimits:
    """What one server allows its connections, and the warnings they share."""

    def __init__(self, *, request_timeout_s: float, max_connections: int, limit_name: str) -> None:
        self.request_timeout_s = request_timeout_s
        """How long a connection has to send each request, head and body."""
        self.max_connections = max_connections
        """How many connections may be open at once (the effective limit)."""
        interval = f"{WARNING_INTERVAL_S:g} s"
        self.refused_connections = RateLimitedWarning(
            lambda count: (
                f"refused {count:,} connection(s) in the last {interval}: {max_connections:,} are open, "
                f"{limit_name}; clients were answered 503 with Retry-After"
            )
        )
        self.timed_out = RateLimitedWarning(
            lambda count: (
                f"closed {count:,} connection(s) in the last {interval} that did not send a whole "
                f"request within {request_timeout_s:g} s (--request-timeout)"
            )
        )
        self.oversized_heads = RateLimitedWarning(
            lambda count: (
                f"refused {count:,} request(s) in the last {interval} with more than {MAX_HEADERS} header "
                f"fields or {MAX_HEADER_BYTES // 1024} KiB of them; clients were answered 431"
            )
        )


class LimitedConfig(uvicorn.Config):
    """uvicorn's Config, plus the `ConnectionLimits` our protocol enforces."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head that passed a cap."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with the limits of a `LimitedConfig` (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.config, LimitedConfig):
            raise TypeError(f"{type(self).__name__} needs a LimitedConfig (see http/server.py, uvicorn_config)")
        self.limits = self.config.limits
        self._request_deadline: float | None = None
        """When the request arriving must be whole (loop time); None between requests."""
        self._request_clock: asyncio.TimerHandle | None = None
        """Rings at the deadline, or earlier for one that has moved since: a request that ends in time
        costs no timer of its own, which matters on a busy kept-alive connection."""
        self._linger: asyncio.TimerHandle | None = None
        self.refused = False
        """A request was refused unread: what the client sends now is dropped, never parsed."""
        self._request_begun = False
        self._in_head = False
        self._header_count = 0
        self._header_bytes = 0
        self._line_bytes = 0
        """Bytes of the head's line still arriving (request line or header), at most."""
        self._too_large: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refuse_connection(transport)
            return
        super().connection_made(transport)
        self._start_request_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._request_clock, self._linger):
            if timer is not None:
                timer.cancel()
        self._request_clock = self._linger = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's `data_received`, plus the request clock, the refusal of a head that passed a cap
        # (uvicorn would answer it 400 as a malformed request), and the check of a line still arriving.
        if self.refused:
            return
        if self._request_deadline is None:
            self._start_request_clock()
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._too_large is not None:
                self._refuse_head(self._too_large)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            self._stop_request_clock()  # the connection is another protocol's now, or closes
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head:
            newline = data.rfind(b"\n")
            self._line_bytes = len(data) - newline - 1 if newline >= 0 else self._line_bytes + len(data)
            if self._header_bytes + self._line_bytes - _LINE_SYNTAX_BYTES > MAX_HEADER_BYTES:
                self._refuse_head(_HEADER_BYTES_MESSAGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._request_deadline is None:  # a pipelined request, in the same read as the end of the last one
            self._start_request_clock()
        self._request_begun = self._in_head = True
        self._header_count = self._header_bytes = self._line_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if self._header_count > MAX_HEADERS:
            self._too_large = _HEADER_COUNT_MESSAGE
        elif self._header_bytes > MAX_HEADER_BYTES:
            self._too_large = _HEADER_BYTES_MESSAGE
        else:
            super().on_header(name, value)
            return
        raise _HeadTooLarge  # httptools stops parsing, and raises from `feed_data`

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_request_clock()
        self._request_begun = False
        super().on_message_complete()

    def _start_request_clock(self) -> None:
        self._request_deadline = deadline = self.loop.time() + self.limits.request_timeout_s
        if self._request_clock is None:
            self._request_clock = self.loop.call_at(deadline, self._request_clock_rings)

    def _stop_request_clock(self) -> None:
        self._request_deadline = None  # a clock still set finds nothing to do when it rings

    def _request_clock_rings(self) -> None:
        self._request_clock = None
        deadline = self._request_deadline
        if deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < deadline - 0.001:  # a later request's (a timer may ring up to a ms early)
            self._request_clock = self.loop.call_at(deadline, self._request_clock_rings)
            return
        if self.flow.read_paused:
            # We stopped reading (the app is behind on the body, or a pipelined request waits for
            # the one before it): the client is not the one who is late.
            self._start_request_clock()
            return
        self.limits.timed_out.note()
        if self._request_begun:
            message = (
                f"The request did not arrive whole within {self.limits.request_timeout_s:g} s, the server's "
                "--request-timeout; send the head and the body without pausing."
            )
            self._refuse_request(408, "request_timeout", message)
        else:
            self.transport.close()

    def _refuse_request(
        self, status: int, error_type: str, message: str, *, linger: bool = False, held: bool = False
    ) -> None:
        """Answer the request arriving with an error, unless a response is already under way on the
        connection (then the connection just closes), and stop reading requests from it. With
        `linger`, keep reading and dropping what the client sends for a while before closing; `held`:
        its head is whole, but the app was not given it (a WebSocket handshake)."""
        self.refused = True
        self._stop_request_clock()
        cycle = self.cycle  # in the head (or held): the request before, if any; else the one arriving
        if self._in_head or held:
            answerable = (cycle is None or cycle.response_complete) and not self.pipeline
        else:
            answerable = cycle is not None and not cycle.response_started and not self.pipeline
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # as connection_lost will say: the app's sends are dropped, not written
            cycle.message_event.set()
        if not answerable:
            self.transport.close()
            return
        self.transport.write(self._error_response(status, error_type, message))
        if linger and self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then EOF
            self._linger = self.loop.call_later(REFUSAL_LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def _refuse_head(self, message: str) -> None:
        self.limits.oversized_heads.note()
        self._refuse_request(431, "headers_too_large", message, linger=True)

    def _refuse_connection(self, transport: asyncio.Transport) -> None:
        """Answer a connection past the limit with 503 and close it, before it sends anything."""
        self.transport = transport
        self.refused = True
        message = (
            f"The server is at its --max-connections limit of {self.limits.max_connections:,} open "
            "connections; retry in a moment, or close connections you do not use."
        )
        headers = [(b"retry-after", b"1")]
        transport.write(self._error_response(503, "too_many_connections", message, headers))
        transport.close()
        self.limits.refused_connections.note()

    def _error_response(
        self, status: int, error_type: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> bytes:
        from mock_server.http.errors import control_error_body  # loaded by the first refusal

        body = json.dumps(control_error_body(error_type, message)).encode()
        fields = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *(headers or ()),
        ]
        return STATUS_LINE[status] + b"".join(b"%s: %s\r\n" % field for field in fields) + b"\r\n" + body
