"""One loop timer per millisecond for every stream due in it, instead of one per stream per chunk.

Paced streams started together fall due together: 2,000 streams 20 ms apart are some 100 due in
each millisecond. A `PacingWheel` books each wake-up into the millisecond tick it is due in, on the
loop's own clock, and sets one loop timer per tick, which wakes the tick's streams in the order they
were booked. A wake-up is rounded to the nearest millisecond, as uvloop rounds a timer's delay (so
up to 0.5 ms early, which `player.TIMER_SLACK_S` counts as on time, or late): on uvloop only the
number of loop timers changes, not when a stream wakes.

A callback that books itself again at every wake-up (a paced stream's) is a `Booking`: the wheel books
it as it is, instead of an object of its own per wake-up, which the cyclic collector would walk.
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


class Booking:
    """A callback the wheel books as it is, so that it is its own `Timer`; it waits in one tick at a
    time (booked again before its tick, it moves to the new one)."""

    __slots__ = ("_tick",)

    def __init__(self) -> None:
        self._tick: _Tick | None = None

    def __call__(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        """Not called after all; the wheel lets go of it at once."""
        tick = self._tick
        if tick is not None:
            self._tick = None
            tick.forget(self)


class _Call(Booking):
    """A callback that is not a `Booking`, booked through one made for it."""

    __slots__ = ("_callback",)

    def __init__(self, callback: Callable[[], object]) -> None:
        self._tick = None
        self._callback: Callable[[], object] = callback

    def __call__(self) -> None:
        callback, self._callback = self._callback, _nothing  # let go of it once called, as once cancelled
        callback()

    def cancel(self) -> None:
        super().cancel()
        self._callback = _nothing  # the caller may keep its timer: not what the callback holds


def _nothing() -> None:
    pass


class PacingWheel:
    """`Timers` whose callbacks due in the same millisecond share one timer of the underlying `timers`."""

    __slots__ = ("__weakref__", "_ticks", "_timers", "time")

    def __init__(self, timers: Timers) -> None:
        self._timers = timers
        self._ticks: dict[int, _Tick] = {}
        self.time: Callable[[], float] = timers.time
        """The clock of `timers`, one object that every stream can share: a paced chunk reads its stream's
        clock twice, and a bound method of each stream's own was one more object for it to reach."""

    def call_at(self, when: float, callback: Callable[[], object], /) -> Timer:
        """Call `callback` in the millisecond tick nearest `when`, after those booked in it before; a
        `Booking` is its own `Timer`."""
        booking = callback if isinstance(callback, Booking) else _Call(callback)
        if booking._tick is not None:
            booking.cancel()
        at = round(when * 1000)
        tick = self._ticks.get(at)
        if tick is None:
            tick = self._ticks[at] = _Tick(self, at)
            tick.handle = self._timers.call_at(at / 1000, tick)
        booking._tick = tick
        tick.bookings.append(booking)
        return booking

    @property
    def booked(self) -> int:
        """How many callbacks wait for their tick (a cancelled one does not)."""
        return sum(len(tick.bookings) for tick in self._ticks.values())

    @property
    def ticks(self) -> int:
        """How many ticks have a timer set."""
        return len(self._ticks)


class _Tick:
    """One millisecond's bookings and its one timer; a booking cancelled or moved leaves its list."""

    __slots__ = ("at", "bookings", "handle", "wheel")

    def __init__(self, wheel: PacingWheel, at: int) -> None:
        self.wheel = wheel
        self.at = at
        self.bookings: list[Booking] = []
        self.handle: Timer | None = None

    def __call__(self) -> None:
        """The tick's timer: every callback still booked in it, in the order booked. A callback that
        books again books a later tick (or a new one for this millisecond, set on the loop's next turn)."""
        del self.wheel._ticks[self.at]
        self.handle = None
        for booking in self.bookings:
            booking._tick = None
            try:
                booking()
            except Exception as exc:  # as the loop does with a timer of its own: reported, and the others run
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "Exception in a paced callback", "exception": exc}
                )
        self.bookings.clear()

    def forget(self, booking: Booking) -> None:
        """`booking` is cancelled: let go at once, not when the tick is due (a tick calling its bookings
        is past those before it); with none left, the tick and its timer go."""
        self.bookings.remove(booking)
        if not self.bookings and self.handle is not None:
            self.handle.cancel()
            self.handle = None
            del self.wheel._ticks[self.at]


wheel_of = one_per_loop(PacingWheel)
"""The loop's one `PacingWheel`, which every stream playing on it shares."""
