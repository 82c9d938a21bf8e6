"""Where a journal keeps its records (`RecordLog`), and the log of this process's memory (`MemoryLog`).

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
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mock_server.journal.journal import Entry, RequestRecord

DEFAULT_SIZE = 1000
DEFAULT_MAX_BYTES = 64 << 20


class RecordLog(Protocol):
    """Where a journal keeps its records: this process's memory (`MemoryLog`), or the state every
    worker and replica shares (`store/shared.py`). `instance` and `started_at` are the log's: new
    with every memory log, and with a shared one only when its store is new."""

    instance: str
    started_at: float
    salt: bytes
    """Fingerprints of API keys are made with it, so the same key has the same fingerprint everywhere."""

    async def add(self, entry: Entry) -> int:
        """Keep a new entry (the bounds may drop the oldest); returns its id, above every id before."""
        ...

    def finished(self, entry: Entry) -> None:
        """The entry's response has ended: its record is final (kept now, when it was not yet)."""
        ...

    async def records(self, after: int | None) -> list[RequestRecord]:
        """Snapshots of the records with an id above `after` (all with None), oldest first."""
        ...

    async def last_id(self) -> int:
        """The highest id given so far (0 before the first)."""
        ...

    async def any_open(self, after: int) -> bool:
        """Whether a record above `after` is still in flight."""
        ...

    async def clear(self) -> int:
        """Forget every record (ids keep counting); returns how many there were."""
        ...

    async def stats(self) -> tuple[int, int]:
        """How many records are kept, and about how many bytes they hold."""
        ...


class MemoryLog:
    """A bounded, ordered log of entries (oldest first) in this process, used from its event loop
    only: the newest `size` records, and no more than about `max_bytes` of what clients sent."""

    def __init__(
        self, size: int = DEFAULT_SIZE, max_bytes: int = DEFAULT_MAX_BYTES, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._entries: deque[Entry] = deque()
        self._ids = itertools.count(1)
        self._last_id = 0
        self._bytes = 0
        self.size = size
        self.max_bytes = max_bytes
        self.instance = uuid.uuid4().hex[:12]
        self.started_at = wall_clock()
        self.salt = os.urandom(16)

    async def add(self, entry: Entry) -> int:
        return self._add(entry)

    def _add(self, entry: Entry) -> int:
        self._last_id = next(self._ids)
        entry.number(self._last_id)
        self._entries.append(entry)
        self._bytes += entry.size
        while len(self._entries) > 1 and (len(self._entries) > self.size or self._bytes > self.max_bytes):
            self._bytes -= self._entries.popleft().size
        return self._last_id

    def finished(self, entry: Entry) -> None:
        """Keep an entry that ended before it was kept; else nothing: the log holds the entry itself."""
        if entry.id == 0:
            self._add(entry)

    async def records(self, after: int | None) -> list[RequestRecord]:
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
