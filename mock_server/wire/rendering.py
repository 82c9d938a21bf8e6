"""Rendering a timeline through a dialect into the transport's ops, before the stream starts.

All JSON and SSE framing happens here, once per response; the transport then only waits and
writes. With `ids` on, every event the dialect renders is numbered from 1, so a request that
resumes after id N skips exactly what the client already has.

A response that is not streamed plays the same timeline: its waits add up to one wait before a
single JSON body (the dialect's `complete`), and what cuts a stream cuts the connection before
that body. SSE-only steps (raw events, comments, `close`, `malformed`) have no place in a JSON body
and are left out.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass

from mock_server.dialects import Dialect, DialectSpec, StreamInfo, collect_answer
from mock_server.scenarios import steps
from mock_server.timeline.cache import BoundedCache
from mock_server.timeline.compile import Timeline
from mock_server.wire import frames
from mock_server.wire.actions import Drop, Hang, Op, Reset, Wait, Write

COALESCE_BYTES = 64 * 1024
OP_BYTES = 100
"""An op with its slot in the stream, besides the bytes it writes (measured: about 97)."""


def render(timeline: Timeline, dialect: Dialect, resume_after: int | None = None) -> tuple[Op, ...]:
    """The ops that play `timeline`; with `resume_after`, only what follows the event with that id."""
    renderer = _Renderer(timeline, dialect)
    for step in timeline.steps:
        renderer.add(step)
    renderer.finish()
    ops = renderer.ops
    if resume_after is not None:
        ops = _after_event(ops, resume_after)
    return tuple(_coalesce(ops))


class RenderCache:
    """Rendered streams, the most recently used kept up to `max_bytes` (estimated): rendering is
    pure, and under load many requests render the very same stream (same timeline, second and resume
    point). Timelines are keyed by identity (the `TimelineCache` hands out one object per distinct
    timeline), which keeps a hit cheap however long the stream; the cache does not keep them alive."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self._cache: BoundedCache[tuple[object, ...], tuple[weakref.ref[Timeline], tuple[Op, ...]]] = BoundedCache(
            max_bytes
        )

    def render(
        self, timeline: Timeline, dialect: DialectSpec, info: StreamInfo, resume_after: int | None = None
    ) -> tuple[Op, ...]:
        """`render(timeline, dialect.stream(info), resume_after)`, from the cache when it can be."""
        key = (dialect.name, id(timeline), info, resume_after)
        entry = self._cache.get(key)
        if entry is not None and entry[0]() is timeline:  # the id of a timeline gone may be reused
            return entry[1]
        ops = render(timeline, dialect.stream(info), resume_after)
        size = len(info.model) + sum(OP_BYTES + (len(op.data) if isinstance(op, Write) else 0) for op in ops)
        self._cache.put(key, (weakref.ref(timeline), ops), size)
        return ops

    def clear(self) -> None:
        self._cache.clear()

    @property
    def bytes(self) -> int:
        """The estimated bytes of the streams kept."""
        return self._cache.bytes


@dataclass(frozen=True, slots=True)
class Schedule:
    """When, in seconds after a response starts playing, its ops write a `close` event and fall
    silent on purpose.

    The transport keeps one monotonic deadline per response, so these are the moments the client
    meets them (if it is still there); `stall_s` is None for a stall that lasts until the client leaves.
    """

    close_at_s: float | None = None
    stall_at_s: float | None = None
    stall_s: float | None = None


def schedule(ops: tuple[Op, ...]) -> Schedule:
    """The moments of the first `close` event and the first stall in `ops`, from their waits alone."""
    moment = 0.0
    close_at: float | None = None
    stall_at: float | None = None
    stall_s: float | None = None
    for op in ops:
        if isinstance(op, Write):
            if op.closes and close_at is None:
                close_at = moment
        elif isinstance(op, Wait):
            if op.stall and stall_at is None:
                stall_at, stall_s = moment, op.seconds
            moment += op.seconds
        else:  # a Hang is a stall with no end; a Drop or a Reset ends the stream
            if isinstance(op, Hang) and stall_at is None:
                stall_at = moment
            break
    return Schedule(close_at, stall_at, stall_s)


