"""The fault vocabulary: each kind, its argument, when it fires, and the steps it becomes.

A fault is a small named unit (like a Toxiproxy toxic): a kind, a position (`at`: before chunk N),
the kind's own argument, and the conditions `once`, `times` and `probability`. The compiler asks a
fault for its steps and places them in the timeline; nothing else needs to know the kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mock_server.errors import OverrideError
from mock_server.scenarios import steps
from mock_server.scenarios.delays import DelayMs


class FaultKind(StrEnum):
    DROP = "drop"
    RESET = "reset"
    CLOSE = "close"
    ERROR = "error"
    STALL = "stall"
    MALFORMED = "malformed"
    SPLIT = "split"
    DELAY = "delay"
    STATUS = "status"
    NO_DONE = "no_done"
    DUPLICATE = "duplicate"
    UNKNOWN_EVENT = "unknown_event"


@dataclass(frozen=True, slots=True)
class KindInfo:
    """What a kind takes: its `:ARG` field (if any), whether it sits at a chunk, and a summary."""

    arg: str | None
    positional: bool
    summary: str


FAULT_KINDS: dict[FaultKind, KindInfo] = {
    FaultKind.DROP: KindInfo(None, True, "close the TCP connection without ending the chunked body"),
    FaultKind.RESET: KindInfo(None, True, "abort the TCP connection with a reset (ECONNRESET)"),
    FaultKind.CLOSE: KindInfo("data", True, "send an SSE event named `close`, hold the connection `ms`, then end"),
    FaultKind.ERROR: KindInfo("message", True, "send the dialect's own error event, then end the stream"),
    FaultKind.STALL: KindInfo("ms", True, "send nothing for `ms` (no `ms`: forever), then go on"),
    FaultKind.MALFORMED: KindInfo("data", True, "send an event of the dialect whose data does not parse"),
    FaultKind.SPLIT: KindInfo("pieces", True, "write the next event in pieces, cutting a UTF-8 character"),
    FaultKind.DELAY: KindInfo("ms", True, "wait `ms` more before the chunk"),
    FaultKind.STATUS: KindInfo("status", False, "answer with an HTTP error before any stream byte"),
    FaultKind.NO_DONE: KindInfo(None, False, "end cleanly without the end marker (`data: [DONE]`)"),
    FaultKind.DUPLICATE: KindInfo(None, True, "send the next event twice, as a proxy retrying a write does"),
    FaultKind.UNKNOWN_EVENT: KindInfo(None, True, "send a well-formed event of a type the client does not know"),
}

DEFAULT_CLOSE_DATA = '{"reason": "upstream closed"}'
DEFAULT_SPLIT_PIECES = 3
DEFAULT_SPLIT_MS = 20.0
MAX_AT_DIGITS = 9
"""`@N` beyond a billion chunks is a typo, and a longer digit string would not even convert."""
MAX_FAULTS = 100
"""The most faults a scenario lists, and the most a request adds: a test needs a handful, and each
one is parsed, validated and placed while every other stream waits."""


class Fault(BaseModel):
    """One fault of a scenario or of a request's `fault=` override."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False, allow_inf_nan=False)

    kind: FaultKind
    at: int = Field(default=0, ge=0, description="before chunk N (0 = before the first)")
    ms: DelayMs | None = None
    pieces: int | None = Field(default=None, ge=2, le=64)
    status: int | None = Field(default=None, ge=400, le=599)
    data: str | None = None
    message: str | None = None
    type: str | None = None
    code: str | None = None
    once: bool = False
    times: int | None = Field(default=None, ge=1)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_kind_arguments(self) -> Self:
        if self.kind is FaultKind.STATUS and self.status is None:
            raise ValueError("a `status` fault needs `status`: the HTTP status to answer with, 400-599")
        if self.kind is FaultKind.DELAY and self.ms is None:
            raise ValueError("a `delay` fault needs `ms`: how long to wait before the chunk")
        return self

    @property
    def positional(self) -> bool:
        return FAULT_KINDS[self.kind].positional

    @property
    def ends_stream(self) -> bool:
        """Whether nothing is sent after this fault: a `close` by its meaning (the stream ends after the
        event and the hold), any other when one of its steps ends the stream."""
        return self.kind is FaultKind.CLOSE or any(steps.ends_stream(step) for step in self.to_steps())

    def to_steps(self) -> list[steps.Step]:
        """The steps this fault puts before its chunk (none for stream-level kinds)."""
        match self.kind:
            case FaultKind.DROP:
                return [steps.Drop()]
            case FaultKind.RESET:
                return [steps.Reset()]
            case FaultKind.CLOSE:
                close = steps.RawEvent(event="close", data=self.data or DEFAULT_CLOSE_DATA)
                # Holding the connection open after the event shows whether the client hangs up on it.
                return [close, steps.Sleep(self.ms)] if self.ms else [close]
            case FaultKind.ERROR:
                # What the fault leaves out, the dialect fills in with its provider's own error.
                return [steps.ErrorEvent(self.message or None, self.type or None, self.code or None)]
            case FaultKind.STALL:
                return [steps.Stall(self.ms)]
            case FaultKind.MALFORMED:
                return [steps.Malformed(self.data or None)]
            case FaultKind.DUPLICATE:
                return [steps.Duplicate()]
            case FaultKind.UNKNOWN_EVENT:
                return [steps.UnknownEvent()]
            case FaultKind.SPLIT:
                return [
                    steps.Split(
                        self.pieces or DEFAULT_SPLIT_PIECES, self.ms if self.ms is not None else DEFAULT_SPLIT_MS
                    )
                ]
            case FaultKind.DELAY:
                return [steps.Sleep(self.ms or 0.0)]
            case FaultKind.STATUS | FaultKind.NO_DONE:
                return []


