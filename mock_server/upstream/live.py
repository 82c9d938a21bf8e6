"""A live upstream response made into actions as it arrives: its body cut into SSE events (AWS
event-stream frames for a Bedrock stream; for another body, pieces at the byte offsets faults name),
the request's faults placed between them, and what arrived handed to the recorder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from mock_server.scenarios import steps
from mock_server.scenarios.recording import EventSplitter, is_comment_block
from mock_server.scenarios.steps import Ending
from mock_server.timeline.compile import FaultCursor
from mock_server.upstream.recorder import Capture
from mock_server.wire.actions import Action
from mock_server.wire.eventstream import CONTENT_TYPE as FRAMES
from mock_server.wire.eventstream import FrameSplitter
from mock_server.wire.rendering import LiveRenderer

if TYPE_CHECKING:  # the HTTP client is loaded only when there is an upstream
    from mock_server.upstream.proxy import UpstreamResponse

END_MARKERS = (b"data: [DONE]", b"event: message_stop", b"event: response.completed")
"""How a block that ends a provider's stream begins (`no_done` leaves it out)."""
COMMENT_OPENINGS = (b":", b"\r", b"\n")


class LiveActions:
    """The actions of one live response, one list per arrival; `aclose` lets go of the upstream."""

    def __init__(
        self,
        response: UpstreamResponse,
        cursor: FaultCursor,
        renderer: LiveRenderer,
        capture: Capture | None,
        *,
        end_marker: bool,
    ) -> None:
        self._response = response
        self._cursor = cursor
        self._renderer = renderer
        self._capture = capture
        self._end_marker = end_marker
        media_type = response.content_type.split(";")[0].strip().lower()
        self._splitter: type[EventSplitter] | type[FrameSplitter] | None = (
            EventSplitter if media_type == "text/event-stream" else FrameSplitter if media_type == FRAMES else None
        )

    def __aiter__(self) -> AsyncIterator[tuple[list[Action], float]]:
        return self._play()

    async def aclose(self) -> None:
        await self._response.aclose()

    async def _play(self) -> AsyncIterator[tuple[list[Action], float]]:
        response, renderer, capture = self._response, self._renderer, self._capture
        head_at = response.arrived_at()
        arrivals = self._event_arrivals(self._splitter()) if self._splitter is not None else self._body_arrivals()
        # One list of actions per arrival, however many events it brings: the transport then writes
        # them at once, as it writes a scripted stream's events that have no wait between them.
        async for blocks in arrivals:
            arrived_at = response.arrived_at()
            for stream_steps, arrived in blocks:
                if capture is not None and arrived:
                    capture.add(arrived, (arrived_at - head_at) * 1000)
                renderer.add(stream_steps)
                if renderer.ended:
                    break
            actions = renderer.take()
            if actions:
                yield actions, arrived_at
            if renderer.ended:
                return  # a fault ended the stream: the upstream is let go, unread
        if response.broke is not None:  # the client meets the upstream's failure as it happened
            renderer.add([steps.Reset() if response.broke is Ending.RESET else steps.Drop()])
            yield renderer.take(), response.arrived_at()
            return
        if capture is not None:
            capture.complete = True
        renderer.add(self._cursor.rest())
        actions = renderer.take()
        if actions:
            yield actions, response.arrived_at()

    async def _event_arrivals(
        self, splitter: EventSplitter | FrameSplitter
    ) -> AsyncIterator[list[tuple[list[steps.Step], bytes]]]:
        """For each piece of the body, the SSE blocks (or frames) it completes: the steps of each (the
        faults due before it, then the event) and its bytes."""
        cursor = self._cursor
        index = 0
        async for piece in self._response.pieces():
            blocks: list[tuple[list[steps.Step], bytes]] = []
            arrived = splitter.feed(piece)
            if self._passing_on():
                # Nothing is left to place between events, record or leave out: the blocks go on
                # in one write, without a step each.
                events = sum(
                    1 for block in arrived if not (block.startswith(COMMENT_OPENINGS) and is_comment_block(block))
                )
                if arrived:
                    yield [([steps.UpstreamEvents(b"".join(arrived), events)], b"")]
                continue
            for block in arrived:
                # Only a block that opens with a comment or a blank line can be all comments.
                if block.startswith(COMMENT_OPENINGS) and is_comment_block(block):
                    blocks.append(([steps.UpstreamComments(block)], block))
                    continue
                due_at = cursor.next_at()
                due = cursor.before(index) if due_at is not None and due_at <= index else []
                index += 1
                sent = self._end_marker or not block.startswith(END_MARKERS)
                blocks.append(([*due, steps.UpstreamEvent(block)] if sent else due, block))
            if blocks:
                yield blocks
        rest = splitter.rest()
        if rest:
            yield [([*cursor.before(index), steps.UpstreamEvent(rest)], rest)]

    def _passing_on(self) -> bool:
        """Whether the rest of the stream needs nothing but passing on: no fault pending, nothing
        recorded, no end marker to leave out."""
        return self._capture is None and self._end_marker and self._cursor.next_at() is None

    async def _body_arrivals(self) -> AsyncIterator[list[tuple[list[steps.Step], bytes]]]:
        """A body that is not SSE, in the pieces it arrives in, cut where a fault's `@N` (a byte
        offset here) falls inside one."""
        offset = 0
        async for piece in self._response.pieces():
            arrived = piece
            while piece:
                due_at = self._cursor.next_at()
                if due_at is None or due_at >= offset + len(piece):
                    yield [([steps.UpstreamEvent(piece)], arrived)]
                    offset += len(piece)
                    break
                cut = max(0, due_at - offset)
                head, piece = piece[:cut], piece[cut:]
                offset += len(head)
                yield [([*([steps.UpstreamEvent(head)] if head else []), *self._cursor.before(offset)], arrived)]
                arrived = b""
