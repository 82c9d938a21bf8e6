"""The request journal: one record per model request, with how its response ended.

A record is made when a request arrives, kept (and numbered) once its scenario is chosen, or at
once when the request is refused before that, and finished when its response ends, so a stream in
flight shows `outcome` None. It lives in a `RecordLog`: this process's memory (`MemoryLog`), or the
state shared by workers and replicas. The journal keeps the newest `size` records, and no more than
about `max_bytes` of what the clients sent; ids keep counting across `clear()`, so `since=` stays
meaningful. They start at 1 again only with a new log, that is a new server `instance`: a
`since` from another instance is refused (`RestartedError`) rather than quietly judging nothing.
The journal holds an `Entry` per request, on which the server notes facts as the response starts
and ends; readers get the entry's `RequestRecord`, an immutable snapshot. Secrets in headers, query and body are
masked as the record is first read (for a stream, after its first event), unless the journal was made
to keep them (`redaction.py`).

Beyond the SPEC's fields, a record keeps what the server told the client (`Retry-After`, `retry:`,
ids), how the stream was set to end and when it met a `close` event or a stall, and the scenario's
thresholds: the facts the client verdict judges by. They travel with the response (the rendered
stream's schedule, the transport's result) and are noted when it starts and ends, never per chunk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mock_server.errors import RestartedError
from mock_server.journal.log import MemoryLog
from mock_server.journal.metrics import Tally
from mock_server.journal.redaction import fingerprint, journal_headers, journal_query, mask_body
from mock_server.journal.trail import ToolCall, ToolTrail
from mock_server.scenarios.model import DEFAULT_THRESHOLDS, Thresholds
from mock_server.scenarios.steps import Ending
from mock_server.wire.outcome import EventTiming, Outcome, PlayResult

if TYPE_CHECKING:
    from mock_server.wire.actions import Schedule

RECORD_OVERHEAD_BYTES = 1024
"""What a record costs besides what the client sent: its fields, the dict and the objects."""
SETTLE_POLL_S = 0.002
RateLimitScope = Literal["server", "scenario"]


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
    upstream_status: int | None = None
    """For a request forwarded to the upstream: the status it answered (None when it could not be reached)."""
    upstream_head_ms: float | None = None
    """... and how long its response head took, from the request."""
    conversation: str | None = None
    """The conversation the request belongs to (`X-Mock-Conversation`, `convGroupId`, a Responses chain)."""
    tools: ToolTrail | None = None
    """Its tool calls and results, and the calls its answer handed out (None: it had none)."""
    rate_limit_key: str | None = None
    """The client its rate limits counted (a key fingerprinted, never the key itself), when any applied."""
    rate_limited: RateLimitScope | None = None
    """Answered 429 because a rate limit had nothing left (not a scripted `status:429`): the server's
    (`server`: every request of the client counts) or the scenario's own (`scenario`)."""
    endpoint: str | None = None
    """The model route that took the request, as its path is declared (`/openai/deployments/{deployment}/...`)."""
    due_end_ms: float | None = None
    """When the response's last write was due, in ms from the request's arrival (its waits added up)."""
    events_timing: EventTiming | None = None
    """When its writes of events were due and written, in ms from when it began to play (bounded)."""
    worker: int | None = None
    """Which of `serve --workers N` answered it, from 1 (None with one process)."""

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


