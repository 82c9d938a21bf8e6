"""A recorded response: what an upstream sent for one request, event by event, with the moment each
event arrived, so that a scenario can play it again byte for byte (`recording:` in a scenario)."""

from __future__ import annotations

import itertools
import re

import stringzilla as sz
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mock_server.scenarios.delays import DelayMs
from mock_server.scenarios.steps import Utf8Text

MAX_RECORDED_EVENTS = 50_000
"""As many events as a scripted stream may have chunks."""

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RecordedEvent(BaseModel):
    """One event of the body (for a body that is not SSE, one piece of it) and when it arrived."""

    model_config = _STRICT

    at_ms: DelayMs
    """Milliseconds from the response head to this event's last byte."""
    data: Utf8Text
    """The event's bytes as they came, its blank line included."""

    @property
    def counted(self) -> bool:
        """Whether `@N` faults count it: an SSE block of comments only (a keep-alive) is not an event."""
        return not is_comment_block(self.data)


def is_comment_block(block: bytes) -> bool:
    """True for an SSE block whose every line is a comment (`: ping`)."""
    lines = [line for line in _LINE_BREAK.split(block) if line]
    return bool(lines) and all(line.startswith(b":") for line in lines)


_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_BLOCK_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
"""A line break followed by an empty line: where an SSE block ends, whatever the line endings. A CR
at the very end of the buffer may be the first half of a CRLF, so it is not taken as a break yet."""
_LF_BLOCK_END = b"\n\n"
_MAYBE_COMMENTS = (b"\n\n\n", b"\n\n:")
"""A block end followed by a line break or a comment: the next block may be comments only, or a run of
blank lines may end one block many times over. Where neither is found, each `_LF_BLOCK_END` ends one
event, and StringZilla's SIMD search counts them at about 0.05 ns a byte, where CPython's own searches
take 0.5 (`re`'s `findall`) to 0.75 (`bytes.count`): on a long stream passed on whole, that pass was
the proxy's largest cost."""


class EventSplitter:
    """Cuts a body arriving in pieces into SSE blocks (an event, or a run of comments), each with its
    blank line, as soon as its last byte is in; any line ending (CRLF, LF, CR) is understood."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The blocks that `data` completes, in order."""
        self._buffer += data
        if b"\r" not in self._buffer:
            # LF line endings only (nearly every upstream): a block ends at each "\n\n", leftmost
            # first, which is what the pattern finds, found by `split` at C speed.
            *completed, self._buffer = self._buffer.split(b"\n\n")
            return [block + b"\n\n" for block in completed]
        blocks: list[bytes] = []
        start = 0
        for match in _BLOCK_END.finditer(self._buffer):
            if match.end() == len(self._buffer) and self._buffer.endswith(b"\r"):
                break  # the CR may be the start of a CRLF still on its way
            blocks.append(self._buffer[start : match.end()])
            start = match.end()
        self._buffer = self._buffer[start:]
        return blocks

    def feed_whole(self, data: bytes) -> tuple[bytes, int]:
        """The blocks that `data` completes as one run of bytes, and how many of them are events (not
        comments only): `feed` for a stream passed on whole, with one pass over the bytes when their
        line endings are LF (a CR takes `feed`'s pattern)."""
        held = self._buffer
        if b"\r" in data or b"\r" in held:
            blocks = self.feed(data)
            return b"".join(blocks), sum(1 for block in blocks if not is_comment_block(block))
        if not held and len(data) >= 2 and data.find(b"\n\n") == len(data) - 2:  # one whole block: a paced event
            # As below: only a block that opens with ":" or a line break can be comments only.
            return data, 0 if data[:1] <= b":" and is_comment_block(data) else 1
        if held.endswith(b"\n"):  # a block's end may begin in what was held: cut the two as one
            return self._split_whole(held + data)
        # What is held has no block end and does not end in a line break, so every end is in `data`,
        # found as in the two together: they are not joined to be searched, only to be passed on.
        end = data.rfind(b"\n\n") + 2
        if end < 2:
            self._buffer = held + data
            return b"", 0
        # Counted without a bytes object per block, unless a block may be comments only (the first opens
        # with ":" or a line break, or an end is followed by one), where `split` decides.
        if (held or data)[:1] not in b":\n" and all(sz.find(data, end_, 0, end) < 0 for end_ in _MAYBE_COMMENTS):
            self._buffer = data[end:]
            events: int = sz.count(data, _LF_BLOCK_END, 0, end)
            return (b"".join((held, memoryview(data)[:end])) if held else data[:end]), events
        return self._split_whole(held + data)

    def _split_whole(self, buffer: bytes) -> tuple[bytes, int]:
        """`feed_whole` of `buffer` (what was held back, then what arrived), by `bytes.split`."""
        *completed, rest = buffer.split(b"\n\n")  # as `feed` cuts them
        self._buffer = rest
        if not completed:
            return b"", 0
        events = len(completed)
        # Only a block that opens with a comment or a line break can be comments only; an event opens
        # with its field's name. The least block shows whether any opens so.
        if min(completed)[:1] <= b":":
            events -= sum(1 for block in completed if is_comment_block(block))
        return buffer[: len(buffer) - len(rest)], events

    def rest(self) -> bytes:
        """What arrived after the last complete block (a body that ended mid-event, or not SSE)."""
        rest, self._buffer = self._buffer, b""
        return rest


class Recording(BaseModel):
    """The upstream's status and body; its headers are the scenario's `headers` and `content_type`."""

    model_config = _STRICT

    status: int = 200
    # A value, copied for each model, not `default_factory=list`: see scenarios/model.py's Match.headers.
    events: list[RecordedEvent] = Field(default=[], max_length=MAX_RECORDED_EVENTS)
    upstream: str = ""
    """Where it was recorded (method, URL and time): for the reader, not used in playing."""

    @field_validator("status")
    @classmethod
    def _check_status(cls, value: int) -> int:
        if not 200 <= value <= 599:
            raise ValueError(f"{value} is not a status a recording can replay; use 200-599")
        return value

    @field_validator("events")
    @classmethod
    def _check_order(cls, value: list[RecordedEvent]) -> list[RecordedEvent]:
        for index, (before, after) in enumerate(itertools.pairwise(value), start=1):
            if after.at_ms < before.at_ms:
                raise ValueError(
                    f"event {index} arrives at {after.at_ms:g} ms, before event {index - 1}; keep at_ms in order"
                )
        return value
