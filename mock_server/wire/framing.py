"""How a stream's events become bytes on the wire: SSE for most providers, one JSON object a line
(NDJSON, Ollama), a JSON array written element by element (Gemini without `alt=sse`), AWS
event-stream frames (Bedrock, `mock_server.wire.eventstream`). A dialect
describes its events; its framing writes them; the faults act on the bytes either way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mock_server.wire import frames


class Framing(Protocol):
    """The bytes of a stream's events."""

    @property
    def content_type(self) -> str:
        """The response's Content-Type."""

    @property
    def sse(self) -> bool:
        """Whether this is SSE: ids, `retry:`, comments and keep-alive pings exist only there."""

    def event(self, event: frames.Event, index: int) -> bytes:
        """The bytes of one event, the stream's `index`-th (from 0)."""

    def close(self, events: int) -> bytes:
        """What a stream of `events` events ends with when it ends cleanly (b"" for none)."""

    def text_at(self, data: bytes) -> int:
        """Where the text of an event's bytes begins: 0 but in a binary frame, whose payload follows
        its prelude and headers (`split` cuts a character of the text)."""


@dataclass(frozen=True, slots=True)
class SseFraming:
    content_type: str = "text/event-stream; charset=utf-8"
    sse: bool = True

    def event(self, event: frames.Event, index: int) -> bytes:
        return frames.encode(event)

    def close(self, events: int) -> bytes:
        return b""

    def text_at(self, data: bytes) -> int:
        return 0


@dataclass(frozen=True, slots=True)
class NdjsonFraming:
    """One JSON value a line, each ending in LF (`application/x-ndjson`)."""

    content_type: str = "application/x-ndjson"
    sse: bool = False

    def event(self, event: frames.Event, index: int) -> bytes:
        return f"{event.data or ''}\n".encode()

    def close(self, events: int) -> bytes:
        return b""

    def text_at(self, data: bytes) -> int:
        return 0


@dataclass(frozen=True, slots=True)
class JsonArrayFraming:
    """A JSON array written an element at a time: `[` before the first, `,` and a line break between
    elements, `]` at the end (as Gemini streams without `alt=sse`). With `indent`, each element is laid
    out a member a line, `indent` spaces a level, and ends with a line break, as Google writes them."""

    content_type: str = "application/json; charset=UTF-8"
    sse: bool = False
    separator: str = ",\r\n"
    indent: int | None = None

    def event(self, event: frames.Event, index: int) -> bytes:
        data = event.data or ""
        if self.indent is not None:
            data = laid_out(data, self.indent) + "\n"
        return f"{'[' if index == 0 else self.separator}{data}".encode()

    def close(self, events: int) -> bytes:
        return b"]" if events else b"[]"

    def text_at(self, data: bytes) -> int:
        return 0


@dataclass(frozen=True, slots=True)
class GoogleSseFraming:
    """Google's SSE (Gemini with `alt=sse`): `data:` lines ending in CRLF, no event names. An error in
    the middle of a stream is not an SSE event there but a bare JSON object on lines of its own, which
    google-genai and @google/genai look for: an event the dialect names `error` is written so."""

    content_type: str = "text/event-stream"
    sse: bool = True

    def event(self, event: frames.Event, index: int) -> bytes:
        if event.event == "error":
            return f"{event.data or ''}\n".encode()
        return frames.encode(frames.Event(event.data, id=event.id, retry=event.retry), "\r\n")

    def close(self, events: int) -> bytes:
        return b""

    def text_at(self, data: bytes) -> int:
        return 0


def laid_out(text: str, indent: int) -> str:
    """Compact JSON text laid out a member a line, `indent` spaces a level, `": "` after each name,
    empty objects and arrays kept whole: json.dumps' `indent` layout. Strings are copied as they are,
    escapes and all, and the text need not be complete: what is cut short is laid out as far as it goes."""
    out: list[str] = []
    depth = 0
    in_string = escaped = opened = False
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in " \t\r\n":
            continue
        if opened:  # the first member of an object or array goes on a line of its own
            opened = False
            if char in "}]":
                depth -= 1
                out.append(char)
                continue
            out.append("\n" + " " * (indent * depth))
        if char in "{[":
            depth += 1
            opened = True
            out.append(char)
        elif char in "}]":
            depth -= 1
            out.append("\n" + " " * (indent * depth) + char)
        elif char == ",":
            out.append(",\n" + " " * (indent * depth))
        elif char == ":":
            out.append(": ")
        else:
            in_string = char == '"'
            out.append(char)
    return "".join(out)


SSE = SseFraming()
NDJSON = NdjsonFraming()
JSON_ARRAY = JsonArrayFraming()
GOOGLE_SSE = GoogleSseFraming()
GOOGLE_JSON_ARRAY = JsonArrayFraming(indent=2)
