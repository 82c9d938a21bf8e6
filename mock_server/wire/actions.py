"""What the transport plays (writes, waits and wire faults, rendered before the stream starts) and
how a response ends."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Write:
    """Bytes for one `send`; `events` SSE events end in them, the last with id `last_id`; `closes`
    when one of them is an event named `close`."""

    data: bytes
    events: int = 0
    last_id: int | None = None
    closes: bool = False


@dataclass(frozen=True, slots=True)
class Wait:
    """Move the stream's deadline on by `seconds` and wait for it; keep-alives may fill the time.
    A `stall` wait is the server going silent on purpose: a client leaving during it gave up on a stall."""

    seconds: float
    keepalive: bool = True
    stall: bool = False


@dataclass(frozen=True, slots=True)
class Hang:
    """Send nothing more and keep the connection open until the client leaves."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection without the chunked body's terminating chunk."""


@dataclass(frozen=True, slots=True)
class Reset:
    """Abort the connection with a TCP reset."""


Op = Write | Wait | Hang | Drop | Reset


class Outcome(StrEnum):
    """How a response ended.

    `stalled`: the client left (or the server stopped) while the stream was stalling on purpose;
    `client_disconnected`: the client left at any other moment, e.g. between paced chunks.
    """

    COMPLETED = "completed"
    DROPPED = "dropped"
    RESET = "reset"
    STALLED = "stalled"
    ERROR_STATUS = "error_status"
    CLIENT_DISCONNECTED = "client_disconnected"

    def __repr__(self) -> str:  # short enough for pytest's one-line assertion message
        return f"Outcome.{self.name}"


@dataclass(frozen=True, slots=True)
class PlayResult:
    outcome: Outcome
    events_sent: int
