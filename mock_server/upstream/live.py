"""A live upstream response made into actions as it arrives: its body cut into SSE events (or, for a
body that is not SSE, into pieces at the byte offsets faults name), the request's faults placed
between them, and what arrived handed to the recorder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from mock_server.scenarios import steps
from mock_server.scenarios.recording import EventSplitter, is_comment_block
from mock_server.scenarios.steps import Ending
from mock_server.timeline.compile import FaultCursor
from mock_server.upstream.proxy import UpstreamResponse
from mock_server.upstream.recorder import Capture
from mock_server.wire.actions import Action
from mock_server.wire.rendering import LiveRenderer

END_MARKERS = (b"data: [DONE]", b"event: message_stop", b"event: response.completed")
"""How a block that ends a provider's stream begins (`no_done` leaves it out)."""


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
        self._sse = response.content_type.split(";")[0].strip().lower() == "text/event-stream"

    def __aiter__(self) -> AsyncIterator[list[Action]]:
        return self._play()

    async def aclose(self) -> None:
        await self._response.aclose()

    async def _play(self) -> AsyncIterator[list[Action]]:
        clock = asyncio.get_running_loop().time
        started = clock()
        blocks = self._sse_blocks() if self._sse else self._body_pieces()
        async for stream_steps, arrived in blocks:
            if self._capture is not None and arrived:
                self._capture.add(arrived, (clock() - started) * 1000)
            actions = self._renderer.actions(stream_steps)
            if actions:
                yield actions
            if self._renderer.ended:
                return  # a fault ended the stream: the upstream is let go, unread
        if self._response.broke is not None:  # the client meets the upstream's failure as it happened
            yield self._renderer.actions([steps.Reset() if self._response.broke is Ending.RESET else steps.Drop()])
            return
        if self._capture is not None:
            self._capture.complete = True
        actions = self._renderer.actions(self._cursor.rest())
        if actions:
            yield actions

    async def _sse_blocks(self) -> AsyncIterator[tuple[list[steps.Step], bytes]]:
        splitter = EventSplitter()
        index = 0
        async for piece in self._response.pieces():
            blocks = splitter.feed(piece)
            if self._passing_on():
                # Nothing is left to place between events, record or leave out: the blocks go on
                # in one write, without a step each.
                events = sum(1 for block in blocks if not (block.startswith(b":") and is_comment_block(block)))
                yield [steps.UpstreamEvents(b"".join(blocks), events)], b""
                continue
            for block in blocks:
                if is_comment_block(block):
                    yield [steps.UpstreamComments(block)], block
                    continue
                due = self._cursor.before(index)
                index += 1
                sent = self._end_marker or not block.startswith(END_MARKERS)
                yield [*due, steps.UpstreamEvent(block)] if sent else due, block
        rest = splitter.rest()
        if rest:
            yield [*self._cursor.before(index), steps.UpstreamEvent(rest)], rest

    def _passing_on(self) -> bool:
        """Whether the rest of the stream needs nothing but passing on: no fault pending, nothing
        recorded, no end marker to leave out."""
        return self._capture is None and self._end_marker and self._cursor.next_at() is None

    async def _body_pieces(self) -> AsyncIterator[tuple[list[steps.Step], bytes]]:
        """A body that is not SSE, in the pieces it arrives in, cut where a fault's `@N` (a byte
        offset here) falls inside one."""
        offset = 0
        async for piece in self._response.pieces():
            arrived = piece
            while piece:
                due_at = self._cursor.next_at()
                if due_at is None or due_at >= offset + len(piece):
                    yield [steps.UpstreamEvent(piece)], arrived
                    offset += len(piece)
                    break
                cut = max(0, due_at - offset)
                head, piece = piece[:cut], piece[cut:]
                offset += len(head)
                yield [*([steps.UpstreamEvent(head)] if head else []), *self._cursor.before(offset)], arrived
                arrived = b""
