"""Rendering a timeline into the actions the transport plays, before the stream starts.

All JSON and SSE framing happens here (through `frames`), once per response; the transport then only
waits and writes. The content steps are rendered by a `StreamRenderer`, which a dialect provides.
With `ids` on, every event the dialect renders is numbered from 1, so a request that resumes after
id N skips exactly what the client already has.

A response that is not streamed plays the same timeline: its waits add up to one wait before a
single JSON body (which the dialect writes), and what cuts a stream cuts the connection before that
body. SSE-only steps (raw events, comments, `close`, `malformed`) have no place in a JSON body and
are left out. A stream framed otherwise (NDJSON) has no comments, ids or `retry:` either: a raw
event is its data alone, written in the stream's framing.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from mock_server.scenarios import steps
from mock_server.timeline.cache import BoundedCache
from mock_server.timeline.compile import Timeline
from mock_server.wire import frames
from mock_server.wire.actions import ENDS_PLAY, Action, Drop, Hang, Reset, Schedule, Wait, Write, schedule_of
from mock_server.wire.framing import SSE, Framing

COALESCE_BYTES = 64 * 1024
ACTION_BYTES = 100
"""An action with its slot in the stream, besides the bytes it writes (measured: about 97)."""


class StreamRenderer(Protocol):
    """What renders one response's content steps into SSE events: a dialect's, for one response
    (it may keep state from one step to the next)."""

    def start(self) -> list[frames.Event]:
        """Events sent before the first content step (Anthropic's message_start, Responses' response.created)."""

    def events(self, step: steps.ContentStep) -> list[frames.Event]:
        """The events for one content step."""

    def end(self) -> list[frames.Event]:
        """The end marker sent after a complete answer (`data: [DONE]`, `message_stop`, `response.completed`),
        unless the scenario drops it."""


@dataclass(frozen=True, slots=True)
class RenderedStream:
    """A stream ready to play: its actions, when they write a `close` event and fall silent, and
    whether anything is left for the client of a resumed stream."""

    actions: tuple[Action, ...]
    schedule: Schedule
    nothing_left: bool
    """No event and no wire fault to play: a resumed client has it all (the answer is a 204)."""


def render_stream(
    timeline: Timeline, renderer: StreamRenderer, resume_after: int | None = None, framing: Framing = SSE
) -> RenderedStream:
    """The stream that plays `timeline`, its events written as `framing` writes them; with
    `resume_after`, only what follows the event with that id."""
    rendering = _Renderer(timeline, lambda: renderer, framing)
    for step in timeline.steps:
        rendering.add(step)
    rendering.finish()
    actions = rendering.actions
    if resume_after is not None:
        actions = _after_event(actions, resume_after, rendering.preamble)
    played = tuple(_coalesce(actions))
    nothing_left = not any((isinstance(a, Write) and a.events) or isinstance(a, ENDS_PLAY) for a in played)
    return RenderedStream(played, schedule_of(played), nothing_left)


class StreamCache:
    """Rendered streams, the most recently used kept up to `max_bytes` (estimated): rendering is
    pure, and under load many requests render the very same stream (same timeline, second and resume
    point). Timelines are keyed by identity (the `TimelineCache` hands out one object per distinct
    timeline), which keeps a hit cheap however long the stream; the cache does not keep them alive."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self._cache: BoundedCache[tuple[object, ...], tuple[weakref.ref[Timeline], RenderedStream]] = BoundedCache(
            max_bytes
        )

    def stream(
        self,
        timeline: Timeline,
        renderer: Callable[[], StreamRenderer],
        resume_after: int | None = None,
        *,
        key: Hashable,
        framing: Framing = SSE,
    ) -> RenderedStream:
        """`render_stream(timeline, renderer(), resume_after, framing)`, from the cache when it can be;
        `key` stands for the renderer (its dialect and what it puts in every event)."""
        cache_key = (key, id(timeline), resume_after, framing)
        entry = self._cache.get(cache_key)
        if entry is not None and entry[0]() is timeline:  # the id of a timeline gone may be reused
            return entry[1]
        rendered = render_stream(timeline, renderer(), resume_after, framing)
        size = sum(ACTION_BYTES + (len(a.data) if isinstance(a, Write) else 0) for a in rendered.actions)
        self._cache.put(cache_key, (weakref.ref(timeline), rendered), size)
        return rendered

    def clear(self) -> None:
        self._cache.clear()

    @property
    def bytes(self) -> int:
        """The estimated bytes of the streams kept."""
        return self._cache.bytes


@dataclass(frozen=True, slots=True)
class WholeResponse:
    """A non-streaming response: its status, its JSON body, and the actions that play it."""

    status: int
    body: bytes
    actions: tuple[Action, ...]


