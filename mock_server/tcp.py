"""The TCP connection under an ASGI request, for what HTTP alone cannot express.

ASGI hides the socket, yet a truncated chunked body and a TCP reset both need it, and a graceful
shutdown needs to reach the stream playing on each connection. uvicorn accepts a custom protocol
class, so ours hands every request a `Connection` through `scope["state"]`. Under any other server
`connection_of` returns None and the faults degrade: a drop and a reset both end the response
without its terminating chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol

from mock_server.redaction import RedactingAccessLogger

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _FastProtocol
except ImportError:  # httptools is optional in uvicorn; h11 always works
    _FastProtocol = H11Protocol  # type: ignore[assignment,misc]

CONNECTION_KEY = "mock_llm_sse.connection"
FLUSH_TIMEOUT_S = 2.0


class Stoppable(Protocol):
    def stop(self) -> None:
        """End the stream now, because the server is shutting down."""


@dataclass(slots=True)
class Connection:
    """One TCP connection: its transport, and the stream playing on it, if any."""

    transport: asyncio.Transport
    flow: FlowControl | None = None
    """uvicorn's write flow control for this connection: `write_paused` while the client lags."""
    stream: Stoppable | None = None

    def close(self) -> None:
        """Send what was written, then FIN: the peer sees the body end without its last chunk."""
        self.transport.close()

    async def reset(self) -> None:
        """Abort with RST once what was written has left, so the peer reads it before ECONNRESET."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_TIMEOUT_S
        while self.transport.get_write_buffer_size() and loop.time() < deadline:
            await asyncio.sleep(0.001)
        if self.transport.is_closing():
            return  # the peer has gone already: there is nobody left to reset
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):  # closed under us: aborting is all that is left
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class ConnectionExposingProtocol(_FastProtocol):
    """uvicorn's HTTP protocol, plus a `Connection` in every request's `scope["state"]`, a shutdown
    that ends the connection's stream (or its half-sent request) instead of waiting for it, and access
    log lines without secret query values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's protocol logs access whenever the logger has a handler anywhere up the tree
        # (under pytest, always); the server's own `access_log` setting decides instead.
        self.access_log = self.access_log and self.config.access_log
        self.access_logger = RedactingAccessLogger(self.access_logger, None)  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._mock_connection = Connection(transport, getattr(self, "flow", None))
        self.app_state = {**self.app_state, CONNECTION_KEY: self._mock_connection}

    def shutdown(self) -> None:
        stream = self._mock_connection.stream
        if stream is not None:
            stream.stop()
        elif self.cycle is not None and self.cycle.more_body and not self.cycle.response_complete:
            # A request whose body is still arriving cannot be answered in time; ending its connection
            # ends it at once (as a client leaving mid-body) instead of after the whole grace time.
            self.transport.close()
            return
        super().shutdown()


def connection_of(scope: MutableMapping[str, Any]) -> Connection | None:
    """The request's connection when the server runs our protocol, else None."""
    connection = scope.get("state", {}).get(CONNECTION_KEY)
    return connection if isinstance(connection, Connection) else None
