"""Playing a rendered stream onto the connection, with exact timing and real wire faults.

Departures from sse-starlette's `EventSourceResponse`, on purpose:
- frames arrive pre-rendered as bytes; what each op means is `player.Player`'s business;
- a chunked stream is played from timer callbacks that write its chunks straight to the TCP
  transport, in uvicorn's own chunked framing: no task wakes up and no ASGI layer is crossed per
  chunk, and the streams due in the same millisecond share one loop timer (`pacing.py`). The
  status line, headers and the final chunk still go through ASGI `send` (the head held back to go
  out with the first chunk, `tcp.Connection.hold_next_write`), and uvicorn's flow control is
  honoured. A live stream (a proxied upstream's) is written the same way, each
  arrival from the callback that read it from the upstream (`arrivals.py`). Anything else (no
  connection of ours, a body with Content-Length, an injected clock) is played through ASGI `send`
  from a coroutine;
- a drop and a reset act on the TCP transport (see `tcp.py`), which ASGI alone cannot do;
- the connection tells the stream at once when the client leaves (also during a long wait or a
  stall), which cancels it, instead of sse-starlette's task group of four (under another server, one
  watcher task waits for ASGI's `http.disconnect`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import Response
from uvicorn.protocols.http.flow_control import FlowControl

from mock_server.wire import tcp
from mock_server.wire.actions import Action
from mock_server.wire.arrivals import Arrivals, LivePlay, LiveSource
from mock_server.wire.backlog import backlog_of
from mock_server.wire.outcome import Outcome, PlayResult
from mock_server.wire.pacing import Booking, Timer, Timers, wheel_of
from mock_server.wire.player import SLEEP, Player, Stop

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Clock = Callable[[], float]
SleepFn = Callable[[float], Awaitable[None]]

DROP_SETTLE_TIMEOUT_S = 5.0
UNCHUNKED_STATUSES = (204, 304)
"""Statuses uvicorn sends without a body, so without chunked framing (an upstream may answer with one)."""


class StreamResponse(Response):
    """An ASGI response that plays `actions` after sending `status` and `headers`.

    With `defer_head`, the status and headers wait for the first write, as a response that is not
    streamed arrives all at once: a drop or reset before it leaves the client with no response.
    A Starlette `Response` only so that FastAPI passes it through; it renders no body of its own.
    """

    def __init__(
        self,
        actions: tuple[Action, ...],
        *,
        status: int = 200,
        headers: list[tuple[bytes, bytes]],
        keepalive_s: float | None = None,
        on_end: Callable[[PlayResult], None] | None = None,
        clock: Clock | None = None,
        sleep: SleepFn = asyncio.sleep,
        defer_head: bool = False,
        live: LiveSource | None = None,
    ) -> None:
        self.actions = actions
        self.live = live
        """Actions that arrive while the response plays (a proxied stream), played after `actions`."""
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
        self._player: Player | None = None
        self._cut_short: Outcome | None = None
        self._client_gone = False
        self._stopping = False
        self._closing = False
        self._finished = False
        self._gone: asyncio.Event | None = None
        """Set once the connection is gone, for an end of ours that waits for it (made only then)."""
        self._left = False
        self._task: asyncio.Task[Any] | None = None
        self._connection: tcp.Connection | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") == "HEAD":  # the status and headers a GET would get, and nothing played
            await self._send_head(send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            if self.live is not None:
                self.live.close()
            if self.on_end is not None:
                self.on_end(PlayResult(Outcome.COMPLETED, 0))
            return
        self._task = task = asyncio.current_task()
        assert task is not None
        connection = self._connection = tcp.connection_of(scope)
        if connection is not None:
            connection.stream = self
        # Our server's connection tells the stream when it is gone (`client_left`); under any other, a
        # task waits for ASGI's `http.disconnect`.
        watcher = asyncio.create_task(self._watch_disconnect(receive)) if connection is None else None
        direct = self._plays_direct(scope, connection)
        try:
            if not self._defer_head:
                if direct:
                    assert connection is not None
                    connection.hold_next_write()  # the head goes out with the first chunk, when it follows at once
                await self._send_head(send)
            await self._play(direct, connection, send)
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
                    self._cut_short = Outcome.DROPPED
            elif self._outcome is not Outcome.STALLED:
                self._cut_short = Outcome.CLIENT_DISCONNECTED
        finally:
            if watcher is not None:
                watcher.cancel()
            if connection is not None:
                connection.stream = self._connection = None
            if self.live is not None:
                self.live.close()
            if self.on_end is not None:
                player = self._player
                events, last_id = (player.events_sent, player.last_id) if player is not None else (0, None)
                timing = player.timing() if player is not None else None
                self.on_end(PlayResult(self._cut_short or self._outcome, events, last_id, self._head_sent, timing))

    @property
    def _body_over(self) -> bool:
        """Whether the body has ended: its end sent, or written with its last chunk (`tcp.Connection.end_body`)."""
        return self._finished or (self._connection is not None and self._connection.body_ended)

    @property
    def _outcome(self) -> Outcome:
        return self._player.outcome if self._player is not None else Outcome.COMPLETED

    def stop(self) -> None:
        """End the stream now (server shutdown): what was sent stays, the body ends cleanly."""
        if self._task is not None and not self._body_over and not self._stopping:
            self._stopping = True
            self._task.cancel()

    async def _send_head(self, send: Send) -> None:
        self._head_sent = True
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

    def client_left(self) -> None:
        """The connection is gone: unless this end closed it or the body had ended, the client left, and
        the stream is cancelled."""
        self._left = True
        if self._gone is not None:
            self._gone.set()
        if not self._closing and not self._body_over and self._task is not None:
            self._client_gone = True
            self._task.cancel()

    async def _watch_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.client_left()

    def _plays_direct(self, scope: Scope, connection: tcp.Connection | None) -> bool:
        """Whether the chunks are written straight to the connection (`_play_direct`)."""
        return (
            connection is not None
            and self._clock is None
            and not self._defer_head
            and scope.get("http_version") == "1.1"
            and self.status_code not in UNCHUNKED_STATUSES
        )

    async def _play(self, direct: bool, connection: tcp.Connection | None, send: Send) -> None:
        if direct:
            assert connection is not None
            pause = await self._play_direct(connection, send)
        else:
            pause = await self._play_through_asgi(connection, send)
        if pause is Stop.HANG:
            await asyncio.get_running_loop().create_future()  # until the client leaves or the server stops
        elif pause is Stop.DROP or pause is Stop.RESET:
            await self._end_connection(connection, reset=pause is Stop.RESET)
        else:
            if connection is not None and connection.body_ended:
                # Its client has it all: what is left (uvicorn's end, the record) waits its turn.
                await backlog_of(asyncio.get_running_loop()).turn()
            if not self._head_sent:
                await self._send_head(send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self._finished = True

    async def _play_direct(self, connection: tcp.Connection, send: Send) -> Stop:
        """Timer callbacks write each chunk straight to the transport (`tcp.Connection.write_chunk`), the
        first one after the head held back (`hold_next_write`), the last one with the body's end
        (`end_chunks`; a live stream's when its source says it is the last)."""
        loop = asyncio.get_running_loop()
        flow, wheel = connection.flow, wheel_of(loop)
        player = self._player = Player(
            self.actions,
            write=connection.write_chunk,
            # A live stream's last write is not known as such.
            write_last=connection.end_chunks if self.live is None else None,
            clock=wheel.time,  # the loop's clock, one object for every stream
            keepalive_s=self.keepalive_s,
        )
        # A live stream with nothing to play before its arrivals (no head wait) goes to them at once.
        pause = await play_on_timers(player, flow, wheel) if self.actions or self.live is None else Stop.END
        if self.live is None or pause is not Stop.END:
            return pause
        return await LivePlay(player, flow, loop, connection.end_chunks).play(self.live)

    async def _play_through_asgi(self, connection: tcp.Connection | None, send: Send) -> Stop:
        """The same play through ASGI `send`, from this coroutine."""
        clock = self._clock or asyncio.get_running_loop().time
        # uvicorn silently discards what is sent after the client has gone; such events do not count.
        transport = connection.transport if connection is not None else None
        pending: list[bytes] = []

        def write(data: bytes) -> bool:
            pending.append(data)
            return transport is None or not transport.is_closing()

        player = self._player = Player(self.actions, write=write, clock=clock, keepalive_s=self.keepalive_s)

        async def play() -> Stop:
            while True:
                pause = player.resume()
                for data in pending:
                    if not self._head_sent:
                        await self._send_head(send)
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                pending.clear()
                if pause is not Stop.SLEEP:
                    return pause
                await self._sleep(max(0.0, player.wake_at - clock()))

        pause = await play()
        if self.live is None or pause is not Stop.END:
            return pause
        async for actions, arrived_at in Arrivals(self.live):
            player.extend(actions, arrived_at)
            pause = await play()
            if pause is not Stop.END:
                return pause
        return Stop.END

    async def _end_connection(self, connection: tcp.Connection | None, *, reset: bool) -> None:
        if connection is None:
            return  # not our server: returning without the final chunk makes it close the connection
        self._closing = True
        if reset:
            await connection.reset()
        else:
            connection.close()
        # Wait for the server to see the connection gone, so it does not report an unfinished response.
        if self._left:
            return
        gone = self._gone = asyncio.Event()
        try:
            await asyncio.wait_for(gone.wait(), DROP_SETTLE_TIMEOUT_S)
        except TimeoutError:
            connection.transport.abort()


async def play_on_timers(player: Player, flow: FlowControl | None, timers: Timers) -> Stop:
    """Play `player` from `timers`' callbacks (its clock must be `timers.time`) until it stops for
    anything but a sleep, and say why; while the client reads slower than we write (`write_paused`),
    wait for it, as uvicorn's `send` would. What is due at once (a stream's first writes, an unpaced
    stream whole) is played here, before any timer is set: the first event waits for nothing else."""
    pause = player.resume()
    while pause is SLEEP:
        if flow is not None and flow.write_paused:
            await flow.drain()
            pause = player.resume()
        else:
            pause = await _run_on_timers(player, flow, timers)
    return pause


async def _run_on_timers(player: Player, flow: FlowControl | None, timers: Timers) -> Stop:
    """Resume `player` from timer callbacks, the first at its `wake_at`, until it stops for anything
    but a sleep (or sleeps while the client lags behind: `write_paused`), and say why."""
    stepper = _Stepper(player, flow, timers, asyncio.get_running_loop().create_future())
    stepper.timer = timers.call_at(player.wake_at, stepper)
    try:
        return await stepper.stopped
    finally:
        if stepper.timer is not None:
            stepper.timer.cancel()
        # The last handle holds the stepper, which holds the handle: let go of it here, so that the
        # stream's objects are freed as it ends instead of waiting, in a cycle, for a full collection,
        # which pauses every stream (measured: 66-235 ms, with ~100,000 such objects).
        stepper.timer = None


class _Stepper(Booking):
    """One timer callback of `_run_on_timers`: resume the player, then set the next timer or say why it
    stopped. On a `PacingWheel` it is its own timer, booked again at every wake-up."""

    __slots__ = ("flow", "player", "stopped", "timer", "timers")

    def __init__(self, player: Player, flow: FlowControl | None, timers: Timers, stopped: asyncio.Future[Stop]) -> None:
        super().__init__()
        self.player = player
        self.flow = flow
        self.timers = timers
        self.stopped = stopped
        self.timer: Timer | None = None

    def __call__(self) -> None:
        pause = self.player.resume()
        if pause is SLEEP and not (self.flow is not None and self.flow.write_paused):
            self.timer = self.timers.call_at(self.player.wake_at, self)
        elif not self.stopped.done():
            self.stopped.set_result(pause)