def render_whole(timeline: Timeline, answer: Callable[[], tuple[int, bytes]]) -> WholeResponse:
    """The non-streaming response for `timeline`: after all its waits, the status and body `answer`
    gives (the dialect's), or the connection cut where the timeline drops, resets or stalls for good."""
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
    status, body = answer()
    return WholeResponse(status, body, (Wait(waited / 1000), *_writes(body, split, events=1)))


class LiveRenderer:
    """Renders a live stream's steps as they come (an upstream's events, the faults placed between
    them): `add` the steps of what arrived, then `take` their actions. The dialect's renderer is
    built (`renderer()`) only if a fault writes an event of its own."""

    def __init__(self, timeline: Timeline, renderer: Callable[[], StreamRenderer], framing: Framing = SSE) -> None:
        self._renderer = _Renderer(timeline, renderer, framing)

    def add(self, stream_steps: list[steps.Step]) -> None:
        """Render `stream_steps`, unless a step has ended the stream."""
        rendering = self._renderer
        for step in stream_steps:
            if rendering.ended:
                break
            if type(step) is steps.UpstreamEvent and rendering.plain:  # nearly every step: skip the match
                rendering.actions.append(Write(step.data, 1))
            else:
                rendering.add(step)

    def pass_on(self, data: bytes, events: int) -> list[Action]:
        """The actions of upstream events passed on whole (`steps.UpstreamEvents`), with those of the
        steps added before them: one write, unless a `split` or `duplicate` waits for it."""
        self.add([steps.UpstreamEvents(data, events)])
        return self.take()

    @property
    def passes_through(self) -> bool:
        """Whether upstream events passed on whole would be one write of their bytes as they came
        (`pass_on`): no `split` or `duplicate` waits for them, nothing is rendered before them, and
        the stream goes on."""
        rendering = self._renderer
        return rendering.plain and not rendering.actions and not rendering.ended

    def take(self) -> list[Action]:
        """The actions of the steps added since the last call, whole events that follow each other
        merged into one write (what a fault cuts stays in its pieces)."""
        rendering = self._renderer
        new, rendering.actions = rendering.actions, []
        return _coalesce(new, events_only=True) if len(new) > 1 else new

    @property
    def ended(self) -> bool:
        """True once a step has ended the stream."""
        return self._renderer.ended


class _Renderer:
    def __init__(self, timeline: Timeline, renderer: Callable[[], StreamRenderer], framing: Framing = SSE) -> None:
        self.timeline = timeline
        self._make_renderer = renderer
        self.framing = framing
        self._events = 0
        """The events written so far (a framing may write the first one differently)."""
        self.actions: list[Action] = []
        self.preamble = 0
        """How many whole writes without an event (the `retry:` field, comments) the stream opens with."""
        self._started = timeline.from_upstream  # an upstream's stream opens with its own events
        self._next_id = 1
        self._split: steps.Split | None = None
        self._duplicate = False
        self.ended = False

    def add(self, step: steps.Step) -> None:
        match step:
            case steps.Sleep(ms):
                self.actions.append(Wait(ms / 1000))
            case steps.Stall(ms):
                self.actions.append(Hang() if ms is None else Wait(ms / 1000, keepalive=False, stall=True))
            case steps.Split():
                self._split = step
            case steps.Duplicate():
                self._duplicate = True
            case steps.Drop():
                self.actions.append(Drop())
            case steps.Reset():
                self.actions.append(Reset())
            case steps.RawEvent(event, data) if not self.framing.sse:
                # Its data, and its name for a framing that names events (Bedrock's frames); ids,
                # `retry:` and comments are SSE's.
                if data is not None:
                    self._event(frames.Event(data, event=event))
            case steps.Comment() if not self.framing.sse:
                pass
            case steps.RawEvent(None, None, None, retry) if retry is not None:
                self._write(frames.encode_retry(retry), events=0, opening=True)
            case steps.RawEvent(event, data, event_id, retry):
                encoded = frames.encode(frames.Event(data, event=event, id=event_id, retry=retry))
                self._write(encoded, events=int(data is not None), closes=event == "close", opening=data is None)
            case steps.Comment(text):
                self._write(frames.encode_comment(text), events=0, opening=True)
            case steps.Raw(data):
                self._write(data, events=data.count(b"\n\n") + data.count(b"\r\n\r\n"))
            case steps.UpstreamEvent(data):
                self._write(data, events=1)
            case steps.UpstreamComments(data):
                self._write(data, events=0)
            case steps.UpstreamEvents(data, events):
                self._write(data, events=events)
            case _:
                self._content(step)
        if steps.ends_stream(step):
            self.ended = True

    @cached_property
    def renderer(self) -> StreamRenderer:
        """The dialect's renderer, built for the first event of its own: a live stream may write none."""
        return self._make_renderer()

    @property
    def plain(self) -> bool:
        """No `split` or `duplicate` waits for the next write: it goes out whole, once."""
        return self._split is None and not self._duplicate

    def finish(self) -> None:
        if self.ended or not self.timeline.end_marker:
            return
        self._ensure_started()
        for event in self.renderer.end():
            self._event(event)
        closing = self.framing.close(self._events)
        if closing:
            self._write(closing, events=0)

    def _content(self, step: steps.ContentStep) -> None:
        self._ensure_started()
        for event in self.renderer.events(step):
            self._event(event)

    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            for event in self.renderer.start():
                self._event(event)

    def _event(self, event: frames.Event) -> None:
        index, self._events = self._events, self._events + 1
        if not (self.timeline.ids and self.framing.sse):
            self._write(self.framing.event(event, index), events=1)
            return
        event_id = self._next_id
        self._next_id += 1
        numbered = frames.Event(event.data, event=event.event, id=str(event_id), retry=event.retry)
        self._write(self.framing.event(numbered, index), events=1, last_id=event_id)

    def _write(
        self, data: bytes, *, events: int, last_id: int | None = None, closes: bool = False, opening: bool = False
    ) -> None:
        """Write `data` (in pieces after a `split`); `opening` blocks (`retry:`, comments, events without
        data) written whole before anything else are the preamble a resumed stream opens with again."""
        split, self._split = self._split, None
        if opening and split is None and self.preamble == len(self.actions):
            self.preamble += 1
        text_at = self.framing.text_at(data) if split is not None else 0
        writes = _writes(data, split, events=events, last_id=last_id, closes=closes, text_at=text_at)
        self.actions.extend(writes)
        if self._duplicate and events:  # the next event goes out twice, bytes and id alike
            self._duplicate = False
            self.actions.extend(writes)