def last_id_sent(ops: tuple[Op, ...], events_sent: int) -> int | None:
    """The id of the last event among the first `events_sent` events of `ops` (None without ids)."""
    count = 0
    last: int | None = None
    for op in ops:
        if count >= events_sent:
            break
        if isinstance(op, Write) and op.events:
            count += op.events
            last = op.last_id if op.last_id is not None else last
    return last


def nothing_left(ops: tuple[Op, ...]) -> bool:
    """Whether a resumed stream has no event and no wire fault left to play: the client has it all."""
    return not any((isinstance(op, Write) and op.events) or isinstance(op, Hang | Drop | Reset) for op in ops)


@dataclass(frozen=True, slots=True)
class WholeResponse:
    """A non-streaming response: its status, its JSON body, and the ops that play it."""

    status: int
    body: bytes
    ops: tuple[Op, ...]


def render_whole(timeline: Timeline, dialect: DialectSpec, info: StreamInfo) -> WholeResponse:
    """The non-streaming response for `timeline`: after all its waits, one body (an HTTP error in
    the dialect's shape when the answer has an error), or the connection cut where the timeline
    drops, resets or stalls for good."""
    waited = 0.0
    split: steps.Split | None = None
    for step in timeline.steps:
        match step:
            case steps.Sleep(ms) | steps.Stall(ms) if ms is not None:
                waited += ms
            case steps.Split():
                split = step
            case steps.Drop():
                return WholeResponse(200, b"", (Wait(waited / 1000), Drop()))
            case steps.Reset():
                return WholeResponse(200, b"", (Wait(waited / 1000), Reset()))
            case steps.Stall():
                return WholeResponse(200, b"", (Wait(waited / 1000), Hang()))
    answer = collect_answer(timeline.steps)
    if answer.error is not None:
        status = dialect.error_status(answer.error)
        body = dialect.error_body(status, answer.error)
    else:
        status, body = 200, dialect.complete(info, answer)
    data = frames.to_json(body).encode()
    return WholeResponse(status, data, (Wait(waited / 1000), *_writes(data, split, events=1)))


class _Renderer:
    def __init__(self, timeline: Timeline, dialect: Dialect) -> None:
        self.timeline = timeline
        self.dialect = dialect
        self.ops: list[Op] = []
        self._started = False
        self._next_id = 1
        self._split: steps.Split | None = None
        self._ended = False

    def add(self, step: steps.Step) -> None:
        match step:
            case steps.Sleep(ms):
                self.ops.append(Wait(ms / 1000))
            case steps.Stall(ms):
                self.ops.append(Hang() if ms is None else Wait(ms / 1000, keepalive=False, stall=True))
            case steps.Split():
                self._split = step
            case steps.Drop():
                self.ops.append(Drop())
            case steps.Reset():
                self.ops.append(Reset())
            case steps.RawEvent(None, None, None, retry) if retry is not None:
                self._write(frames.encode_retry(retry), events=0)
            case steps.RawEvent(event, data, event_id, retry):
                encoded = frames.encode(frames.Event(data, event=event, id=event_id, retry=retry))
                self._write(encoded, events=int(data is not None), closes=event == "close")
            case steps.Comment(text):
                self._write(frames.encode_comment(text), events=0)
            case steps.Raw(data):
                self._write(data, events=data.count(b"\n\n") + data.count(b"\r\n\r\n"))
            case _:
                self._content(step)
        if steps.ends_stream(step):
            self._ended = True

    def finish(self) -> None:
        if self._ended or not self.timeline.end_marker:
            return
        self._ensure_started()
        for event in self.dialect.end():
            self._event(event)

    def _content(self, step: steps.ContentStep) -> None:
        self._ensure_started()
        for event in self.dialect.render(step):
            self._event(event)

    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            for event in self.dialect.start():
                self._event(event)

    def _event(self, event: frames.Event) -> None:
        if not self.timeline.ids:
            self._write(frames.encode(event), events=1)
            return
        event_id = self._next_id
        self._next_id += 1
        numbered = frames.Event(event.data, event=event.event, id=str(event_id), retry=event.retry)
        self._write(frames.encode(numbered), events=1, last_id=event_id)

    def _write(self, data: bytes, *, events: int, last_id: int | None = None, closes: bool = False) -> None:
        split, self._split = self._split, None
        self.ops.extend(_writes(data, split, events=events, last_id=last_id, closes=closes))


