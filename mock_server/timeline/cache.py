"""One least-recently-used cache, bounded in estimated bytes: what the server derives from one request
and keeps for the next one like it (compiled timelines, rendered streams)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ENTRY_BYTES = 1024
"""What every entry costs on top of the size its owner estimates: the key and its objects, the
entry's own bookkeeping. Measured at about 1.4 KiB for a status response with one override fault
(a timeline of no steps), so that a cache of entries of no size has a bound too."""


class BoundedCache(Generic[K, V]):
    """Values by key, the least recently used evicted once the entries' sizes (each at least
    ENTRY_BYTES) add up to more than `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self.max_bytes = max_bytes

    def get(self, key: K) -> V | None:
        """The value kept under `key` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep `value` under `key`, costing `size` + ENTRY_BYTES; a value that alone would fill the
        cache is not kept."""
        cost = size + ENTRY_BYTES
        if cost > self.max_bytes:
            return
        previous = self._entries.pop(key, None)
        if previous is not None:
            self._bytes -= previous[1]
        self._entries[key] = (value, cost)
        self._bytes += cost
        while self._bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= evicted

    def pop(self, key: K) -> V | None:
        """Forget the value kept under `key`, and return it (None when there is none)."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self._bytes -= entry[1]
        return entry[0]

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        """The estimated bytes of every entry kept, never above `max_bytes`."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
