"""Answers kept for short names: a client sends the same few headers, keys and model names with
every request, so working out what one means is worth doing once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K", bound=str | None)
R = TypeVar("R")


def kept_for_short_names(entries: int, max_chars: int) -> Callable[[Callable[[K], R]], Callable[[K], R]]:
    """A decorator: the function's answer is kept for the newest `entries` names up to `max_chars`
    long (and for None); a longer name is worked out afresh, so no client can fill memory with names."""

    def decorate(work_out: Callable[[K], R]) -> Callable[[K], R]:
        kept = functools.lru_cache(maxsize=entries)(work_out)

        @functools.wraps(work_out)
        def answer(name: K) -> R:
            return work_out(name) if isinstance(name, str) and len(name) > max_chars else kept(name)

        return answer

    return decorate
