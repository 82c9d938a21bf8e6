"""The Responses API's stored responses: what `GET /v1/responses/{id}` answers and what a request's
`previous_response_id` continues, kept in bounded memory until reset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mock_server.scenarios.conversation import Conversation
from mock_server.timeline.cache import BoundedCache

DEFAULT_MAX_BYTES = 64 << 20
CALL_BYTES = 200
"""A tool call a stored conversation remembers (its id and name, with their tuple), or an id of its ledger."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    body: bytes
    """The response object, as JSON: what `response.completed` (or the whole response) carried."""
    conversation: Conversation
    """Its conversation so far: the turns, and the tool calls made (its own answer's included) and
    which of them have their result."""
    key: str
    """The conversation a request continuing it belongs to: the one it was asked in, else its own id."""
    scenario: str
    count: int
    """Its number among the requests of its conversation that `scenario` answered (for `replies`)."""

    def estimated_bytes(self) -> int:
        conversation = self.conversation
        remembered = len(conversation.calls) + len(conversation.ledger.open) + len(conversation.ledger.answered)
        return len(self.body) + len(self.key) + remembered * CALL_BYTES


class Responses(Protocol):
    """Where stored responses are kept: this process's memory (`ResponseStore`), or the state every
    worker shares."""

    async def put(self, response_id: str, response: StoredResponse) -> None: ...

    async def get(self, response_id: str) -> StoredResponse | None: ...

    async def delete(self, response_id: str) -> bool:
        """Forget a response; False when none of that id is stored."""
        ...


class ResponseStore:
    """Stored responses by id in memory, the least recently used forgotten once they fill `max_bytes`."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._responses: BoundedCache[str, StoredResponse] = BoundedCache(max_bytes)

    async def put(self, response_id: str, response: StoredResponse) -> None:
        self._responses.put(response_id, response, response.estimated_bytes() + len(response_id))

    async def get(self, response_id: str) -> StoredResponse | None:
        return self._responses.get(response_id)

    async def delete(self, response_id: str) -> bool:
        """Forget a response; False when none of that id is stored."""
        return self._responses.pop(response_id) is not None

    def clear(self) -> None:
        self._responses.clear()

    def __len__(self) -> int:
        return len(self._responses)
