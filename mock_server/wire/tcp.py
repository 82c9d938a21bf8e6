"""The TCP connection under an ASGI request, for what HTTP alone cannot express.

ASGI hides the socket, yet a truncated chunked body and a TCP reset both need it, and a graceful
shutdown needs to reach the stream playing on each connection. uvicorn accepts a custom protocol
class, so ours (`http/protocol.py`) hands every request a `Connection` through `scope["state"]`,
and makes uvicorn write through it: a response head is held back for the stream's first bytes, and
a stream's last chunk goes out with the body's end, so that each pair goes out in one write (one
syscall, one packet) instead of two.
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
BODY_END = b"0\r\n\r\n"
"""The last chunk of a chunked body, as uvicorn writes it."""
CHUNK = b"%x\r\n%b\r\n"
"""One chunk of a chunked body, as uvicorn frames it: `CHUNK % (len(data), data)`."""
FRAMED_APART_BYTES = 32 * 1024
"""From this size a chunk's bytes are written beside their framing (`writelines`), not copied into one
bytes object with it: what a proxied upstream sends at full speed arrives a read (up to 256 KiB) at a time."""


class Stoppable(Protocol):
    def stop(self) -> None:
        """End the stream now, because the server is shutting down."""

    def client_left(self) -> None:
        """The connection is gone: the client left, or it was closed or reset here."""


@dataclass(slots=True)
class Connection:
    """One TCP connection: its transport, and the stream playing on it, if any. uvicorn's writes for
    a request (its response's head, its body's end) go through `write`."""

    transport: asyncio.Transport
    flow: FlowControl | None = None
    """uvicorn's write flow control for this connection: `write_paused` while the client lags."""
    stream: Stoppable | None = None
    held: bytes | None = None
    """What was written but not sent yet: a response's head (`hold_next_write`). It goes out with the
    next write, or alone on the loop's next turn."""
    body_ended: bool = False
    """The response's body has ended (`end_body`), and uvicorn has not written its end yet."""
    _holding: bool = False

    def hold_next_write(self) -> None:
        """Keep the next write (a response head) back for the one after (the body's first bytes), so
        that both go out together; it goes alone when nothing follows before the loop's next turn."""
        self._holding = True

    def end_body(self, data: bytes) -> None:
        """Write `data` (a chunked body's last chunk) and the body's end at once, after what is held
        back. uvicorn's own write of the end, which follows from the response's task when it next
        runs, is left out (`write`): a stream's end reaches its client on time, not after the work of
        the other streams that end in the same turn of the loop."""
        held = self.held
        if held is not None:
            self.held = None
            data = held + data
        self.body_ended = True
        self.transport.write(data + BODY_END)

    def write_chunk(self, data: bytes) -> bool:
        """Write `data` as one chunk of the response's chunked body, after what is held back; False, with
        nothing written, once the connection is closing (the client has gone: uvicorn would drop it too).
        Every paced chunk comes here: a method, not a closure of each stream's, so that a chunk reaches
        one object besides the transport (each is one more the CPU's cache may have lost since the last)."""
        transport = self.transport
        if transport.is_closing():
            return False
        if len(data) >= FRAMED_APART_BYTES and self.held is None:
            transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
            return True
        chunk = CHUNK % (len(data), data)
        if self.held is not None:
            self.write(chunk)
        else:
            transport.write(chunk)
        return True

    def end_chunks(self, data: bytes) -> bool:
        """`write_chunk`, and the body's end with it (`end_body`)."""
        if self.transport.is_closing():
            return False
        self.end_body(CHUNK % (len(data), data))
        return True

    def write(self, data: bytes) -> None:
        """Write `data`, after what is held back."""
        if self.body_ended:
            self.body_ended = False
            if data == BODY_END:
                return
        if self._holding:
            self._holding = False
            self.held = data
            asyncio.get_running_loop().call_soon(self.flush)
            return
        held = self.held
        if held is not None:
            self.held = None
            data = held + data
        self.transport.write(data)

    def flush(self) -> None:
        """Send what is held back, if anything."""
        held = self.held
        if held is not None:
            self.held = None
            if not self.transport.is_closing():
                self.transport.write(held)

    def lost(self) -> None:
        """The connection is gone (the server's protocol saw it close): its stream, if any, is told."""
        if self.stream is not None:
            self.stream.client_left()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        """Send what was written, then FIN: the peer sees the body end without its last chunk."""
        self.flush()
        self.transport.close()

    async def reset(self) -> None:
        """Abort with RST once what was written has left, so the peer reads it before ECONNRESET."""
        self.flush()
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
