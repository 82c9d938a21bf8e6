"""One object per event loop, made on first use and let go with the loop: the pacing wheel and the
backlog every stream on a loop shares (and the bench's load client's readers)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def one_per_loop(make: Callable[[asyncio.AbstractEventLoop], T]) -> Callable[[asyncio.AbstractEventLoop], T]:
    """A function that returns the loop's one `make(loop)`, made the first time it is asked for."""
    made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def of(loop: asyncio.AbstractEventLoop) -> T:
        found = made.get(loop)
        if found is None:
            found = made[loop] = make(loop)
        return found

    return of
