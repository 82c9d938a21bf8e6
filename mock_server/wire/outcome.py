"""How a response ended, as the transport tells the journal."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """How a response ended.

    `stalled`: the client left (or the server stopped) while the stream was stalling on purpose;
    `client_disconnected`: the client left at any other moment, e.g. between paced chunks;
    `server_lost`: the server process answering it died first (a worker killed, a replica gone),
    as the others sharing its state tell.
    """

    COMPLETED = "completed"
    DROPPED = "dropped"
    RESET = "reset"
    STALLED = "stalled"
    ERROR_STATUS = "error_status"
    CLIENT_DISCONNECTED = "client_disconnected"
    SERVER_LOST = "server_lost"

    def __repr__(self) -> str:  # short enough for pytest's one-line assertion message
        return f"Outcome.{self.name}"


TIMED_WRITES = 256
"""How many of a response's writes of events have their moments kept; the rest are summed up."""


@dataclass(frozen=True, slots=True)
class EventTiming:
    """When a response's writes of events were due and when they were written, in ms from the moment
    it began to play, and how many events each held (the first TIMED_WRITES writes); `more` writes
    after those, the latest of them `more_late_ms` behind its moment."""

    due_ms: tuple[float, ...] = ()
    written_ms: tuple[float, ...] = ()
    events: tuple[int, ...] = ()
    more: int = 0
    more_late_ms: float = 0.0

    @property
    def late_ms(self) -> float:
        """The most any write was behind its moment."""
        kept = max((w - d for d, w in zip(self.due_ms, self.written_ms, strict=True)), default=0.0)
        return max(0.0, kept, self.more_late_ms)


@dataclass(frozen=True, slots=True)
class PlayResult:
    """How playing a response ended: its outcome, the events written, the id of the last one written
    (None when the events have no ids), and whether the status line and headers went out at all."""

    outcome: Outcome
    events_sent: int
    last_id: int | None = None
    head_sent: bool = True
    timing: EventTiming | None = None
    """When its events were due and written (None: it played none through a player)."""
