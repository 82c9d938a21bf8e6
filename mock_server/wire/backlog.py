"""Work that can wait lets the paced writes go first: a few pieces of it per turn of the event loop.

Streams started together end together, and each end has work left once its last bytes are out
(uvicorn's end of the response, the connection's close, the journal's record): some 100 us each.
Done in one turn for the 250 streams of a burst, it held back every chunk due meanwhile by 25 ms.
A `Backlog` lets `PER_TURN` of its waiters go on per turn of the loop, each turn after the loop's
timers have run, so the chunks due in between are written first.
"""

from __future__ import annotations

import asyncio
from collections import deque

from mock_server.wire.per_loop import one_per_loop

PER_TURN = 8
"""Waiters let go on per turn: some 1 ms of stream ends."""


class Backlog:
    """Waiters let go on `PER_TURN` at a time, one batch per turn of `loop`, in the order they came."""

    __slots__ = ("__weakref__", "_loop", "_scheduled", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._scheduled = False

    async def turn(self) -> None:
        """Return once this waiter's turn has come (a turn of the loop later at the earliest)."""
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._let_go)
        await waiter

    def _let_go(self) -> None:
        waiters = self._waiters
        for _ in range(min(PER_TURN, len(waiters))):
            waiter = waiters.popleft()
            if not waiter.done():  # a waiter cancelled meanwhile takes no place
                waiter.set_result(None)
        if waiters:
            self._loop.call_soon(self._let_go)
        else:
            self._scheduled = False


backlog_of = one_per_loop(Backlog)
"""The loop's one `Backlog`, which every stream playing on it shares."""
