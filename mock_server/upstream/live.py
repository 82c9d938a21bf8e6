"""A live upstream response made into actions as it arrives: its body cut into SSE events (AWS
event-stream frames for a Bedrock stream; for another body, pieces at the byte offsets faults name),
the request's faults placed between them, and what arrived handed to the recorder. It all happens in
the callback that received the piece, which hands the actions on to the stream playing them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mock_server.scenarios import steps
from mock_server.scenarios.recording import EventSplitter, is_comment_block
from mock_server.scenarios.steps import Ending
from mock_server.timeline.compile import FaultCursor
from mock_server.upstream.recorder import Capture
from mock_server.wire.actions import Action
from mock_server.wire.arrivals import LiveSink
from mock_server.wire.eventstream import CONTENT_TYPE as FRAMES
from mock_server.wire.eventstream import FrameSplitter
from mock_server.wire.rendering import LiveRenderer

if TYPE_CHECKING:  # the HTTP client is loaded only when there is an upstream
    from mock_server.upstream.proxy import UpstreamResponse

END_MARKERS = (b"data: [DONE]", b"event: message_stop", b"event: response.completed")
"""How a block that ends a provider's stream begins (`no_done` leaves it out)."""
COMMENT_OPENINGS = (b":", b"\r", b"\n")

Blocks = list[tuple[list[steps.Step], bytes]]
"""What one piece of the body brings: the steps of each block it completes (the faults due before
it, then the block itself) and the block's bytes, for the recorder."""


