"""The fault vocabulary: each kind, its argument, when it fires, and the steps it becomes.

A fault is a small named unit (like a Toxiproxy toxic): a kind, a position (`at`: before chunk N, or
`head`: before the response's status line), the kind's own argument, and the conditions `once`,
`times` and `probability`. The compiler asks a fault for its steps and places them in the timeline;
nothing else needs to know the kinds. In a request, a fault is written `KIND[@N][:ARG][!CONDITION]...`
(`drop@3!once`, `status:429!times=2`, `reset@5!p=0.3`), and `counted_as` keeps that text: `times`
counts the requests that carried it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mock_server.errors import OverrideError
from mock_server.scenarios import steps
from mock_server.scenarios.delays import DelayMs
from mock_server.scenarios.headers import ResponseHeaders


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
HEAD = "head"
"""The position before the response's status line: the connection ends (or waits) before any byte."""
HEAD_KINDS = frozenset({"drop", "reset", "stall"})
MAX_FAULTS = 100
"""The most faults a scenario lists, and the most a request adds: a test needs a handful, and each
one is parsed, validated and placed while every other stream waits."""


class Fault(BaseModel):
    """One fault of a scenario or of a request's `fault=` override."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False, allow_inf_nan=False)

    kind: FaultKind
    at: Annotated[int, Field(ge=0)] | Literal["head"] = Field(
        default=0, description="before chunk N (0 = before the first), or `head`: before the status line"
    )
    ms: DelayMs | None = None
    pieces: int | None = Field(default=None, ge=2, le=64)
    status: int | None = Field(default=None, ge=400, le=599)
    data: str | None = None
    message: str | None = None
    type: str | None = None
    code: str | None = None
    headers: ResponseHeaders = ()
    """With `status`: response headers to add, or (given as null) to leave out, e.g. `Retry-After`."""
    once: bool = False
    times: int | None = Field(default=None, ge=1)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    counted_as: str | None = Field(default=None, exclude=True)
    """The request's text of the fault, when it came with one: `times` counts the requests that carried it."""

    @model_validator(mode="after")
    def _check_kind_arguments(self) -> Self:
        if self.kind is FaultKind.STATUS and self.status is None:
            raise ValueError("a `status` fault needs `status`: the HTTP status to answer with, 400-599")
        if self.kind is FaultKind.DELAY and self.ms is None:
            raise ValueError("a `delay` fault needs `ms`: how long to wait before the chunk")
        if self.at == HEAD and self.kind.value not in HEAD_KINDS:
            raise ValueError(
                f"only {', '.join(sorted(HEAD_KINDS))} can strike at `head` (before the status line); "
                f"a `{self.kind.value}` fault sits before a chunk: at: 0 or more"
            )
        if self.headers and self.kind is not FaultKind.STATUS:
            raise ValueError("only a `status` fault takes `headers`")
        return self

    @property
    def at_head(self) -> bool:
        return self.at == HEAD

    @property
    def chunk(self) -> int:
        """The chunk the fault sits before (-1 at the head: before them all)."""
        return self.at if isinstance(self.at, int) else -1

    @property
    def counted(self) -> bool:
        """Whether the fault fires on some requests only: its draw or count matters to the timeline."""
        return self.times is not None or self.probability < 1

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
    """Parse `KIND[@N][:ARG][!CONDITION]...` items separated by commas, e.g. `drop@3!once,status:429`;
    raises OverrideError for more than MAX_FAULTS items, before parsing any."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) > MAX_FAULTS:
        raise OverrideError(f"{len(items):,} faults are more than the {MAX_FAULTS} one request may add")
    return [parse_fault(item) for item in items]


_CONDITION = re.compile(r"!(once|times=([0-9]{1,9})|p=([0-9.]{1,20}))$")
CONDITIONS_HELP = "!once, !times=N (N 1 or more) or !p=P (P from 0 to 1)"


def parse_fault(item: str) -> Fault:
    """Parse one `KIND[@N][:ARG][!CONDITION]...` item; raises OverrideError saying what is wrong and what
    is accepted. Conditions are read from the end, so an ARG may hold a `!` of its own."""
    body, conditions = _split_conditions(item)
    head, sep, arg = body.partition(":")
    name, at_sep, at_text = head.partition("@")
    name = name.strip().lower().replace("-", "_")
    try:
        kind = FaultKind(name)
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise OverrideError(f"unknown fault kind {name!r} in {item!r}; known: {known}") from None
    info = FAULT_KINDS[kind]
    fields: dict[str, object] = {"kind": kind, "counted_as": item, **conditions}
    if at_sep:
        if not info.positional:
            raise OverrideError(f"{kind.value!r} applies to the whole response and takes no @N (in {item!r})")
        position = at_text.strip().lower()
        if position == HEAD:
            fields["at"] = HEAD
        elif not position.isdecimal() or len(position) > MAX_AT_DIGITS:
            raise OverrideError(
                f"@N in {item!r} must be a chunk number 0 or more, like {kind.value}@3, or head (before the "
                f"status line), like reset@head"
            )
        else:
            fields["at"] = int(position)
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
        message = problem["msg"].removeprefix("Value error, ")
        if not problem["loc"]:  # a rule across fields: the message names them
            raise OverrideError(f"{message} (in {item!r})") from None
        field = ".".join(str(p) for p in problem["loc"])
        raise OverrideError(f"bad {field} in fault {item!r}: {message}") from None


def _split_conditions(item: str) -> tuple[str, Mapping[str, object]]:
    """The item without its `!CONDITION`s, and those as Fault fields."""
    conditions: dict[str, object] = {}
    body = item
    while (found := _CONDITION.search(body)) is not None:
        name = found.group(1).split("=")[0]
        field = {"p": "probability"}.get(name, name)
        if field in conditions:
            raise OverrideError(f"{item!r} gives !{name} twice")
        if found.group(2) is not None:
            conditions["times"] = int(found.group(2))
        elif found.group(3) is not None:
            conditions["probability"] = _probability(found.group(3), item)
        else:
            conditions["once"] = True
        body = body[: found.start()]
    trailing = body.rpartition("!")[2] if "!" in body and ":" not in body else None
    if trailing is not None:
        raise OverrideError(f"unknown condition !{trailing} in {item!r}; use {CONDITIONS_HELP}")
    return body, conditions


def _probability(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise OverrideError(f"!p= in {item!r} must be a probability from 0 to 1, like !p=0.3")
    return value
