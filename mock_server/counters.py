"""Counters: small values (numbers, lists of numbers) that requests change atomically, a few at a
time: where each conversation is in its `replies`, how many requests carried a counted fault, the
rate limits' buckets. In one process they live in memory; shared by workers and replicas, in the
state store (`store/shared.py`). The rules that change them are written once, as pure functions of
the values, and every backend applies them atomically."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
Change = Callable[[list[Any]], tuple[list[Any], T]]
"""Given the values of the keys (None for a key never set), their new values and a result."""

MAX_KEYS = 200_000
"""How many counters one process keeps; past it the least recently used is forgotten (it starts
afresh), so that clients naming a new conversation or key on every request cannot grow the server's
memory without bound."""


class Counters(Protocol):
    async def update(self, keys: Sequence[str], change: Change[T]) -> T:
        """Apply `change` to the values of `keys` atomically; returns its result."""
        ...


def counter_key(kind: str, *parts: str | None) -> str:
    """The key of a counter: its kind, then a digest of what it counts (client keys are secrets, and
    names may hold any character)."""
    joined = "\0".join("\1" if part is None else part for part in parts)
    return f"{kind}:{hashlib.sha256(joined.encode()).hexdigest()[:32]}"


class MemoryCounters:
    """Counters in this process's memory, the least recently used forgotten past `max_keys`."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._values: OrderedDict[str, Any] = OrderedDict()
        self.max_keys = max_keys

    async def update(self, keys: Sequence[str], change: Change[T]) -> T:
        values = self._values
        new, result = change([values.get(key) for key in keys])
        for key, value in zip(keys, new, strict=True):
            values.pop(key, None)
            values[key] = value
        while len(values) > self.max_keys:
            values.popitem(last=False)
        return result

    def clear(self) -> None:
        self._values.clear()

    def __len__(self) -> int:
        return len(self._values)


class Plan:
    """The counter changes one request makes, applied in one atomic update (with its journal record,
    in a shared store): every one of them, or none when one refuses the request (its result is an
    exception, e.g. a rate limit with nothing left). `results[i]` is the result of the `i`th `add`."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._parts: list[tuple[int, int, Change[Any]]] = []

    def add(self, keys: Sequence[str], change: Change[Any]) -> int:
        """Add a change of `keys`; returns the index of its result."""
        start = len(self.keys)
        self.keys.extend(keys)
        self._parts.append((start, len(self.keys), change))
        return len(self._parts) - 1

    def change(self, values: list[Any]) -> tuple[list[Any], list[Any]]:
        new, results = list(values), []
        for start, end, change in self._parts:
            new[start:end], result = change(values[start:end])
            results.append(result)
        if any(isinstance(result, Exception) for result in results):
            return values, results
        return new, results

    def __bool__(self) -> bool:
        return bool(self._parts)
