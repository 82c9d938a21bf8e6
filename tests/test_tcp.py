"""The TCP connection under a request: chunks framed as uvicorn frames them, and a reset that is harmless
once the peer has gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest
import uvloop

from mock_server.wire.tcp import Connection


async def reset_after_the_peer_left() -> None:
    accepted: list[asyncio.Transport] = []

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.append(cast(asyncio.Transport, transport))  # uvloop's is one without subclassing it

    server = await asyncio.get_running_loop().create_server(Accept, "127.0.0.1", 0)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        await until(lambda: bool(accepted))
        writer.close()  # the client leaves ...
        await writer.wait_closed()
        await until(accepted[0].is_closing)
        await asyncio.wait_for(Connection(accepted[0]).reset(), 5)  # ... just as the stream's reset comes due
    finally:
        server.close()


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout_s)


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_reset_after_the_peer_has_gone_is_no_error(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    run(reset_after_the_peer_left())


class RecordingTransport(asyncio.Transport):
    """A transport that keeps what is written, until it is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing


def test_chunks_are_framed_as_uvicorn_frames_them_the_last_with_the_body_end() -> None:
    transport = RecordingTransport()
    connection = Connection(transport)
    assert connection.write_chunk(b"data: 1\n\n")
    assert connection.end_chunks(b"data: [DONE]\n\n")
    assert transport.written == [b"9\r\ndata: 1\n\n\r\n", b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"]
    assert connection.body_ended


def test_no_chunk_is_written_once_the_connection_is_closing() -> None:
    transport = RecordingTransport()
    connection = Connection(transport)
    transport.closing = True
    assert not connection.write_chunk(b"data: 1\n\n")
    assert not connection.end_chunks(b"data: 2\n\n")
    assert transport.written == []
    assert not connection.body_ended
