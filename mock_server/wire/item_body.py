"""A JSON answer made of items (the vectors of an embeddings request), played item by item, so that
a timeline's faults fall between items as they fall between a stream's chunks.

The status line, the headers (with the whole body's `Content-Length`) and the body's opening go out
when the answer is due, after the waits placed before the first item; `@N` then strikes after the
N-th item, and a fault beyond the last item before the body's closing. A drop or a reset leaves the
client a body shorter than its `Content-Length`; a stall without `ms` leaves it waiting for the
rest. An `error` fault makes the whole answer an HTTP error, as for any response that is not
streamed. Stream-only steps (events, comments, `malformed`, `duplicate`) have no place in a JSON
body and are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mock_server.scenarios import steps
from mock_server.timeline.compile import Timeline
from mock_server.wire.actions import Action, Drop, Hang, Reset, Wait, Write
from mock_server.wire.rendering import COALESCE_BYTES, split_points


@dataclass(frozen=True, slots=True)
class ItemBody:
    """A JSON body: `opening`, the items with `separator` between them, `closing`."""

    opening: bytes
    items: Sequence[bytes]
    closing: bytes
    separator: bytes = b","

    @property
    def length(self) -> int:
        separators = len(self.separator) * max(0, len(self.items) - 1)
        return len(self.opening) + sum(map(len, self.items)) + separators + len(self.closing)


@dataclass(frozen=True, slots=True)
class RenderedBody:
    """What plays an item body: its status, the length of the body when whole, and the actions."""

    status: int
    length: int
    actions: tuple[Action, ...]


ErrorAnswer = Callable[[steps.ErrorEvent], tuple[int, bytes]]
"""The status and body of the HTTP error an `error` step becomes."""


def render_items(timeline: Timeline, body: ItemBody, error: ErrorAnswer) -> RenderedBody:
    """The actions that play `body` with `timeline`'s waits, splits and cuts between its items; the
    timeline holds one chunk step for each item (`RequestContext.items`)."""
    failure = next((step for step in timeline.steps if isinstance(step, steps.ErrorEvent)), None)
    if failure is not None:
        return _error(timeline, failure, error)
    writer = _Writer(body)
    for step in timeline.steps:
        match step:
            case steps.Sleep(ms):
                writer.wait(Wait(ms / 1000, keepalive=False))
            case steps.Stall(ms) if ms is not None:
                writer.wait(Wait(ms / 1000, keepalive=False, stall=True))
            case steps.Split():
                writer.split = step
            case steps.Text():
                writer.item()
            case steps.Drop():
                return RenderedBody(200, body.length, writer.cut(Drop()))
            case steps.Reset():
                return RenderedBody(200, body.length, writer.cut(Reset()))
            case steps.Stall():
                return RenderedBody(200, body.length, writer.cut(Hang()))
    writer.rest()
    return RenderedBody(200, body.length, writer.finished())


def _error(timeline: Timeline, failure: steps.ErrorEvent, error: ErrorAnswer) -> RenderedBody:
    """The HTTP error `failure` answers with, after the waits placed before it."""
    waited = 0.0
    for step in timeline.steps:
        if step is failure:
            break
        if isinstance(step, steps.Sleep | steps.Stall) and step.ms is not None:
            waited += step.ms
    status, data = error(failure)
    return RenderedBody(status, len(data), (Wait(waited / 1000, keepalive=False), Write(data, 1)))


class _Writer:
    """Writes an item body in order, merging writes that follow each other with no wait between."""

    def __init__(self, body: ItemBody) -> None:
        self._body = body
        self._next = 0
        self._opened = False
        self._actions: list[Action] = []
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_items = 0
        self.split: steps.Split | None = None

    def wait(self, wait: Wait) -> None:
        self._flush()
        self._actions.append(wait)

    def item(self) -> None:
        if self._next >= len(self._body.items):
            return
        self._open()
        split, self.split = self.split, None
        index = self._next
        self._next += 1
        data = self._body.items[index]
        self._write(self._body.separator + data if index else data, items=1, split=split)

    def cut(self, action: Action) -> tuple[Action, ...]:
        """The actions so far, the opening at least, then `action`, which ends the body there."""
        self._open()
        self._flush()
        self._actions.append(action)
        return tuple(self._actions)

    def rest(self) -> None:
        """The items not written yet, and the closing (in pieces after a split beyond the last item)."""
        while self._next < len(self._body.items):
            self.item()
        self._open()
        split, self.split = self.split, None
        self._write(self._body.closing, items=0, split=split)

    def finished(self) -> tuple[Action, ...]:
        self._flush()
        return tuple(self._actions)

    def _open(self) -> None:
        if not self._opened:
            self._opened = True
            self._write(self._body.opening, items=0)

    def _write(self, data: bytes, *, items: int, split: steps.Split | None = None) -> None:
        if split is not None:
            self._flush()
            pieces = split_points(data, split.pieces)
            for number, piece in enumerate(pieces):
                if number:
                    self._actions.append(Wait(split.ms / 1000, keepalive=False))
                self._actions.append(Write(piece, items if number == len(pieces) - 1 else 0))
            return
        if self._pending_bytes + len(data) > COALESCE_BYTES:
            self._flush()
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._pending_items += items

    def _flush(self) -> None:
        if self._pending:
            self._actions.append(Write(b"".join(self._pending), self._pending_items))
            self._pending, self._pending_bytes, self._pending_items = [], 0, 0
