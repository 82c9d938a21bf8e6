"""The conversation one request belongs to: what its messages say (with the stored response it
continues), the key its sequences of replies count under, and keeping its answer when it is a
Responses API request to store."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from mock_server.conversations.responses import Responses, StoredResponse
from mock_server.conversations.sequences import Sequences
from mock_server.counters import Plan
from mock_server.dialects import Dialect, StreamInfo
from mock_server.dialects.answer import collect_answer
from mock_server.scenarios.conversation import Conversation
from mock_server.scenarios.model import Scenario
from mock_server.timeline.cache import BoundedCache
from mock_server.timeline.compile import Timeline
from mock_server.wire.frames import to_json


@dataclass(frozen=True, slots=True)
class Thread:
    """A request's place in its conversation."""

    conversation: Conversation
    key: str | None
    """What its sequences count under (None: counted with every request that names no conversation)."""
    previous: StoredResponse | None = None
    """The stored response it continues."""
    missing: str | None = None
    """The `previous_response_id` it gives of a response not stored here: an error, unless the
    upstream (or a recording of it) answers, which knows its own responses."""

    def count(self, plan: Plan, sequences: Sequences, scenario: Scenario, *, resumed: bool) -> int | None:
        """Add to `plan` counting this request in the conversation's sequence of `scenario`'s replies;
        returns the index of its number (None for a scenario without replies, which counts nothing:
        its number is 1). A resumed stream keeps the last number."""
        if not scenario.replies:
            return None
        previous = self.previous
        after = previous.count if previous is not None and previous.scenario == scenario.name else 0
        return sequences.count(plan, scenario.name, self.key, after, again=resumed)


async def thread_of(
    responses: Responses, conversation: Conversation, key: str | None, previous_response_id: str | None
) -> Thread:
    """The thread of a request whose messages say `conversation`, that names the conversation `key`
    (`X-Mock-Conversation`, `convGroupId`) and may continue a stored response: its turns and tool
    calls count in, and its conversation is the request's unless the request names one."""
    if previous_response_id is None:
        return Thread(conversation, key)
    previous = await responses.get(previous_response_id)
    if previous is None:
        return Thread(conversation, key, missing=previous_response_id)
    return Thread(conversation.after(previous.conversation), key or previous.key, previous)


async def store_response(
    responses: Responses,
    completed: CompletedBodies,
    dialect: Dialect,
    info: StreamInfo,
    timeline: Timeline,
    thread: Thread,
    scenario: str,
    count: int,
) -> None:
    """Keep the response a request is answered with (the body `response.completed` carries), for
    `GET /v1/responses/{id}` and the requests that continue it; not an error, a cut before the
    head, a recording's or an upstream's (the upstream keeps its own)."""
    if timeline.status != 200 or timeline.head_cut is not None or timeline.from_upstream:
        return
    done = completed.body(dialect, info, timeline)
    if done is None:
        return
    body, response_id, made = done
    earlier = thread.conversation
    conversation = Conversation(
        turn=earlier.turn, calls=(*earlier.calls, *made), ledger=earlier.ledger.with_calls(made)
    )
    await responses.put(response_id, StoredResponse(body, conversation, thread.key or response_id, scenario, count))


Completed = tuple[bytes, str, tuple[tuple[str, str], ...]]
"""A stored response's body as JSON, its id, and the tool calls its answer makes (call id, tool name)."""


class CompletedBodies:
    """The bodies stored responses keep, by their dialect, what their frames carry (`StreamInfo`) and
    their timeline, the most recently used kept up to `max_bytes` (estimated): made from the timeline
    (its answer collected, the response built and written as JSON: 15 us for a 50-chunk reply, before
    the first byte), they are the same for requests alike, as rendered streams are (`StreamCache`).
    Timelines are keyed by identity, as there; the cache does not keep them alive."""

    def __init__(self, max_bytes: int = 8 << 20) -> None:
        self._cache: BoundedCache[tuple[object, ...], tuple[weakref.ref[Timeline], Completed | None]] = BoundedCache(
            max_bytes
        )

    def body(self, dialect: Dialect, info: StreamInfo, timeline: Timeline) -> Completed | None:
        """What a response answered with `timeline` stores; None for an answer that ends in an error."""
        key = (dialect.name, info, id(timeline))
        entry = self._cache.get(key)
        if entry is not None and entry[0]() is timeline:  # the id of a timeline gone may be reused
            return entry[1]
        answer = collect_answer(timeline.steps)
        done: Completed | None = None
        if answer.error is None:
            body = dialect.complete(info, answer)
            made = tuple((call.call_id, call.name) for call in answer.tool_calls)
            done = (to_json(body).encode(), str(body["id"]), made)
        self._cache.put(key, (weakref.ref(timeline), done), len(done[0]) if done is not None else 0)
        return done

    def clear(self) -> None:
        self._cache.clear()
