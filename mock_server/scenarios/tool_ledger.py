"""Which of a conversation's tool calls have their result: the facts the verdict judges an agent loop by.

A result answers the oldest call still open with its call id; a result without an id (Ollama's) the
oldest open call of its tool's name, else the oldest open call. A result that answers no open call
is a repeat when its call was answered before, else an orphan: a request that continues a stored
response (`previous_response_id`) answers the calls of that response, which its own input does not
hold, so its orphans are matched to them when the two are put together (`after`).

Built in one pass over a request's messages, in time linear in them (a body may hold many calls).
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

Call = tuple[str, str]
"""A tool call: its id and its tool's name."""


@dataclass(frozen=True, slots=True)
class Orphan:
    """A result that answers no call its own messages hold."""

    call_id: str
    name: str
    fresh: bool


@dataclass(frozen=True, slots=True)
class ToolLedger:
    """A conversation's tool calls without a result, and the results that answer none."""

    open: tuple[Call, ...] = ()
    """The calls without a result, oldest first."""
    answered: frozenset[str] = field(default_factory=frozenset)
    """The ids of the calls that have their result."""
    repeated: tuple[str, ...] = ()
    """The call ids of results brought back now (after the last message that makes calls) for a call
    answered before: the same call's result sent twice."""
    orphans: tuple[Orphan, ...] = ()
    """The results that answer no call of the messages: a stored response's calls, when it is continued."""
    returned: tuple[str, ...] = ()
    """The call ids of the results brought back now, in order (a repeat is listed again)."""

    def after(self, earlier: ToolLedger) -> ToolLedger:
        """This request's ledger when its messages continue `earlier` (a stored response's): its
        orphans answer the earlier open calls, or repeat their answered ones."""
        book = _Book(earlier.open, earlier.answered)
        repeated: list[str] = []
        orphans = book.answer_all(self.orphans, repeated)
        # A request that sends an earlier call again with its result answers that call too.
        open_calls = (*(call for call in book.still_open() if call[0] not in self.answered), *self.open)
        answered = frozenset(book.answered | self.answered)
        return ToolLedger(open_calls, answered, (*self.repeated, *repeated), tuple(orphans), self.returned)

    def with_calls(self, calls: tuple[Call, ...]) -> ToolLedger:
        """The ledger after an answer that makes `calls`: they are open."""
        return ToolLedger((*self.open, *calls), self.answered)


EMPTY_LEDGER = ToolLedger()


class _Book:
    """The open calls while results are matched to them; each call leaves each index at most once."""

    def __init__(self, calls: tuple[Call, ...] = (), answered: frozenset[str] = frozenset()) -> None:
        self.calls: list[Call] = []
        self.done: list[bool] = []
        self.by_id: dict[str, deque[int]] = defaultdict(deque)
        self.by_name: dict[str, deque[int]] = defaultdict(deque)
        self.first = 0
        self.answered = set(answered)
        for call in calls:
            self.call(call)

    def call(self, call: Call) -> None:
        index = len(self.calls)
        self.calls.append(call)
        self.done.append(False)
        if call[0]:
            self.by_id[call[0]].append(index)
        self.by_name[call[1]].append(index)

    def answer(self, call_id: str, name: str) -> bool:
        """Close the call a result answers; False when it answers no open call."""
        if call_id:
            index = self._oldest(self.by_id.get(call_id))
        else:
            index = self._oldest(self.by_name.get(name)) if name else None
            if index is None:
                while self.first < len(self.done) and self.done[self.first]:
                    self.first += 1
                index = self.first if self.first < len(self.done) else None
        if index is None:
            return False
        self.done[index] = True
        if self.calls[index][0]:
            self.answered.add(self.calls[index][0])
        return True

    def answer_all(self, orphans: tuple[Orphan, ...], repeated: list[str]) -> list[Orphan]:
        """Match `orphans` to the open calls; those left over that repeat an answered call go to
        `repeated` (when brought back now), the rest are returned."""
        left = []
        for orphan in orphans:
            if self.answer(orphan.call_id, orphan.name):
                continue
            if orphan.call_id and orphan.call_id in self.answered:
                if orphan.fresh:
                    repeated.append(orphan.call_id)
            else:
                left.append(orphan)
        return left

    def _oldest(self, queue: deque[int] | None) -> int | None:
        while queue:
            if not self.done[queue[0]]:
                return queue[0]
            queue.popleft()
        return None

    def still_open(self) -> tuple[Call, ...]:
        return tuple(call for call, done in zip(self.calls, self.done, strict=True) if not done)


def ledger_of(messages: list[tuple[tuple[Call, ...], tuple[tuple[str, str], ...]]]) -> ToolLedger:
    """The ledger of a request's messages, each given as (the calls it makes, the results it sends as
    (call id, name)); the results after the last message that makes calls are the ones brought back now."""
    last_calls = max((i for i, (calls, _) in enumerate(messages) if calls), default=-1)
    book = _Book()
    repeated: list[str] = []
    orphans: list[Orphan] = []
    returned: list[str] = []
    for index, (calls, results) in enumerate(messages):
        for call in calls:
            book.call(call)
        fresh = index > last_calls
        for call_id, name in results:
            if fresh:
                returned.append(call_id)
            if book.answer(call_id, name):
                continue
            if call_id and call_id in book.answered:
                if fresh:
                    repeated.append(call_id)
            else:
                orphans.append(Orphan(call_id, name, fresh))
    return ToolLedger(book.still_open(), frozenset(book.answered), tuple(repeated), tuple(orphans), tuple(returned))
