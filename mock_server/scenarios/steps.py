"""The steps of a timeline: the dialect-neutral script of one stream.

Content steps (text, reasoning, tool calls, errors, the finish) are rendered by a dialect into its
own wire format. Wire steps (sleeps, raw bytes and events, comments, splits, drops, resets, stalls)
mean the same on every endpoint and are played by the transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Ending(StrEnum):
    """How a stream ends when it is played to its end: with its end marker, or cut in one of these ways."""

    DONE = "done"
    NO_DONE = "no_done"
    CLOSE = "close"
    ERROR = "error"
    DROP = "drop"
    RESET = "reset"
    STALL = "stall"


@dataclass(frozen=True, slots=True)
class Text:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A piece of reasoning, streamed before the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """The first fragment of a tool call: its index, id and function name."""

    index: int
    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArguments:
    """A fragment of a tool call's JSON arguments."""

    index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The dialect's own mid-stream error event; nothing of the answer follows it."""

    message: str = "The server had an error while processing your request."
    type: str = "server_error"
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of the answer, with its finish reason."""

    reason: str = "stop"


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait `ms` before the next step (keep-alive comments may be sent meanwhile)."""

    ms: float


@dataclass(frozen=True, slots=True)
class RawEvent:
    """An SSE event written as given, whatever the dialect."""

    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: int | None = None


@dataclass(frozen=True, slots=True)
class Comment:
    """An SSE comment line (`: text`)."""

    text: str


@dataclass(frozen=True, slots=True)
class Raw:
    """Exact bytes on the wire."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Split:
    """Write the next frame in `pieces` writes, `ms` apart, cutting a multi-byte character if any."""

    pieces: int = 3
    ms: float = 20


@dataclass(frozen=True, slots=True)
class Drop:
    """End the TCP connection without ending the chunked body."""


@dataclass(frozen=True, slots=True)
class Reset:
    """Abort the TCP connection with a reset (RST)."""


@dataclass(frozen=True, slots=True)
class Stall:
    """Send nothing for `ms`, then go on; with no `ms`, hold the connection open until the client leaves."""

    ms: float | None = None


ContentStep = Text | Reasoning | ToolCallStart | ToolCallArguments | ErrorEvent | Finish
WireStep = Sleep | RawEvent | Comment | Raw | Split | Drop | Reset | Stall
Step = ContentStep | WireStep

# A chunk is what `@N` counts: the pieces of the answer a model would emit one by one.
CHUNK_STEPS: tuple[type, ...] = (Text, Reasoning, ToolCallStart, ToolCallArguments)


def ending_of(step: Step) -> Ending | None:
    """How the stream ends at `step`, or None when more may follow it: the one answer to whether a
    step ends the stream (the compiler stops placing steps after it, the renderer stops rendering,
    a scenario may not script steps after it, a timeline's `ending` is its last step's)."""
    match step:
        case Drop():
            return Ending.DROP
        case Reset():
            return Ending.RESET
        case ErrorEvent():
            return Ending.ERROR
        case Stall(None):
            return Ending.STALL
    return None


def ends_stream(step: Step) -> bool:
    """True for steps after which nothing more is written."""
    return ending_of(step) is not None
