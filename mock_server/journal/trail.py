"""A request's part in an agent loop, as the journal keeps it: the tool calls its history holds and
the results it brings back, and the calls its answer handed out. Read once per request from its
conversation (and its answer's timeline), never per chunk; each list keeps at most MAX_IDS ids, so
a record stays small whatever the history holds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from mock_server.scenarios.conversation import Conversation

MAX_IDS = 64
"""The most ids a list of a trail keeps (the newest of `history`, the first of the others)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the answer handed out."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolTrail:
    """The tool calls and results of one request (README, "Request journal")."""

    calls: tuple[ToolCall, ...] = ()
    """The tool calls the answer handed out (only when its head was sent)."""
    results: tuple[str, ...] = ()
    """The call ids of the results the request brings back (after its last message that makes calls)."""
    history: tuple[str, ...] = ()
    """The ids of the tool calls its history holds (with a stored response's it continues)."""
    unanswered: tuple[str, ...] = ()
    """Those of them with no result in the history."""
    repeated: tuple[str, ...] = ()
    """The call ids of results it brings back for a call its history already answered."""

    def handed_out(self, calls: tuple[ToolCall, ...]) -> ToolTrail:
        return ToolTrail(calls[:MAX_IDS], self.results, self.history, self.unanswered, self.repeated)


def trail_of(conversation: Conversation) -> ToolTrail | None:
    """What a request's conversation says about its tool calls; None when it holds none."""
    ledger = conversation.ledger
    if not (conversation.calls or ledger.returned):
        return None
    return ToolTrail(
        results=ledger.returned[:MAX_IDS],
        history=tuple(call_id for call_id, _ in conversation.calls[-MAX_IDS:]),
        unanswered=tuple(itertools.islice((call_id for call_id, _ in ledger.open if call_id), MAX_IDS)),
        repeated=ledger.repeated[:MAX_IDS],
    )


def calls_of(made: tuple[tuple[str, str], ...]) -> tuple[ToolCall, ...]:
    """The calls an answer makes, as (call id, tool name), as the journal keeps them."""
    return tuple(ToolCall(call_id, name) for call_id, name in made[:MAX_IDS]) if made else ()