class Entry:
    """The journal's hold on one request while it is answered: the server notes facts on it as the
    response starts and ends (never per chunk), and `record` is always a finished snapshot of them.

    The facts are gathered here and put in a `RequestRecord` only when the record is read (by a
    shared store as the stream begins, by a reader of the journal) and once as the response ends:
    a frozen record copied per note cost a quarter of a request's work before its first byte."""

    __slots__ = ("_calls", "_id", "_notes", "_on_finish", "_record", "_sent", "_started", "_tally", "size")

    def __init__(
        self,
        fields: dict[str, Any],
        size: int,
        tally: Tally | None = None,
        on_finish: Callable[[Entry], None] | None = None,
        sent: Sent | None = None,
    ) -> None:
        self._id = 0
        self._record: RequestRecord | None = None
        self._notes = fields
        """The record's fields noted since `_record` was made (all of them before it is), for the next one."""
        self._sent = sent
        """What the client sent, not in `_notes` yet: made into the record's fields (copied, masked) only
        when they are first read, which for a stream is after its first event, not before."""
        self.size = size
        """About how many bytes the record holds (what the client sent, and the record's own)."""
        self._started = time.perf_counter()
        self._calls: tuple[ToolCall, ...] = ()
        self._tally = tally
        self._on_finish = on_finish

    @property
    def record(self) -> RequestRecord:
        """The record with every note so far (a new one only when something was noted since the last read)."""
        if self._sent is not None:
            self._note_sent()
        record = self._record
        if record is None:
            record = self._record = RequestRecord(id=self._id, **self._notes)
            self._notes = {}
        elif self._notes:
            record = self._record = replace(record, **self._notes)
            self._notes = {}
        return record

    @property
    def id(self) -> int:
        record = self._record
        return self._id if record is None else record.id  # a shared store numbers the record it has read

    @property
    def outcome(self) -> Outcome | None:
        """How the response ended (None while it is in flight)."""
        return self._noted("outcome")  # type: ignore[no-any-return]

    def number(self, record_id: int) -> None:
        """Give the record its id (in place, when it is made already: only while nobody else holds it)."""
        self._id = record_id
        if self._record is not None:
            numbered(self._record, record_id)

    def note_selection(
        self, *, prompt: str, scenario: str, dialect: str, thresholds: Thresholds, endpoint: str | None = None
    ) -> None:
        """Note what the server made of the request."""
        notes = self._notes
        notes["prompt"] = prompt
        notes["scenario"] = scenario
        notes["dialect"] = dialect
        notes["thresholds"] = thresholds
        notes["endpoint"] = endpoint

    def note_faults(self, kinds: Iterable[str]) -> None:
        """Count the faults the request carries (its scenario's and its own), for the metrics."""
        if self._tally is not None:
            self._tally.carried(kinds)

    def note_stream(self, *, ids: bool, retry_ms: int | None, ending: Ending) -> None:
        """Note what the stream about to play will tell its client: ids, `retry:`, how it ends."""
        notes = self._notes
        notes["ids"] = ids
        notes["retry_ms"] = retry_ms
        notes["ending"] = ending

    def note_schedule(self, schedule: Schedule) -> None:
        """Note when the response about to play writes a `close` event and falls silent."""
        start_ms = self._elapsed_ms()

        def at(seconds: float | None) -> float | None:
            return None if seconds is None else round(start_ms + seconds * 1000, 3)

        notes = self._notes
        notes["close_at_ms"] = at(schedule.close_at_s)
        notes["stall_at_ms"] = at(schedule.stall_at_s)
        notes["stall_ms"] = None if schedule.stall_s is None else schedule.stall_s * 1000
        notes["due_end_ms"] = at(schedule.end_s)

    def note_conversation(self, key: str | None, trail: ToolTrail | None) -> None:
        """Note the request's conversation and what its history says about tool calls."""
        self._notes["conversation"] = key
        self._notes["tools"] = trail

    def note_tool_calls(self, calls: tuple[ToolCall, ...]) -> None:
        """Note the tool calls the answer makes: they count as handed out once its head is sent (`finish`)."""
        self._calls = calls

    def note_rate_limit(self, key: str) -> None:
        """Note the client the request's rate limits counted."""
        self._notes["rate_limit_key"] = key

    def note_rate_limited(self, scope: RateLimitScope) -> None:
        """Note that a rate limit refused the request (it is answered 429): the server's or the scenario's."""
        self._notes["rate_limited"] = scope

    def note_upstream(self, status: int | None, head_ms: float | None) -> None:
        """Note that the request was forwarded: the upstream's status and how long its head took."""
        self._notes["upstream_status"] = status
        self._notes["upstream_head_ms"] = head_ms

    def note_headers(self, headers: Iterable[tuple[str, str]]) -> None:
        """Note the response headers the verdict judges by (`Retry-After`)."""
        self._notes["retry_after"] = next((value for name, value in headers if name.lower() == "retry-after"), None)

    def finish(
        self,
        status: int | None,
        outcome: Outcome,
        events_sent: int = 0,
        last_id_sent: int | None = None,
        timing: EventTiming | None = None,
    ) -> None:
        """Note how the response ended; `status` None when the connection ended before the status line."""
        notes = self._notes
        if self._calls and status is not None:
            notes["tools"] = (self._noted("tools") or ToolTrail()).handed_out(self._calls)
        duration_ms = self._elapsed_ms()
        notes["status"] = status
        notes["outcome"] = outcome
        notes["events_sent"] = events_sent
        notes["last_id_sent"] = last_id_sent
        notes["duration_ms"] = duration_ms
        notes["events_timing"] = timing if timing is not None and timing.due_ms else None
        record = self.record  # final: made once, and what a finished entry holds (no notes left over)
        if self._tally is not None:
            due = record.due_end_ms
            late = duration_ms - due if outcome is Outcome.COMPLETED and due is not None else None
            self._tally.finished(record.endpoint, record.scenario, outcome.value, events_sent, late)
        if self._on_finish is not None:
            self._on_finish(self)

    def on_play_end(self, status: int) -> Callable[[PlayResult], None]:
        """A callback for the transport that finishes the record with how playing ended (with no status
        when the connection ended before the status line; `error_status` for an error status sent whole)."""

        def finish(result: PlayResult) -> None:
            outcome = result.outcome
            if status >= 400 and outcome is Outcome.COMPLETED:
                outcome = Outcome.ERROR_STATUS
            self.finish(
                status if result.head_sent else None, outcome, result.events_sent, result.last_id, result.timing
            )

        return finish

    def snapshot(self) -> RequestRecord:
        """The record as it is now, with headers and query of its own (the record itself cannot change)."""
        record = self.record
        return replace(record, query=dict(record.query), headers=dict(record.headers))

    def _noted(self, name: str) -> Any:
        """A field as it is now, without making a record for it."""
        if self._sent is not None and name in Sent.FIELDS:
            self._note_sent()
        notes = self._notes
        if name in notes:
            return notes[name]
        return _DEFAULTS[name] if self._record is None else getattr(self._record, name)

    def _note_sent(self) -> None:
        sent, self._sent = self._sent, None
        assert sent is not None
        self._notes.update(sent.fields())

    def _elapsed_ms(self) -> float:
        return round((time.perf_counter() - self._started) * 1000, 3)


