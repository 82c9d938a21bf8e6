"""Playing actions as they arrive (a proxied upstream's stream): each arrival is played from the
callback that hands it over, so an event with no fault before it reaches the client's socket in the
call that read it from the upstream's; a wait (a fault's, or pacing) goes on the event loop's timers.

What arrives while the stream waits is queued, and plays after what came before it, at the moment it
arrived pushed back by every wait before it (`Player.extend`). The source is asked to pause while
the client reads slower than the upstream writes, or when the queue grows too long.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol

from uvicorn.protocols.http.flow_control import FlowControl

from mock_server.wire.actions import Action, Write
from mock_server.wire.player import Player, Stop

MAX_QUEUED_BYTES = 256 * 1024
"""What waits to be played before the source is paused."""
MAX_QUEUED_ARRIVALS = 64
"""The same for a stream played from a coroutine (`Arrivals`), counted in arrivals."""


class LiveSink(Protocol):
    """Where a live source hands its actions."""

    def arrived(self, actions: list[Action], at: float) -> None:
        """The actions of what arrived at `at` (the event loop's clock)."""

    def passed(self, data: bytes, events: int, at: float, last: bool) -> None:
        """Bytes to write as they came (`events` events of them), which arrived at `at`: `arrived` with
        one `Write`, for a stream with nothing left to place between its events; `last` when nothing
        follows them."""

    def ended(self) -> None:
        """Nothing more arrives."""


class LiveSource(Protocol):
    """Actions that arrive while a response plays, a list at a time, with the moment what they render
    arrived."""

    def start(self, sink: LiveSink) -> None:
        """Hand `sink` each arrival's actions from now on (those that came already at once), then `ended()`."""

    def pause(self) -> None:
        """Hand over no more until `resume()`."""

    def resume(self) -> None: ...

    def close(self) -> None:
        """Let go of the source: nothing more is handed over."""


class _Played:
    """Why the play stopped, or that it waits for the client to read."""


DRAIN = _Played()


class LivePlay:
    """Plays a live source on `player` from the source's callbacks and the loop's timers (the
    player's clock must be the loop's); `play` returns why it stopped."""

    def __init__(
        self,
        player: Player,
        flow: FlowControl | None,
        loop: asyncio.AbstractEventLoop,
        write_last: Callable[[bytes], bool] | None = None,
    ) -> None:
        self._player = player
        self._flow = flow
        self._loop = loop
        self._write_last = write_last
        """How the stream's last bytes are written, when they are known as such (`passed`)."""
        self._queue: deque[tuple[list[Action], float]] = deque()
        self._queued = 0
        self._waiting = False
        """The player waits: for a timer, or for the client to read."""
        self._ended = False
        self._finished = False
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._stopped: asyncio.Future[Stop | _Played] = loop.create_future()
        self._source: LiveSource | None = None

    async def play(self, source: LiveSource) -> Stop:
        """Play what `source` hands over until a stop that is not a wait (the end, a drop, ...)."""
        self._source = source
        try:
            source.start(self)
            while True:
                stopped = await self._stopped
                if isinstance(stopped, Stop):
                    return stopped
                self._stopped = self._loop.create_future()
                assert self._flow is not None
                await self._flow.drain()  # the client reads slower than the upstream writes
                self._run()
        finally:
            self._source = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def arrived(self, actions: list[Action], at: float) -> None:
        if self._source is None or self._finished:
            return
        if self._waiting or self._queue:
            self._queue.append((actions, at))
            self._queued += sum(len(a.data) for a in actions if isinstance(a, Write))
            if self._queued >= MAX_QUEUED_BYTES and not self._paused:
                self._paused = True
                self._source.pause()
            return
        self._player.extend(actions, at)
        self._run()

    def passed(self, data: bytes, events: int, at: float, last: bool) -> None:
        # Nearly every arrival of a stream passed on: written in this call, with no action built.
        if self._source is None or self._finished:
            return
        flow = self._flow
        if (
            self._waiting
            or self._queue
            or not self._player.play_now(data, events, at, self._write_last if last else None)
        ):
            self.arrived([Write(data, events)], at)
        elif flow is not None and flow.write_paused:
            self._waiting = True
            self._stop(DRAIN)

    def ended(self) -> None:
        self._ended = True
        if not self._waiting and not self._queue:
            self._stop(Stop.END)

    def _wake(self) -> None:
        self._timer = None
        self._run()

    def _run(self) -> None:
        """Play until the player must wait or has played all it has."""
        player, flow = self._player, self._flow
        while True:
            pause = player.resume()
            lagging = flow is not None and flow.write_paused
            if pause is Stop.SLEEP:
                self._waiting = True
                if lagging:
                    self._stop(DRAIN)
                else:
                    self._timer = self._loop.call_at(player.wake_at, self._wake)
                return
            if pause is not Stop.END:
                self._stop(pause)
                return
            if lagging:
                self._waiting = True
                self._stop(DRAIN)
                return
            if not self._queue:
                self._waiting = False
                if self._paused and self._source is not None:
                    self._paused = False
                    self._source.resume()
                if self._ended:
                    self._stop(Stop.END)
                return
            actions, at = self._queue.popleft()
            if self._queue:
                self._queued -= sum(len(a.data) for a in actions if isinstance(a, Write))
            else:
                self._queued = 0
            player.extend(actions, at)

    def _stop(self, why: Stop | _Played) -> None:
        if isinstance(why, Stop):
            self._finished = True
        elif self._source is not None and not self._paused:
            self._paused = True
            self._source.pause()
        if not self._stopped.done():
            self._stopped.set_result(why)


class Arrivals:
    """A live source's arrivals as an asynchronous iterator, for a stream played from a coroutine."""

    def __init__(self, source: LiveSource) -> None:
        self._source = source
        self._queue: deque[tuple[list[Action], float]] = deque()
        self._ended = False
        self._paused = False
        self._ready: asyncio.Future[None] | None = None
        source.start(self)

    def arrived(self, actions: list[Action], at: float) -> None:
        self._queue.append((actions, at))
        if len(self._queue) >= MAX_QUEUED_ARRIVALS and not self._paused:
            self._paused = True
            self._source.pause()
        self._wake()

    def passed(self, data: bytes, events: int, at: float, last: bool) -> None:
        self.arrived([Write(data, events)], at)

    def ended(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def __aiter__(self) -> Arrivals:
        return self

    async def __anext__(self) -> tuple[list[Action], float]:
        while not self._queue:
            if self._ended:
                raise StopAsyncIteration
            if self._paused:
                self._paused = False
                self._source.resume()
            self._ready = asyncio.get_running_loop().create_future()
            try:
                await self._ready
            finally:
                self._ready = None
        return self._queue.popleft()
