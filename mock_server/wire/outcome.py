"""How a response ended, as the transport tells the journal."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
    """How playing a response ended: its outcome, the events written, the id of the last one written
    (None when the events have no ids), and whether the status line and headers went out at all."""

    outcome: Outcome
    events_sent: int
    last_id: int | None = None
    head_sent: bool = True
