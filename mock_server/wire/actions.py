"""What the transport plays: writes, waits and wire faults, rendered before the stream starts."""

from __future__ import annotations

from dataclasses import dataclass


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


Action = Write | Wait | Hang | Drop | Reset


ENDS_PLAY: tuple[type[Action], ...] = (Hang, Drop, Reset)
"""The actions after which nothing more is played (what a step that ends the stream becomes)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """When, in seconds after a response starts playing, its actions write a `close` event and fall
    silent on purpose.

    The transport keeps one monotonic deadline per response, so these are the moments the client
    meets them (if it is still there); `stall_s` is None for a stall that lasts until the client leaves.
    """

    close_at_s: float | None = None
    stall_at_s: float | None = None
    stall_s: float | None = None
    end_s: float = 0.0
    """When the last action is due: every wait added up (to the cut, for a stream cut short)."""


def schedule_of(actions: tuple[Action, ...]) -> Schedule:
    """The moments of the first `close` event and the first stall in `actions`, from their waits alone."""
    moment = 0.0
    close_at: float | None = None
    stall_at: float | None = None
    stall_s: float | None = None
    for action in actions:
        if isinstance(action, Write):
            if action.closes and close_at is None:
                close_at = moment
        elif isinstance(action, Wait):
            if action.stall and stall_at is None:
                stall_at, stall_s = moment, action.seconds
            moment += action.seconds
        else:  # a Hang is a stall with no end; a Drop or a Reset ends the stream
            if isinstance(action, Hang) and stall_at is None:
                stall_at = moment
            break
    return Schedule(close_at, stall_at, stall_s, moment)
