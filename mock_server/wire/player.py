"""What each action means for time, events and outcome: the one implementation, whoever drives it.

Every wait is measured against one monotonic deadline per stream: a wait moves the deadline on by
its duration and the stream sleeps until the deadline, not for the duration, so a late wake-up
makes the next sleep shorter and error never accumulates over a long stream. While waiting, a
keep-alive comment goes out whenever the line has been quiet for the keep-alive interval.

A `Player` knows nothing of sockets or of the event loop. It writes through `write(data)` (which
returns False when the connection is already gone, so those events do not count) and, each time
it stops, says why: sleep until `wake_at`, hang, drop, reset, or the end. The transport drives it
from timer callbacks or from a coroutine; `clock` is the seam through which time passes.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from enum import Enum

from mock_server.wire import frames
from mock_server.wire.actions import Action, Drop, Hang, Reset, Wait, Write
from mock_server.wire.outcome import TIMED_WRITES, EventTiming, Outcome

KEEPALIVE = frames.encode_comment("ping")
TIMER_SLACK_S = 0.001
"""A wake-up this much before the deadline counts as on time: the event loop's timers are
millisecond-grained (uvloop fires up to 0.5 ms early), and sleeping again for the rest would spin."""


class Stop(Enum):
    """Why `Player.resume` stopped, and so what its driver does next."""

    SLEEP = "sleep"  # until `wake_at`, then resume()
    HANG = "hang"  # nothing more, ever: until the client leaves
    DROP = "drop"
    RESET = "reset"
    END = "end"  # every action played: end the body cleanly


SLEEP = Stop.SLEEP
"""`Stop.SLEEP` looked up once: an enum member's lookup costs some 50 ns, and a paced chunk met it twice."""


