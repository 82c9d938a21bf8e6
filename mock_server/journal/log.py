"""The log of this process's memory (`MemoryLog`): where a journal keeps its records when they are not shared.

A log is made with the app, before its first answer: the ready check tells its `instance` and
`started_at`. The journal around it, with the records' fields, masking and tallies, is made by the
first request that needs it, so this module loads none of that.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

DEFAULT_SIZE = 1000
DEFAULT_MAX_BYTES = 64 << 20


class KeptEntry(Protocol):
    """What a log uses of the journal's entries (`journal.Entry`)."""

    @property
    def id(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def outcome(self) -> object: ...

    def number(self, record_id: int) -> None: ...

    def snapshot(self) -> Any: ...


class MemoryLog:
    """A bounded, ordered log of entries (oldest first) in this process, used from its event loop
    only: the newest `size` records, and no more than about `max_bytes` of what clients sent."""

    def __init__(
        self, size: int = DEFAULT_SIZE, max_bytes: int = DEFAULT_MAX_BYTES, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._entries: deque[KeptEntry] = deque()
        self._ids = itertools.count(1)
        self._last_id = 0
        self._bytes = 0
        self.size = size
        self.max_bytes = max_bytes
        self.instance = uuid.uuid4().hex[:12]
        self.started_at = wall_clock()
        self.salt = os.urandom(16)

    async def add(self, entry: KeptEntry) -> int:
        return self._add(entry)

    def _add(self, entry: KeptEntry) -> int:
        self._last_id = next(self._ids)
        entry.number(self._last_id)
        self._entries.append(entry)
        self._bytes += entry.size
        while len(self._entries) > 1 and (len(self._entries) > self.size or self._bytes > self.max_bytes):
            self._bytes -= self._entries.popleft().size
        return self._last_id

    def finished(self, entry: KeptEntry) -> None:
        """Keep an entry that ended before it was kept; else nothing: the log holds the entry itself."""
        if entry.id == 0:
            self._add(entry)

    async def records(self, after: int | None) -> list[Any]:
        return [e.snapshot() for e in self._entries if after is None or e.id > after]

    async def last_id(self) -> int:
        return self._last_id

    async def any_open(self, after: int) -> bool:
        return any(e.outcome is None and e.id > after for e in self._entries)

    async def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        self._bytes = 0
        return count

    async def stats(self) -> tuple[int, int]:
        return len(self._entries), self._bytes