class Sent:
    """What a client sent (query, headers, body), as a request arrived with it, until its record is
    read: the journal's copies of it (`fields`) are made then, secrets masked when `mask`."""

    __slots__ = ("body", "headers", "mask", "query")
    FIELDS = frozenset(("query", "headers", "body", "last_event_id"))
    """The record's fields made from it."""

    def __init__(
        self,
        query: Sequence[tuple[str, str]],
        headers: Sequence[tuple[bytes, bytes]],
        body: Any,
        mask: bool,
    ) -> None:
        self.query = query
        self.headers = headers
        self.body = body
        self.mask = mask

    def fields(self) -> dict[str, Any]:
        mask = self.mask
        headers = journal_headers(self.headers, mask=mask)
        return {
            "query": journal_query(self.query, mask=mask),
            "headers": headers,
            "body": mask_body(self.body) if mask else self.body,
            "last_event_id": headers.get("last-event-id"),
        }


_DEFAULTS = {field.name: field.default for field in dataclasses.fields(RequestRecord)}
"""What a field of a record is until it is noted (the fields a request arrives with are given at once)."""

MAX_ID_DIGITS = 18
"""A longer number is no id this journal could have given (and would not convert cheaply)."""


@dataclass(frozen=True, slots=True)
class Since:
    """`since=`: records with an id above `id`; `instance`, when given, must be the journal's own."""

    id: int
    instance: str | None = None

    @classmethod
    def parse(cls, text: str) -> Since:
        """`ID` or `INSTANCE:ID`; raises ValueError saying what is accepted."""
        instance, colon, number = text.strip().rpartition(":")
        if not (number.isascii() and number.isdigit()) or len(number) > MAX_ID_DIGITS or (colon and not instance):
            raise ValueError(
                f"since={text!r} is not a record id: give ID (a number) or INSTANCE:ID (the `instance` of "
                "/_mock/health, which makes a since from before a restart an error instead of a silent miss)"
            )
        return cls(int(number), instance or None)


def numbered(record: RequestRecord, record_id: int) -> RequestRecord:
    """`record` with its id, given in place: only for a record nobody else holds yet (just made or
    just read), where it spares copying every field (`dataclasses.replace`) on each request."""
    object.__setattr__(record, "id", record_id)
    return record


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