class LiveActions:
    """The actions of one live response, handed to a `LiveSink` one list per arrival (`start`), or,
    once nothing is left to place between its events, each arrival's bytes as they came (`passed`);
    `close` lets go of the upstream."""

    def __init__(
        self,
        response: UpstreamResponse,
        cursor: FaultCursor,
        renderer: LiveRenderer,
        capture: Capture | None,
        *,
        end_marker: bool,
    ) -> None:
        self._body = response.body
        self._head_at = response.body.head_at
        self._cursor = cursor
        self._renderer = renderer
        self._capture = capture
        self._end_marker = end_marker
        media_type = response.content_type.split(";")[0].strip().lower()
        self._splitter: EventSplitter | FrameSplitter | None = (
            EventSplitter() if media_type == "text/event-stream" else FrameSplitter() if media_type == FRAMES else None
        )
        self._sink: LiveSink | None = None
        self._events = 0
        """The upstream's events so far (SSE blocks or frames), comments aside."""
        self._offset = 0
        """The bytes so far of a body that is neither."""
        self._last_at = self._head_at
        self._whole: EventSplitter | None = None
        """The SSE splitter, once the stream is passed on whole (`_passing_on`)."""

    def start(self, sink: LiveSink) -> None:
        """Hand `sink` the actions of each arrival, then `ended()`: those that came already at once."""
        self._sink = sink
        self._body.read_into(self)

    def pause(self) -> None:
        self._body.pause_reading()

    def resume(self) -> None:
        self._body.resume_reading()

    def close(self) -> None:
        self._sink = None
        self._body.close()

    def received(self, data: bytes, at: float, last: bool) -> None:
        """One piece of the body (`client.BodyReader`): its actions go to the sink at once, in one list
        however many events it brings, as a scripted stream's events with no wait between them."""
        sink = self._sink
        if sink is None:
            return
        self._last_at = at
        if self._whole is None and isinstance(self._splitter, EventSplitter) and self._passing_on():
            # Nothing is left to place between events, record or leave out: from now on the blocks
            # go on in one write, without a step each.
            self._whole = self._splitter
        if self._whole is not None:
            # Nearly every arrival of a stream with no fault left: no step, no action, one write.
            whole, events = self._whole.feed_whole(data)
            self._events += events
            if not whole:
                return
            if self._renderer.passes_through:
                sink.passed(whole, events, at, last)
            else:
                sink.arrived(self._renderer.pass_on(whole, events), at)
            return
        actions = self._render(self._event_blocks(data) if self._splitter is not None else self._body_blocks(data), at)
        if actions:
            sink.arrived(actions, at)
        if self._renderer.ended:  # a fault ended the stream: the upstream is let go, unread
            self.close()
            sink.ended()

    def ended(self, broke: Ending | None, at: float) -> None:
        """The end of the body (`client.BodyReader`): what is left of it, then the faults still due, or
        the upstream's failure as it happened."""
        sink = self._sink
        if sink is None:
            return
        self._sink = None
        rest = self._splitter.rest() if self._splitter is not None else b""
        if self._whole is not None and broke is None and not rest:
            sink.ended()  # passed on whole to its end: no fault left, nothing recorded, nothing held back
            return
        blocks: Blocks = []
        if rest:
            blocks.append(([*self._cursor.before(self._events), steps.UpstreamEvent(rest)], rest))
        renderer = self._renderer
        for stream_steps, arrived in blocks:
            self._note(arrived, self._last_at)
            renderer.add(stream_steps)
        if broke is not None:  # the client meets the upstream's failure as it happened
            renderer.add([steps.Reset() if broke is Ending.RESET else steps.Drop()])
        elif not renderer.ended:
            if self._capture is not None:
                self._capture.complete = True
            renderer.add(self._cursor.rest())
        actions = renderer.take()
        if actions:
            sink.arrived(actions, self._last_at)
        sink.ended()

    def _note(self, arrived: bytes, at: float) -> None:
        if self._capture is not None and arrived:
            self._capture.add(arrived, (at - self._head_at) * 1000)

    def _render(self, blocks: Blocks, at: float) -> list[Action]:
        renderer = self._renderer
        for stream_steps, arrived in blocks:
            self._note(arrived, at)
            renderer.add(stream_steps)
            if renderer.ended:
                break
        return renderer.take()

    def _event_blocks(self, piece: bytes) -> Blocks:
        """The SSE blocks (or frames) `piece` completes: the steps of each (the faults due before it,
        then the event) and its bytes."""
        splitter = self._splitter
        assert splitter is not None
        arrived = splitter.feed(piece)
        if not arrived:
            return []
        cursor = self._cursor
        if self._passing_on():  # frames, each an event
            self._events += len(arrived)
            return [([steps.UpstreamEvents(b"".join(arrived), len(arrived))], b"")]
        blocks: Blocks = []
        for block in arrived:
            # Only a block that opens with a comment or a blank line can be all comments.
            if block.startswith(COMMENT_OPENINGS) and is_comment_block(block):
                blocks.append(([steps.UpstreamComments(block)], block))
                continue
            due_at = cursor.next_at()
            due = cursor.before(self._events) if due_at is not None and due_at <= self._events else []
            self._events += 1
            sent = self._end_marker or not block.startswith(END_MARKERS)
            blocks.append(([*due, steps.UpstreamEvent(block)] if sent else due, block))
        return blocks

    def _passing_on(self) -> bool:
        """Whether the rest of the stream needs nothing but passing on: no fault pending, nothing
        recorded, no end marker to leave out."""
        return self._capture is None and self._end_marker and self._cursor.next_at() is None

    def _body_blocks(self, piece: bytes) -> Blocks:
        """A body that is not SSE, in the pieces it arrives in, cut where a fault's `@N` (a byte
        offset here) falls inside one."""
        blocks: Blocks = []
        arrived = piece
        offset = self._offset
        while piece:
            due_at = self._cursor.next_at()
            if due_at is None or due_at >= offset + len(piece):
                blocks.append(([steps.UpstreamEvent(piece)], arrived))
                offset += len(piece)
                break
            cut = max(0, due_at - offset)
            head, piece = piece[:cut], piece[cut:]
            offset += len(head)
            blocks.append(([*([steps.UpstreamEvent(head)] if head else []), *self._cursor.before(offset)], arrived))
            arrived = b""
        self._offset = offset
        return blocks