class Player:
    """Plays a rendered stream's actions through `write`, keeping time against one deadline."""

    # Slots: `resume` runs once per chunk of every paced stream, and reads or sets a dozen of these.
    __slots__ = (
        "_actions",
        "_clock",
        "_events",
        "_index",
        "_keepalive_s",
        "_last_write",
        "_moments",
        "_more",
        "_more_late",
        "_pinging",
        "_pings",
        "_shifted",
        "_stalling",
        "_start",
        "_write",
        "_write_last",
        "deadline",
        "events_sent",
        "last_id",
        "outcome",
        "wake_at",
    )

    def __init__(
        self,
        actions: tuple[Action, ...],
        *,
        write: Callable[[bytes], bool],
        write_last: Callable[[bytes], bool] | None = None,
        clock: Callable[[], float],
        keepalive_s: float | None = None,
    ) -> None:
        self._actions: tuple[Action, ...] | list[Action] = actions
        self._index = 0
        self._write = write
        self._write_last = write_last if write_last is not None else write
        """How the last action's write is made (held back for the body's end, or as the others)."""
        self._clock = clock
        self._keepalive_s = keepalive_s if keepalive_s is not None else math.inf
        self._pings = self._keepalive_s < math.inf
        self.deadline = clock()
        self._start = self.deadline
        self._moments = array("d")
        """When each of the first TIMED_WRITES writes of events was due and when it was made, on `clock`,
        in turn: one array, not a tuple a write, which the end of a stream walked at some 30 us."""
        self._events: list[int] = []
        """How many events each of those writes held."""
        self._more = 0
        self._more_late = 0.0
        self.wake_at = self.deadline
        self._last_write = self.deadline
        self._pinging = False
        self._stalling = False
        self._shifted: float | None = None
        """The waits of every action given so far, once actions are added as they arrive."""
        self.events_sent = 0
        self.last_id: int | None = None
        """The id of the last event written (None before one, or without ids)."""
        self.outcome = Outcome.COMPLETED
        """`stalled` while the stream is silent on purpose, so a client leaving then is told apart."""

    def resume(self) -> Stop:
        """Play from where the last call stopped until the stream must wait, or ends."""
        if self._clock() < self.deadline - TIMER_SLACK_S:  # woken before the deadline: for a keep-alive
            if self._pinging and self._last_write + self._keepalive_s <= self._clock():
                self._send(KEEPALIVE, 0, self._write if self._index < len(self._actions) else self._write_last)
            self.wake_at = self._next_wake()
            return SLEEP
        if self._stalling:
            self._stalling = False
            self.outcome = Outcome.COMPLETED
        actions = self._actions
        count = len(actions)
        index = self._index
        while index < count:
            action = actions[index]
            index = self._index = index + 1
            if isinstance(action, Write):
                write = self._write if index < count else self._write_last
                if self._send(action.data, action.events, write) and action.last_id is not None:
                    self.last_id = action.last_id
            elif isinstance(action, Wait):
                self.deadline += action.seconds
                self._pinging = action.keepalive and self._pings
                if action.stall:
                    self._stalling = True
                    self.outcome = Outcome.STALLED
                self.wake_at = self._next_wake() if self._pinging else self.deadline
                return SLEEP
            elif isinstance(action, Hang):
                self.outcome = Outcome.STALLED
                return Stop.HANG
            elif isinstance(action, Drop):
                self.outcome = Outcome.DROPPED
                return Stop.DROP
            elif isinstance(action, Reset):
                self.outcome = Outcome.RESET
                return Stop.RESET
        return Stop.END

    def extend(self, actions: list[Action], arrived_at: float) -> None:
        """Add actions to play after the others: a live stream's next events, which arrived at
        `arrived_at` (on `clock`). They play then, later by every wait played before them (a fault's
        wait moves what follows it on, as in a scripted stream), and never before what came first."""
        shifted = self._waited()
        rest = self._actions[self._index :]  # what is played is let go: a live stream can be long
        self._actions = [*rest, *actions] if rest else actions
        self._index = 0
        self.deadline = max(self.deadline, arrived_at + shifted)
        if len(actions) != 1 or type(actions[0]) is not Write:  # one write (nearly every arrival) waits for nothing
            self._shifted = shifted + sum(a.seconds for a in actions if isinstance(a, Wait))

    def play_now(self, data: bytes, events: int, arrived_at: float, write: Callable[[bytes], bool] | None) -> bool:
        """`extend` with one write of `data` (`events` events) and `resume`, when nothing is left to play
        before it and it is due now: the write is made (with `write` when given, else as any other),
        and True returned; else False, with nothing done."""
        if self._index < len(self._actions):
            return False
        deadline = max(self.deadline, arrived_at + self._waited())
        if self._clock() < deadline - TIMER_SLACK_S:
            return False
        self.deadline = deadline
        self._send(data, events, write if write is not None else self._write_last)
        return True

    def _waited(self) -> float:
        """The waits of every action given so far (`_shifted`, counted on the first call)."""
        if self._shifted is None:
            self._shifted = sum(a.seconds for a in self._actions if isinstance(a, Wait))
        return self._shifted

    def _next_wake(self) -> float:
        if self._pinging:
            ping_at = self._last_write + self._keepalive_s
            if ping_at < self.deadline:
                return ping_at
        return self.deadline

    def _send(self, data: bytes, events: int, write: Callable[[bytes], bool]) -> bool:
        """Write `data` with `write`; its events count when the connection is still there to take them,
        and its moment is noted beside the one it was due."""
        written = write(data)
        now = self._last_write = self._clock()
        if written and events:
            self.events_sent += events
            if len(self._events) < TIMED_WRITES:
                self._moments.append(self.deadline)
                self._moments.append(now)
                self._events.append(events)
            else:
                self._more += 1
                self._more_late = max(self._more_late, now - self.deadline)
        return written

    def timing(self) -> EventTiming:
        """When the events written so far were due and written (see EventTiming)."""
        moments, start = self._moments, self._start
        # Rounded to the microsecond through an int: round(x, 3) on 100 floats cost 30 us a stream.
        offsets = [round((at - start) * 1e6) / 1000 for at in moments]
        return EventTiming(
            tuple(offsets[0::2]),
            tuple(offsets[1::2]),
            tuple(self._events),
            self._more,
            round(max(0.0, self._more_late) * 1000, 3),
        )
