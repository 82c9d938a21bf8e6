"""The request journal: one record per model request, with how its response ended.

Records are created when a request arrives and finished when its response ends, so a test can see
a stream in flight (`outcome` is None until then). The journal keeps the newest `size` records.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mock_server.transport import Outcome, PlayResult

DEFAULT_SIZE = 1000


@dataclass(slots=True)
class Record:
    """What a request asked for and how its response ended."""

    id: int
    received_at: float
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    prompt: str | None = None
    scenario: str | None = None
    dialect: str | None = None
    status: int | None = None
    events_sent: int = 0
    outcome: Outcome | None = None
    last_event_id: str | None = None
    duration_ms: float | None = None
    _started: float = field(default=0.0, repr=False)

    def finish(self, status: int, outcome: Outcome, events_sent: int = 0) -> None:
        self.status = status
        self.outcome = outcome
        self.events_sent = events_sent
        self.duration_ms = round((time.perf_counter() - self._started) * 1000, 3)

    def on_play_end(self, status: int) -> Callable[[PlayResult], None]:
        """A callback for the transport that finishes this record with the stream's result."""
        return lambda result: self.finish(status, result.outcome, result.events_sent)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["_started"]
        return data


class Journal:
    """A bounded, ordered log of records (oldest first)."""

    def __init__(self, size: int = DEFAULT_SIZE, wall_clock: Callable[[], float] = time.time) -> None:
        self._records: deque[Record] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self._wall_clock = wall_clock

    def open(
        self,
        *,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: Any,
    ) -> Record:
        record = Record(
            id=next(self._ids),
            received_at=self._wall_clock(),
            method=method,
            path=path,
            query=dict(query),
            headers=dict(headers),
            body=body,
            last_event_id=headers.get("last-event-id"),
            _started=time.perf_counter(),
        )
        self._records.append(record)
        return record

    def records(self, since: int | None = None) -> list[Record]:
        return [r for r in self._records if since is None or r.id > since]

    def clear(self) -> None:
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)
