"""The TCP connection under a request: a reset must be harmless once the peer has gone."""

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
