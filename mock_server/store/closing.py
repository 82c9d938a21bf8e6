"""How the shared state's background loops (a process's heartbeat, following run-time scenarios)
wait between rounds and end: told to stop by an event, never cancelled mid-wait."""

from __future__ import annotations

import asyncio
import contextlib


async def closed_within(closing: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less when `closing` is set; whether it is."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(closing.wait(), seconds)
    return closing.is_set()
