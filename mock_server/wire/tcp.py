"""The TCP connection under an ASGI request, for what HTTP alone cannot express.

ASGI hides the socket, yet a truncated chunked body and a TCP reset both need it, and a graceful
shutdown needs to reach the stream playing on each connection. uvicorn accepts a custom protocol
class, so ours (`http/protocol.py`) hands every request a `Connection` through `scope["state"]`.
Under any other server `connection_of` returns None and the faults degrade: a drop and a reset both
end the response without its terminating chunk.
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


def connection_of(scope: MutableMapping[str, Any]) -> Connection | None:
    """The request's connection when the server runs our protocol, else None."""
    connection = scope.get("state", {}).get(CONNECTION_KEY)
    return connection if isinstance(connection, Connection) else None
