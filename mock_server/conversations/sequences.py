"""How far each conversation has gone through a scenario's `replies`, since start or reset."""

from __future__ import annotations

from collections import OrderedDict

MAX_CONVERSATIONS = 100_000
"""How many (scenario, conversation) counts are kept; past it the least recently used is forgotten
(and starts from the first reply again), so that clients naming a new conversation on every request
cannot grow the server's memory without bound."""


class Sequences:
    """Requests counted per scenario and conversation key (None: requests that name no conversation,
    counted together)."""

    def __init__(self, max_conversations: int = MAX_CONVERSATIONS) -> None:
        self._counts: OrderedDict[tuple[str, str | None], int] = OrderedDict()
        self.max_conversations = max_conversations

    def advance(self, scenario: str, conversation: str | None, after: int = 0, *, again: bool = False) -> int:
        """Count one more request of `conversation` for `scenario`, going on from `after` when the
        conversation has got no further here (a stored response it continues); returns this
        request's number, 1 for the first. `again`: the request asks for the last answer again (a
        stream resumed with Last-Event-ID), which keeps its number."""
        key = (scenario, conversation)
        last = max(self._counts.pop(key, 0), after)
        count = max(last, 1) if again else last + 1
        self._counts[key] = count
        while len(self._counts) > self.max_conversations:
            self._counts.popitem(last=False)
        return count

    def clear(self) -> None:
        self._counts.clear()