def parse_fault_list(text: str) -> list[Fault]:
    """Parse `KIND[@N][:ARG]` items separated by commas, e.g. `drop@3,stall@4:1500,status:429`;
    raises OverrideError for more than MAX_FAULTS items, before parsing any."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) > MAX_FAULTS:
        raise OverrideError(f"{len(items):,} faults are more than the {MAX_FAULTS} one request may add")
    return [parse_fault(item) for item in items]


def parse_fault(item: str) -> Fault:
    """Parse one `KIND[@N][:ARG]` item; raises OverrideError saying what is wrong and what is accepted."""
    head, sep, arg = item.partition(":")
    name, at_sep, at_text = head.partition("@")
    name = name.strip().lower().replace("-", "_")
    try:
        kind = FaultKind(name)
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise OverrideError(f"unknown fault kind {name!r} in {item!r}; known: {known}") from None
    info = FAULT_KINDS[kind]
    fields: dict[str, object] = {"kind": kind}
    if at_sep:
        if not info.positional:
            raise OverrideError(f"{kind.value!r} applies to the whole response and takes no @N (in {item!r})")
        if not at_text.strip().isdecimal() or len(at_text.strip()) > MAX_AT_DIGITS:
            raise OverrideError(f"@N in {item!r} must be a chunk number 0 or more, like {kind.value}@3")
        fields["at"] = int(at_text)
    if sep:
        if info.arg is None:
            raise OverrideError(f"{kind.value!r} takes no :ARG (in {item!r})")
        fields[info.arg] = arg
    elif kind is FaultKind.STATUS:
        raise OverrideError(f"{item!r} needs the HTTP status, like status:429")
    elif kind is FaultKind.DELAY:
        raise OverrideError(f"{item!r} needs the delay in ms, like delay@2:500")
    try:
        return Fault.model_validate(fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or (info.arg or "fault")
        message = problem["msg"].removeprefix("Value error, ")
        raise OverrideError(f"bad {field} in fault {item!r}: {message}") from None
