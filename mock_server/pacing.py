"""Waiting with exact timing: one monotonic deadline per stream, so lateness never accumulates.

Each wait moves the deadline on by its duration and sleeps until the deadline, not for the
duration: if one wake-up comes 2 ms late, the next sleep is 2 ms shorter. `clock` and `sleep` are
the one seam through which time passes, so schedules can be tested without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Pacer:
    def __init__(self, clock: Clock | None = None, sleep: Sleep = asyncio.sleep) -> None:
        self.clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep
        self.deadline = self.clock()

    def advance(self, seconds: float) -> float:
        """Move the deadline on by `seconds`; returns the new deadline."""
        self.deadline += seconds
        return self.deadline

    async def sleep_until(self, moment: float) -> None:
        """Sleep until `moment` on the clock (yielding once even when it has passed)."""
        await self._sleep(max(0.0, moment - self.clock()))
