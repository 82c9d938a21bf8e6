"""The one place SSE bytes are written (every event, comment and end marker goes through here), and
the one reading of what a client sends back about them (`Last-Event-ID`).

The encoding is sse-starlette's `ServerSentEvent.encode`, written out here (its import, with its
response class, cost every start some 5 ms), with LF line endings as OpenAI and Anthropic send them
(sse-starlette defaults to CRLF, which Google's streams use: `line_end`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

LINE_END = "\n"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    """One SSE event as a dialect describes it, before ids are assigned."""

    data: str | None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    corrupt: bool = False
    """Written with a broken integrity check where the framing has one (an event-stream frame's CRC);
    SSE and JSON have none, and write the data as it is."""


def encode(event: Event, line_end: str = LINE_END) -> bytes:
    """The event's exact wire bytes, ending with the blank line that dispatches it; every line ends
    with `line_end` (Google's end with CRLF)."""
    if event.retry is None and event.data is not None and _one_line(event.data, event.id, event.event):
        # The common case, byte for byte what ServerSentEvent writes, without its line splitting.
        fields = f"id: {event.id}{line_end}" if event.id is not None else ""
        if event.event is not None:
            fields += f"event: {event.event}{line_end}"
        return f"{fields}data: {event.data}{line_end}{line_end}".encode()
    # As ServerSentEvent writes it: line breaks dropped from the id and the name, one `data:` line per line.
    fields = f"id: {_LINE_BREAK.sub('', event.id)}{line_end}" if event.id is not None else ""
    if event.event is not None:
        fields += f"event: {_LINE_BREAK.sub('', event.event)}{line_end}"
    if event.data is not None:
        fields += "".join(f"data: {line}{line_end}" for line in _LINE_BREAK.split(event.data))
    if event.retry is not None:
        fields += f"retry: {event.retry}{line_end}"
    return f"{fields}{line_end}".encode()


def _one_line(*values: str | None) -> bool:
    return not any(value is not None and ("\n" in value or "\r" in value) for value in values)


def encode_retry(milliseconds: int) -> bytes:
    """A lone `retry:` field line, with no blank line after it: it sets the client's reconnection
    time without dispatching an event, so clients that fire a message on every blank line
    (fetch-event-source) do not see an empty one."""
    return f"retry: {milliseconds}{LINE_END}".encode()


def encode_comment(text: str) -> bytes:
    """A comment line followed by a blank line (as keep-alive pings are sent)."""
    return ("".join(f": {line}{LINE_END}" for line in _LINE_BREAK.split(text)) + LINE_END).encode()


def to_json(value: object) -> str:
    """Compact JSON with raw UTF-8, as the providers send it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


MAX_EVENT_ID_DIGITS = 18
"""Our ids count events from 1; a longer number is past any stream's end (and would not convert cheaply)."""
BEYOND_ANY_EVENT = 10**MAX_EVENT_ID_DIGITS


def event_number(last_event_id: str | None) -> int | None:
    """A `Last-Event-ID` as the number of one of our events, BEYOND_ANY_EVENT for a number too long to
    be one, None for anything else (no header, blank, not ASCII digits: `²` is a digit to Python)."""
    text = (last_event_id or "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text) if len(text) <= MAX_EVENT_ID_DIGITS else BEYOND_ANY_EVENT