def _writes(
    data: bytes,
    split: steps.Split | None,
    *,
    events: int,
    last_id: int | None = None,
    closes: bool = False,
    text_at: int = 0,
) -> list[Action]:
    """One write of `data`, or its pieces `split.ms` apart (a cut inside a character of the text from
    `text_at` on); the events count when the last piece is sent."""
    if split is None:
        return [Write(data, events, last_id, closes)]
    actions: list[Action] = []
    pieces = split_points(data, split.pieces, text_at)
    for i, piece in enumerate(pieces):
        if i:
            actions.append(Wait(split.ms / 1000, keepalive=False))
        last = i == len(pieces) - 1
        actions.append(Write(piece, events if last else 0, last_id if last else None, closes and last))
    return actions


def split_points(data: bytes, pieces: int, text_at: int = 0) -> list[bytes]:
    """Cut `data` into up to `pieces` parts; the first cut falls inside a multi-byte UTF-8 character
    (the first from `text_at` on) when there is one, the rest are spread evenly."""
    pieces = max(1, min(pieces, len(data)))
    cuts = {round(len(data) * i / pieces) for i in range(1, pieces)}
    lead = _first_character(data, text_at)
    if lead is not None and pieces > 1:
        nearest = min(cuts, key=lambda c: abs(c - lead))
        cuts.discard(nearest)
        cuts.add(lead + 1)
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _first_character(data: bytes, start: int = 0) -> int | None:
    """Where the first multi-byte UTF-8 character from `start` on starts: a lead byte followed by as
    many continuation bytes as it announces."""
    for index in range(start, len(data)):
        byte = data[index]
        if byte >= 0xC0:
            follow = 1 if byte < 0xE0 else 2 if byte < 0xF0 else 3
            continuation = data[index + 1 : index + 1 + follow]
            if len(continuation) == follow and all(0x80 <= c < 0xC0 for c in continuation):
                return index
    return None


def _after_event(actions: list[Action], event_id: int, preamble: int) -> list[Action]:
    """The first `preamble` actions (the `retry:` field and comments the stream opens with) and what
    follows the event `event_id`; just the preamble when the stream never got that far (ids start at
    1, so 0 is before the first event: everything)."""
    if event_id < 1:
        return actions
    for index, action in enumerate(actions):
        if isinstance(action, Write) and action.last_id == event_id:
            return [*actions[:preamble], *actions[index + 1 :]]
    return actions[:preamble]


def _coalesce(actions: list[Action], *, events_only: bool = False) -> list[Action]:
    """Merge writes that follow each other with no wait (up to COALESCE_BYTES): one `send`, not many.
    With `events_only`, a write that ends no event (a piece of a split event, comments) goes alone."""
    out: list[Action] = []
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

    for action in actions:
        if isinstance(action, Write) and (action.events > 0 or not events_only):
            if size + len(action.data) > COALESCE_BYTES:
                flush()
                size = 0
            run.append(action)
            size += len(action.data)
        else:
            flush()
            size = 0
            out.append(action)
    flush()
    return out
