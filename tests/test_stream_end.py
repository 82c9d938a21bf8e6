"""A stream's end goes out on time: with its last chunk, from the timer callback that writes it, before
the end's bookkeeping (the journal's record) of any stream ending in the same tick. A stream that
ends early because its client left is told so by its connection, without a task of its own waiting.

Streams started together end together; each end's bookkeeping takes the loop for a while, so an end
written after it reached its client late by the bookkeeping of every stream ahead of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

from mock_server.http.server import MockServer
from mock_server.http.state import MockState
from mock_server.wire.actions import Action, Wait, Write
from mock_server.wire.backlog import PER_TURN
from mock_server.wire.outcome import Outcome, PlayResult
from mock_server.wire.tcp import BODY_END, CONNECTION_KEY, Connection
from mock_server.wire.transport import StreamResponse
from tests.wire import connect, request_head

STREAMS = 3
ACTIONS: tuple[Action, ...] = (Write(b"data: a\n\n", 1), Wait(0.020), Write(b"data: b\n\n", 1))
HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


class RecordingTransport:
    """What a connection's transport was asked to write, into a log shared by every stream."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log, self.data = name, log, b""

    def write(self, data: bytes) -> None:
        self.data += data
        if data.endswith(BODY_END):
            self.log.append(f"{self.name} end")
        elif b"data: c" in data:
            self.log.append(f"{self.name} c")

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def play_together(
    log: list[str], clock: list[float], streams: dict[str, tuple[Action, ...]]
) -> list[RecordingTransport]:
    """Play `streams` (name: actions), started in the same turn of the loop, writing as uvicorn writes
    through a `Connection`, each noting its end's bookkeeping (`on_end`) in `log`; the loop's clock is
    `clock`, moved on 1 ms a turn, so that writes due at the same moment fall in the same tick."""
    transports: list[RecordingTransport] = []

    async def one(name: str, actions: tuple[Action, ...]) -> None:
        transport = RecordingTransport(name, log)
        transports.append(transport)
        connection = Connection(transport)  # type: ignore[arg-type]
        scope = {"type": "http", "http_version": "1.1", "method": "GET", "state": {CONNECTION_KEY: connection}}

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: MutableMapping[str, Any]) -> None:  # as uvicorn frames a response
            if message["type"] == "http.response.start":
                connection.write(HEAD)
            else:
                body = message.get("body", b"")
                chunk = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
                connection.write(chunk + (b"" if message.get("more_body") else BODY_END))

        def on_end(result: PlayResult) -> None:
            assert result.outcome is Outcome.COMPLETED
            log.append(f"{name} bookkeeping")

        response = StreamResponse(actions, headers=[], on_end=on_end)
        await response(scope, receive, send)

    async def move_the_clock() -> None:
        while True:
            clock[0] += 0.001
            await asyncio.sleep(0)

    mover = asyncio.create_task(move_the_clock())
    try:
        await asyncio.wait_for(asyncio.gather(*(one(name, actions) for name, actions in streams.items())), 5)
    finally:
        mover.cancel()
    return transports


def play_in_fake_time(streams: dict[str, tuple[Action, ...]]) -> tuple[list[str], list[RecordingTransport]]:
    log: list[str] = []
    clock = [1000.0]
    loop = asyncio.new_event_loop()
    loop.time = lambda: clock[0]  # type: ignore[method-assign]
    try:
        return log, loop.run_until_complete(play_together(log, clock, streams))
    finally:
        loop.close()


def test_streams_ending_in_the_same_tick_are_all_ended_before_any_end_is_booked() -> None:
    log, transports = play_in_fake_time({f"stream {i}": ACTIONS for i in range(STREAMS)})
    assert log == [f"stream {i} end" for i in range(STREAMS)] + [f"stream {i} bookkeeping" for i in range(STREAMS)]
    for transport in transports:  # each body whole, its end written once
        assert transport.data == HEAD + b"9\r\ndata: a\n\n\r\n" + b"9\r\ndata: b\n\n\r\n" + BODY_END


def test_the_ends_of_many_streams_wait_for_a_chunk_due_meanwhile() -> None:
    ending = {f"stream {i}": ACTIONS for i in range(3 * PER_TURN)}
    longer = (Write(b"data: a\n\n", 1), Wait(0.021), Write(b"data: c\n\n", 1), Wait(0.010), Write(b"data: d\n\n", 1))
    log, _ = play_in_fake_time({**ending, "longer": longer})
    assert log.index("longer c") < log.index(f"stream {3 * PER_TURN - 1} bookkeeping"), (
        "the chunk due 1 ms after they ended came after all their bookkeeping"
    )
    assert log.index("longer c") > log.index(f"stream {3 * PER_TURN - 1} end"), "every end went out first"


def test_an_open_stream_holds_one_task_and_ends_at_once_when_its_client_leaves(server: MockServer) -> None:
    def tasks() -> list[str]:
        async def names(state: MockState) -> list[str]:
            return [task.get_coro().__qualname__ for task in asyncio.all_tasks()]  # type: ignore[union-attr]

        return server._on_loop(names)

    sockets = [connect(server.url) for _ in range(STREAMS)]
    try:
        for sock in sockets:
            sock.sendall(request_head("/completions?messages=x&scenario=long-reply&chunk_ms=200"))
        for sock in sockets:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        running = tasks()
        assert running.count("RequestResponseCycle.run_asgi") >= STREAMS
        assert not [name for name in running if "watch" in name], "a task a request (uvicorn's), none for the stream"
    finally:
        left = time.monotonic()
        for sock in sockets:
            sock.close()
    records = server.records(settle_s=5)[-STREAMS:]
    assert [r.outcome for r in records] == [Outcome.CLIENT_DISCONNECTED] * STREAMS
    assert time.monotonic() - left < 2, "ended when the client left, not when the stream would have"
