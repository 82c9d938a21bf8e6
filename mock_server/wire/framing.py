"""How a stream's events become bytes on the wire: SSE for most providers, one JSON object a line
(NDJSON, Ollama), a JSON array written element by element (Gemini without `alt=sse`). A dialect
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


@dataclass(frozen=True, slots=True)
class SseFraming:
    content_type: str = "text/event-stream; charset=utf-8"
    sse: bool = True

    def event(self, event: frames.Event, index: int) -> bytes:
        return frames.encode(event)

    def close(self, events: int) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class NdjsonFraming:
    """One JSON value a line, each ending in LF (`application/x-ndjson`)."""

    content_type: str = "application/x-ndjson"
    sse: bool = False

    def event(self, event: frames.Event, index: int) -> bytes:
        return f"{event.data or ''}\n".encode()

    def close(self, events: int) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class JsonArrayFraming:
    """A JSON array written an element at a time: `[` before the first, `,` and a line break between
    elements, `]` at the end (as Gemini streams without `alt=sse`)."""

    content_type: str = "application/json; charset=UTF-8"
    sse: bool = False
    separator: str = ",\r\n"

    def event(self, event: frames.Event, index: int) -> bytes:
        return f"{'[' if index == 0 else self.separator}{event.data or ''}".encode()

    def close(self, events: int) -> bytes:
        return b"]" if events else b"[]"


SSE = SseFraming()
NDJSON = NdjsonFraming()
JSON_ARRAY = JsonArrayFraming()
