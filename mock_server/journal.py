"""The request journal: one record per model request, with how its response ended.

Records are opened when a request arrives and finished when its response ends, so a stream in
flight shows `outcome` None. The journal keeps the newest `size` records; ids keep counting across
`clear()`, so `since=` stays meaningful. Readers get `RequestRecord` snapshots, never live records.

Beyond the SPEC's fields, a record keeps what the server told the client (`Retry-After`, `retry:`,
ids), how the stream was set to end and when it met a `close` event or a stall, and the scenario's
thresholds: the facts the client verdict judges by. They are noted when the response starts and
ends, never per chunk.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mock_server.ops import Op, Outcome, PlayResult
from mock_server.render import last_id_sent, schedule
from mock_server.scenario import DEFAULT_THRESHOLDS, Thresholds
from mock_server.timeline import Ending, Timeline

DEFAULT_SIZE = 1000
SETTLE_POLL_S = 0.002


@dataclass(frozen=True, slots=True, repr=False)
class RequestRecord:
    """One request as the journal saw it: what the client sent and how the response ended.

    `headers` has lower-case names; `body` is the parsed JSON body (the text when it is not JSON,
    None without a body); `outcome` is None while the response is still being sent. The fields after
    `duration_ms` are what the server told the client and the thresholds it is judged by (README,
    "Request journal").
    """

    id: int
    received_at: float
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    prompt: str | None
    scenario: str | None
    dialect: str | None
    status: int | None
    events_sent: int
    outcome: Outcome | None
    last_event_id: str | None
    duration_ms: float | None
    ids: bool
    last_id_sent: int | None
    retry_ms: int | None
    retry_after: str | None
    ending: Ending | None
    close_at_ms: float | None
    stall_at_ms: float | None
    stall_ms: float | None
    thresholds: Thresholds

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "thresholds": self.thresholds.model_dump()}

    @property
    def ended_at(self) -> float | None:
        """Unix time the response ended (None while it is in flight)."""
        return None if self.duration_ms is None else self.received_at + self.duration_ms / 1000

    def summary(self) -> str:
        """One line: `#3 POST /v1/chat/completions scenario='default' status=200 outcome='completed' ...`."""
        outcome = self.outcome.value if self.outcome is not None else "in flight"
        resumed = f" last_event_id={self.last_event_id!r}" if self.last_event_id is not None else ""
        duration = f" {self.duration_ms:.0f}ms" if self.duration_ms is not None else ""
        return (
            f"#{self.id} {self.method} {self.path} scenario={self.scenario!r} status={self.status} "
            f"outcome={outcome!r} events_sent={self.events_sent}{resumed}{duration}"
        )

    def __repr__(self) -> str:
        return f"<RequestRecord {self.summary()}>"


@dataclass(slots=True)
class Record:
    """The journal's live record of a request, finished by the endpoint or the transport."""

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
    ids: bool = False
    last_id_sent: int | None = None
    retry_ms: int | None = None
    retry_after: str | None = None
    ending: Ending | None = None
    close_at_ms: float | None = None
    stall_at_ms: float | None = None
    stall_ms: float | None = None
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    _started: float = field(default=0.0, repr=False)

    def finish(self, status: int, outcome: Outcome, events_sent: int = 0) -> None:
        self.status = status
        self.outcome = outcome
        self.events_sent = events_sent
        self.duration_ms = self._elapsed_ms()

    def on_play_end(self, status: int, ops: tuple[Op, ...] = ()) -> Callable[[PlayResult], None]:
        """A callback for the transport that finishes this record with the result of playing `ops`."""

        def finish(result: PlayResult) -> None:
            self.finish(status, result.outcome, result.events_sent)
            self.last_id_sent = last_id_sent(ops, result.events_sent)

        return finish

    def note_stream(self, timeline: Timeline, ops: tuple[Op, ...]) -> None:
        """Note what the stream about to play `ops` will tell its client, and when."""
        self.ids, self.retry_ms, self.ending = timeline.ids, timeline.retry_ms, timeline.ending
        self.note_schedule(ops)

    def note_schedule(self, ops: tuple[Op, ...]) -> None:
        """Note when the response about to play `ops` writes a `close` event and falls silent."""
        plan = schedule(ops)
        start_ms = self._elapsed_ms()
        self.close_at_ms = None if plan.close_at_s is None else round(start_ms + plan.close_at_s * 1000, 3)
        self.stall_at_ms = None if plan.stall_at_s is None else round(start_ms + plan.stall_at_s * 1000, 3)
        self.stall_ms = None if plan.stall_s is None else plan.stall_s * 1000

    def note_headers(self, headers: Iterable[tuple[str, str]]) -> None:
        """Note the response headers the verdict judges by (`Retry-After`)."""
        self.retry_after = next((value for name, value in headers if name.lower() == "retry-after"), None)

    def _elapsed_ms(self) -> float:
        return round((time.perf_counter() - self._started) * 1000, 3)

    def snapshot(self) -> RequestRecord:
        values = {f.name: getattr(self, f.name) for f in fields(RequestRecord)}
        return RequestRecord(**{**values, "query": dict(self.query), "headers": dict(self.headers)})


class Journal:
    """A bounded, ordered log of records (oldest first); used from the server's event loop only."""

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

    def records(self, since: int | None = None) -> list[RequestRecord]:
        """Snapshots of the records with an id above `since` (all without it), oldest first."""
        return [r.snapshot() for r in self._records if since is None or r.id > since]

    async def settled(self, since: int | None = None, timeout_s: float = 0.0) -> list[RequestRecord]:
        """Like `records`, after waiting up to `timeout_s` for responses in flight to end.

        A client that has read a response to its end (or hung up) may look before the server has
        seen that end; this bounded wait makes such a look reliable.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(r.outcome is None and r.id > (since or 0) for r in self._records):
            await asyncio.sleep(SETTLE_POLL_S)
        return self.records(since)

    def clear(self) -> int:
        """Forget every record; returns how many there were."""
        count = len(self._records)
        self._records.clear()
        return count

    def __len__(self) -> int:
        return len(self._records)
