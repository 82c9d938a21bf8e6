"""One loop timer per millisecond for every stream due in it, instead of one per stream per chunk.

Paced streams started together fall due together: 2,000 streams 20 ms apart are some 100 due in
each millisecond. A `PacingWheel` books each wake-up into the millisecond tick it is due in, on the
loop's own clock, and sets one loop timer per tick, which wakes the tick's streams in the order they
were booked. A wake-up is rounded to the nearest millisecond, as uvloop rounds a timer's delay (so
up to 0.5 ms early, which `player.TIMER_SLACK_S` counts as on time, or late): on uvloop only the
number of loop timers changes, not when a stream wakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from mock_server.wire.per_loop import one_per_loop


class Timer(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """An event loop's clock and timers: the running loop in production, a clock of its own in a test."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> Timer: ...


class PacingWheel:
    """`Timers` whose callbacks due in the same millisecond share one timer of the underlying `timers`."""

    __slots__ = ("__weakref__", "_ticks", "_timers")

    def __init__(self, timers: Timers) -> None:
        self._timers = timers
        self._ticks: dict[int, _Tick] = {}

    def time(self) -> float:
        return self._timers.time()

    def call_at(self, when: float, callback: Callable[[], object], /) -> Timer:
        """Call `callback` in the millisecond tick nearest `when`, after those booked in it before."""
        at = round(when * 1000)
        tick = self._ticks.get(at)
        if tick is None:
            tick = self._ticks[at] = _Tick(self, at)
            tick.handle = self._timers.call_at(at / 1000, tick)
        booking = _Booking(callback, tick)
        tick.bookings.append(booking)
        tick.live += 1
        return booking

    @property
    def booked(self) -> int:
        """How many callbacks wait for their tick (a cancelled one does not)."""
        return sum(tick.live for tick in self._ticks.values())

    @property
    def ticks(self) -> int:
        """How many ticks have a timer set."""
        return len(self._ticks)


class _Tick:
    """One millisecond's bookings and its one timer."""

    __slots__ = ("at", "bookings", "handle", "live", "wheel")

    def __init__(self, wheel: PacingWheel, at: int) -> None:
        self.wheel = wheel
        self.at = at
        self.bookings: list[_Booking] = []
        self.live = 0
        self.handle: Timer | None = None

    def __call__(self) -> None:
        """The tick's timer: every callback still booked, in the order booked. A callback that books
        again books a later tick (or a new one for this millisecond, set on the loop's next turn)."""
        del self.wheel._ticks[self.at]
        self.handle = None
        for booking in self.bookings:
            callback = booking.callback
            if callback is not None:
                booking.callback = booking.tick = None
                try:
                    callback()
                except Exception as exc:  # as the loop does with a timer of its own: reported, and the others run
                    asyncio.get_running_loop().call_exception_handler(
                        {"message": "Exception in a paced callback", "exception": exc}
                    )
        self.bookings.clear()

    def forget(self) -> None:
        """One booking fewer; with none left, the tick and its timer go."""
        self.live -= 1
        if not self.live and self.handle is not None:
            self.handle.cancel()
            self.handle = None
            del self.wheel._ticks[self.at]
            self.bookings.clear()


class _Booking:
    __slots__ = ("callback", "tick")

    def __init__(self, callback: Callable[[], object], tick: _Tick) -> None:
        self.callback: Callable[[], object] | None = callback
        self.tick: _Tick | None = tick

    def cancel(self) -> None:
        """Not called after all; the wheel lets go of the callback at once."""
        tick = self.tick
        if tick is not None:
            self.callback = self.tick = None
            tick.forget()


wheel_of = one_per_loop(PacingWheel)
"""The loop's one `PacingWheel`, which every stream playing on it shares."""