class Journal:
    """The request journal: masks what it keeps, counts for the metrics, answers `since`, and keeps
    its records in `log` (this process's memory by default)."""

    def __init__(
        self,
        log: RecordLog | None = None,
        wall_clock: Callable[[], float] = time.time,
        *,
        mask_secrets: bool = True,
        settle_poll_s: float = SETTLE_POLL_S,
        worker: int | None = None,
    ) -> None:
        self.log: RecordLog = log if log is not None else MemoryLog(wall_clock=wall_clock)
        self._wall_clock = wall_clock
        self.mask_secrets = mask_secrets
        self.settle_poll_s = settle_poll_s
        self.worker = worker
        """The worker this process is, which its records name (`serve --workers`)."""
        self.tally = Tally()
        """The counts since start, for the metrics (what `clear` forgets, these keep)."""

    @property
    def instance(self) -> str:
        return self.log.instance

    @property
    def started_at(self) -> float:
        return self.log.started_at

    def client_label(self, api_key: str | None, address: str | None) -> str:
        """How a record names the client its rate limits count: `key sk-...1234#5f2b9c0e1a7d` (the key
        fingerprinted, the same for the same key while this journal lives), else `address 127.0.0.1`."""
        return f"key {fingerprint(api_key, self.log.salt)}" if api_key else f"address {address or 'unknown'}"

    def new_entry(
        self,
        *,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Iterable[tuple[bytes, bytes]],
        body: Any,
        body_bytes: int = 0,
    ) -> Entry:
        """A new record of a request, not kept yet (its id is 0 until `keep`): `headers` as ASGI has
        them (raw name and value bytes), `body` as the journal keeps it and `body_bytes` its size on
        the wire."""
        query = query if isinstance(query, list | tuple) else tuple(query)
        headers = headers if isinstance(headers, list | tuple) else tuple(headers)
        size = RECORD_OVERHEAD_BYTES + body_bytes + sum(map(len, itertools.chain(*query, *headers)))
        fields = {"received_at": self._wall_clock(), "method": method, "path": path, "worker": self.worker}
        sent = Sent(query, headers, body, self.mask_secrets)
        return Entry(fields, size, self.tally, self.log.finished, sent)

    async def keep(self, entry: Entry) -> None:
        """Keep an entry made by `new_entry` (it gets its id), unless it is kept already."""
        if entry.id == 0:
            await self.log.add(entry)

    async def after(self, since: Since | int | None) -> int | None:
        """The id records must be above for `since` (None: every record). Raises RestartedError when
        `since` names another instance, or an id this journal has never given: the server restarted."""
        if since is None:
            return None
        if isinstance(since, int):
            since = Since(since)
        if since.instance is not None and since.instance != self.instance:
            raise RestartedError(
                f"since={since.instance}:{since.id} is from server instance {since.instance}, but this is instance "
                f"{self.instance}, started at {self.started_at:.3f} (Unix time): the server restarted, and its "
                "journal started afresh. Ask without since, or take ids from this instance."
            )
        last_id = await self.log.last_id()
        if since.id > last_id:
            raise RestartedError(
                f"since={since.id}: this server (instance {self.instance}, started at {self.started_at:.3f}) has "
                f"given ids up to {last_id} only, so that id is from before a restart. Ask without since, "
                "or take ids from this instance."
            )
        return since.id

    async def records(self, since: Since | int | None = None) -> list[RequestRecord]:
        """Snapshots of the records with an id above `since` (all without it), oldest first; raises
        RestartedError for a `since` from another instance (`after`)."""
        return await self.log.records(await self.after(since))

    async def settled(self, since: Since | int | None = None, timeout_s: float = 0.0) -> list[RequestRecord]:
        """Like `records`, after waiting up to `timeout_s` for responses in flight to end.

        A client that has read a response to its end (or hung up) may look before the server has
        seen that end; this bounded wait makes such a look reliable.
        """
        above = await self.after(since) or 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and await self.log.any_open(above):
            await asyncio.sleep(self.settle_poll_s)
        return await self.log.records(above or None)

    async def clear(self) -> int:
        """Forget every record; returns how many there were."""
        return await self.log.clear()