def _writes(
    data: bytes, split: steps.Split | None, *, events: int, last_id: int | None = None, closes: bool = False
) -> list[Op]:
    """One write of `data`, or its pieces `split.ms` apart; the events count when the last piece is sent."""
    if split is None:
        return [Write(data, events, last_id, closes)]
    ops: list[Op] = []
    pieces = split_points(data, split.pieces)
    for i, piece in enumerate(pieces):
        if i:
            ops.append(Wait(split.ms / 1000, keepalive=False))
        last = i == len(pieces) - 1
        ops.append(Write(piece, events if last else 0, last_id if last else None, closes and last))
    return ops


def split_points(data: bytes, pieces: int) -> list[bytes]:
    """Cut `data` into up to `pieces` parts; the first cut falls inside a multi-byte UTF-8 character
    when there is one, the rest are spread evenly."""
    pieces = max(1, min(pieces, len(data)))
    cuts = {round(len(data) * i / pieces) for i in range(1, pieces)}
    lead = next((i for i, byte in enumerate(data) if byte >= 0xC0), None)
    if lead is not None and pieces > 1:
        nearest = min(cuts, key=lambda c: abs(c - lead))
        cuts.discard(nearest)
        cuts.add(lead + 1)
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _after_event(ops: list[Op], event_id: int) -> list[Op]:
    """The preamble (the `retry:` field and comments the stream opens with) and what follows the
    event `event_id`; just the preamble when the stream never got that far (ids start at 1, so 0 is
    before the first event: everything)."""
    if event_id < 1:
        return ops
    preamble: list[Op] = list(itertools.takewhile(_is_whole_non_event, ops))
    for index, op in enumerate(ops):
        if isinstance(op, Write) and op.last_id == event_id:
            return [*preamble, *ops[index + 1 :]]
    return preamble


def _is_whole_non_event(op: Op) -> bool:
    # A piece of a split event has no event either, but only a whole block ends with the blank line
    # (or is the lone `retry:` line).
    return isinstance(op, Write) and not op.events and (op.data.endswith(b"\n\n") or _is_retry_line(op.data))


def _is_retry_line(data: bytes) -> bool:
    return data.startswith(b"retry: ") and data.endswith(b"\n") and data.count(b"\n") == 1


def _coalesce(ops: list[Op]) -> list[Op]:
    """Merge writes that follow each other with no wait (up to COALESCE_BYTES): one `send`, not many."""
    out: list[Op] = []
    run: list[Write] = []
    size = 0

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            ids = [w.last_id for w in run if w.last_id is not None]
            data = b"".join(w.data for w in run)
            out.append(Write(data, sum(w.events for w in run), ids[-1] if ids else None, any(w.closes for w in run)))
        run.clear()

    for op in ops:
        if isinstance(op, Write) and size + len(op.data) <= COALESCE_BYTES:
            run.append(op)
            size += len(op.data)
            continue
        flush()
        size = 0
        if isinstance(op, Write):
            run.append(op)
            size = len(op.data)
        else:
            out.append(op)
    flush()
    return out
