"""New connections let in only while the event loop keeps time, so that the streams it plays stay on time.

A loop that is behind (its process short of CPU, or a burst of requests to read) makes every stream
it plays late. It should then stop starting new ones until it has caught up: a stream that starts
a few milliseconds later is still the stream its scenario describes; one whose every chunk is late
is not. One process does this by itself while it has a core to itself, since its loop reads new
requests only after the streams' timers; several workers sharing the cores with each other (and
with a load client) do not, and each plays everything it has accepted late.

The `AdmissionGate` stands in for the loop server's protocol factory. Every connection is accepted
as before. A heartbeat every `BEAT_S` that finds the loop on time (it and the `ON_TIME_BEATS` before
it no more than `BEHIND_S` late) lets the first `PER_BEAT` waiting connections in, or while none
wait, lets up to `STRAIGHT_IN` new ones come straight in before the next beat; a late beat lets no
one in. Any other connection waits, its reading paused, behind those that came before it; however
late the loop runs, `PER_BEAT` are let in at least every `LONGEST_WAIT_S`. The heartbeat runs only
while connections arrive or wait, and paced streams play: a server answering unpaced requests
spends nothing on it. A keep-alive connection's later requests are not held: it was let in.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from mock_server.wire.pacing import Timer, Timers

BEAT_S = 0.002
"""How often the heartbeat looks at the loop's time while connections arrive or wait."""
BEHIND_S = 0.001
"""How late a beat may run and still find the loop on time: the loop's clock counts whole
milliseconds, so a beat one tick late is on time, two are late."""
PER_BEAT = 1
"""How many waiting connections an on-time beat lets in (up to 500 a second): one, so that a
request's start (read, answered up to its first write: 0.1-0.3 ms) runs in a turn of the loop of its
own, and the chunks due meanwhile wait for one start at most, not for several."""
STRAIGHT_IN = 8
"""How many new connections may come straight in after an on-time beat, before the next, while none
wait (up to 4,000 a second): a server that keeps time is not slowed by the heartbeat's pace."""
ON_TIME_BEATS = 2
"""How many beats in a row must run on time before the next connection is let in, after one that
ran late: the loop has then kept time for some 6 ms."""
LONGEST_WAIT_S = 0.01
"""However late the loop runs, `PER_BEAT` waiting connections are let in at least this often (100 a
second), so a server on a machine that is always busy still answers everyone."""
IDLE_BEATS = 500
"""Beats with no new connection and none waiting after which the heartbeat stops (a second)."""


class AdmissionGate:
    """A protocol factory (`protocol`) whose connections read their requests only as fast as the
    loop keeps time (see the module), while `pacing()` says paced streams wait for their next chunk:
    without them the loop's lateness harms no one, and every connection comes straight in. No more
    connections wait than `room()` (how many more the server's connection limit allows): past that,
    a flood comes straight in, to be refused by that limit rather than held open."""

    def __init__(
        self,
        loop: Timers,
        protocol_factory: Callable[..., asyncio.Protocol],
        room: Callable[[], int],
        pacing: Callable[[], bool],
    ) -> None:
        self._loop = loop
        self._factory = protocol_factory
        self._pacing = pacing
        self._room = room
        self._allowance = STRAIGHT_IN
        """How many more connections may come in before the next beat without waiting."""
        self._waiting: deque[_Waiting] = deque()
        self._beat: Timer | None = None
        self._due = 0.0
        self._on_time = ON_TIME_BEATS
        """How many beats in a row have run on time."""
        self._opened_at = 0.0
        """When the last beat that let connections in ran."""
        self._quiet_beats = 0
        self._stopped = False
        self.held = 0
        """How many connections have waited to be let in, since the start."""

    @property
    def waiting(self) -> int:
        """How many connections wait to be let in."""
        return len(self._waiting)

    def protocol(self, *args: Any, **kwargs: Any) -> asyncio.Protocol:
        """The factory's protocol for a new connection, or one that holds it until it is let in."""
        made = self._factory(*args, **kwargs)
        self._quiet_beats = 0
        if self._beat is None and not self._stopped:
            if not self._pacing():
                return made  # no stream to keep on time, so no heartbeat either (none waits while it is off)
            now = self._loop.time()
            self._on_time, self._opened_at = ON_TIME_BEATS, now  # it was idle
            self._next_beat(now)
        if self._comes_straight_in():
            self._allowance -= 1
            return made
        waiting = _Waiting(made)
        self._waiting.append(waiting)
        self.held += 1
        return waiting

    def _comes_straight_in(self) -> bool:
        if self._stopped or len(self._waiting) >= self._room():
            return True
        return not self._waiting and (self._allowance > 0 or not self._pacing())

    def stop(self) -> None:
        """Let every waiting connection in and stop the heartbeat: the server is stopping."""
        self._stopped = True
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        self._let_in(len(self._waiting))

    def _on_beat(self) -> None:
        if not self._pacing():  # no stream left to keep on time: the waiting come in, the heartbeat stops
            self._let_in(len(self._waiting))
            self._stop_beating()
            return
        now = self._loop.time()
        self._on_time = self._on_time + 1 if now - self._due <= BEHIND_S else 0
        if self._on_time > ON_TIME_BEATS or now - self._opened_at >= LONGEST_WAIT_S:
            self._opened_at = now
            self._allowance = STRAIGHT_IN
            self._let_in(PER_BEAT)
        else:
            self._allowance = 0
        self._quiet_beats += 1
        if self._quiet_beats >= IDLE_BEATS and not self._waiting:
            self._stop_beating()
            return
        self._next_beat(now)

    def _stop_beating(self) -> None:
        self._beat = None
        self._allowance = STRAIGHT_IN

    def _next_beat(self, now: float) -> None:
        self._due = now + BEAT_S
        self._beat = self._loop.call_at(self._due, self._on_beat)

    def _let_in(self, count: int) -> None:
        while count > 0 and self._waiting:
            if self._waiting.popleft().let_in():
                count -= 1
                self._allowance -= 1


class _Waiting(asyncio.Protocol):
    """A connection not let in yet: what its client sends is kept, unread by `inner`, and its reading
    paused, until `let_in` hands the transport, and what came, to `inner`. A client that leaves
    meanwhile is passed over: `inner` never hears of it."""

    def __init__(self, inner: asyncio.Protocol) -> None:
        self.inner = inner
        self._transport: asyncio.Transport | None = None
        self._received: list[bytes] = []
        self._eof = False
        self._let_in = False
        self._left = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's is one, but not a subclass
        if self._let_in:
            self._hand_over()

    def data_received(self, data: bytes) -> None:
        self._received.append(data)
        assert self._transport is not None
        self._transport.pause_reading()  # it reads only after `connection_made`: no sooner

    def eof_received(self) -> bool:
        self._eof = True
        return True  # the transport stays open for `inner` to answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._left = True

    def let_in(self) -> bool:
        """Hand the connection to `inner` (as soon as the loop has made it); False if its client has left."""
        if self._left or self._let_in:
            return False
        self._let_in = True
        if self._transport is not None:
            self._hand_over()
        return True

    def _hand_over(self) -> None:
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            return
        transport.set_protocol(self.inner)
        self.inner.connection_made(transport)
        for data in self._received:
            if transport.is_closing():
                return
            self.inner.data_received(data)
        self._received.clear()
        if self._eof and not transport.is_closing():
            self.inner.eof_received()
        elif not transport.is_closing():
            transport.resume_reading()
