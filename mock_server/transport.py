"""Playing a rendered stream onto an ASGI connection with exact timing and real wire faults.

Departures from sse-starlette's `EventSourceResponse`, on purpose:
- frames arrive pre-rendered as bytes, so the per-chunk path is one wait and one `send`;
- every wait is measured against one monotonic deadline per stream, so error never accumulates;
- a drop and a reset act on the TCP transport (see `tcp.py`), which ASGI alone cannot do;
- one watcher task notices the client leaving at once (also during a long wait or a stall) and
  cancels the stream, instead of sse-starlette's task group of four.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.responses import Response

from mock_server import frames, tcp
from mock_server.pacing import Clock, Pacer
from mock_server.pacing import Sleep as SleepFn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KEEPALIVE = frames.encode_comment("ping")
DROP_SETTLE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Write:
    """Bytes for one `send`; `events` SSE events end in them, the last with id `last_id`; `closes`
    when one of them is an event named `close`."""

    data: bytes
    events: int = 0
    last_id: int | None = None
    closes: bool = False


@dataclass(frozen=True, slots=True)
class Wait:
    """Move the stream's deadline on by `seconds` and wait for it; keep-alives may fill the time.
    A `stall` wait is the server going silent on purpose: a client leaving during it gave up on a stall."""

    seconds: float
    keepalive: bool = True
    stall: bool = False


@dataclass(frozen=True, slots=True)
class Hang:
    """Send nothing more and keep the connection open until the client leaves."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection without the chunked body's terminating chunk."""


@dataclass(frozen=True, slots=True)
class Reset:
    """Abort the connection with a TCP reset."""


Op = Write | Wait | Hang | Drop | Reset


class Outcome(StrEnum):
    """How a response ended.

    `stalled`: the client left (or the server stopped) while the stream was stalling on purpose;
    `client_disconnected`: the client left at any other moment, e.g. between paced chunks.
    """

    COMPLETED = "completed"
    DROPPED = "dropped"
    RESET = "reset"
    STALLED = "stalled"
    ERROR_STATUS = "error_status"
    CLIENT_DISCONNECTED = "client_disconnected"

    def __repr__(self) -> str:  # short enough for pytest's one-line assertion message
        return f"Outcome.{self.name}"


@dataclass(frozen=True, slots=True)
class PlayResult:
    outcome: Outcome
    events_sent: int


class StreamResponse(Response):
    """An ASGI response that plays `ops` after sending `status` and `headers`.

    With `defer_head`, the status and headers wait for the first write, as a response that is not
    streamed arrives all at once: a drop or reset before it leaves the client with no response.
    A Starlette `Response` only so that FastAPI passes it through; it renders no body of its own.
    """

    def __init__(
        self,
        ops: tuple[Op, ...],
        *,
        status: int = 200,
        headers: list[tuple[bytes, bytes]],
        keepalive_s: float | None = None,
        on_end: Callable[[PlayResult], None] | None = None,
        clock: Clock | None = None,
        sleep: SleepFn = asyncio.sleep,
        defer_head: bool = False,
    ) -> None:
        self.ops = ops
        self.status_code = status
        self.raw_headers = headers
        self.background = None
        self.body = b""
        self.keepalive_s = keepalive_s
        self.on_end = on_end
        self._clock = clock
        self._sleep = sleep
        self._head_sent = False
        self._defer_head = defer_head
        self._events_sent = 0
        self._outcome = Outcome.COMPLETED
        self._client_gone = False
        self._stopping = False
        self._closing = False
        self._finished = False
        self._gone = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._task = task = asyncio.current_task()
        assert task is not None
        connection = tcp.connection_of(scope)
        if connection is not None:
            connection.stream = self
        watcher = asyncio.create_task(self._watch_disconnect(receive, task))
        try:
            if not self._defer_head:
                await self._send_head(send)
            await self._play(connection, send)
        except asyncio.CancelledError:
            if not (self._client_gone or self._stopping):
                raise
            task.uncancel()
            if self._stopping and not self._client_gone:
                if self._head_sent:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                else:
                    await self._end_connection(connection, reset=False)
                if self._outcome is Outcome.COMPLETED:
                    self._outcome = Outcome.DROPPED
            elif self._outcome is not Outcome.STALLED:
                self._outcome = Outcome.CLIENT_DISCONNECTED
        finally:
            watcher.cancel()
            if connection is not None:
                connection.stream = None
            if self.on_end is not None:
                self.on_end(PlayResult(self._outcome, self._events_sent))

    def stop(self) -> None:
        """End the stream now (server shutdown): what was sent stays, the body ends cleanly."""
        if self._task is not None and not self._finished and not self._stopping:
            self._stopping = True
            self._task.cancel()

    async def _send_head(self, send: Send) -> None:
        self._head_sent = True
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

    async def _watch_disconnect(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._gone.set()
        if not self._closing and not self._finished:
            self._client_gone = True
            task.cancel()

    async def _play(self, connection: tcp.Connection | None, send: Send) -> None:
        pacer = Pacer(self._clock, self._sleep)
        last_write = pacer.deadline
        keepalive = self.keepalive_s
        # uvicorn silently discards what is sent after the client has gone; such events do not count.
        transport = connection.transport if connection is not None else None
        for op in self.ops:
            if type(op) is Write:
                if not self._head_sent:
                    await self._send_head(send)
                await send({"type": "http.response.body", "body": op.data, "more_body": True})
                if transport is None or not transport.is_closing():
                    self._events_sent += op.events
                last_write = pacer.clock()
            elif type(op) is Wait:
                deadline = pacer.advance(op.seconds)
                if keepalive is not None and op.keepalive:
                    # Ping whenever the line has been quiet for `keepalive` seconds before the deadline.
                    while last_write + keepalive < deadline:
                        await pacer.sleep_until(last_write + keepalive)
                        await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                        last_write = pacer.clock()
                if op.stall:
                    self._outcome = Outcome.STALLED  # what a client that leaves during the stall sees
                    await pacer.sleep_until(deadline)
                    self._outcome = Outcome.COMPLETED
                else:
                    await pacer.sleep_until(deadline)
            elif type(op) is Hang:
                self._outcome = Outcome.STALLED
                await asyncio.Event().wait()
            elif type(op) is Drop:
                self._outcome = Outcome.DROPPED
                await self._end_connection(connection, reset=False)
                return
            elif type(op) is Reset:
                self._outcome = Outcome.RESET
                await self._end_connection(connection, reset=True)
                return
        if not self._head_sent:
            await self._send_head(send)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._finished = True

    async def _end_connection(self, connection: tcp.Connection | None, *, reset: bool) -> None:
        if connection is None:
            return  # not our server: returning without the final chunk makes it close the connection
        self._closing = True
        if reset:
            await connection.reset()
        else:
            connection.close()
        # Wait for the server to see the connection gone, so it does not report an unfinished response.
        try:
            await asyncio.wait_for(self._gone.wait(), DROP_SETTLE_TIMEOUT_S)
        except TimeoutError:
            connection.transport.abort()
