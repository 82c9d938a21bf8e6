"""The step vocabulary: the steps of a timeline, the dialect-neutral script of one stream, and the
steps a scenario's `steps:` list may hold, each declared once in FILE_STEPS.

Content steps (text, reasoning, tool calls, errors, the finish) are rendered by a dialect into its
own wire format. Wire steps (sleeps, raw bytes and events, comments, splits, drops, resets, stalls)
mean the same on every endpoint and are played by the transport.

A step's fields carry the bounds a scenario file must keep (`Sleep.ms` is a `DelayMs`), and the
scenario model derives its step entries, their keys and their union from FILE_STEPS. A new step is
a dataclass here and its row in FILE_STEPS, plus its meaning where it is rendered or played.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetPydanticSchema, field_validator
from pydantic_core import core_schema

from mock_server.scenarios.delays import DelayMs, WholeDelayMs


class Ending(StrEnum):
    """How a stream ends when it is played to its end: with its end marker, or cut in one of these ways."""

    DONE = "done"
    NO_DONE = "no_done"
    CLOSE = "close"
    ERROR = "error"
    DROP = "drop"
    RESET = "reset"
    STALL = "stall"


_OrDialectDefault = Annotated[str | None, BeforeValidator(lambda value: None if value == "" else value)]
"""A field the dialect fills in when it is None: in a scenario file, null or an empty string (as for
a fault's fields)."""


Utf8Text = Annotated[
    bytes,
    GetPydanticSchema(
        lambda _source, _handler: core_schema.no_info_after_validator_function(
            str.encode,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(bytes.decode),
        )
    ),
]
"""Bytes a scenario file writes as text: checked as a string, held as its UTF-8, written back as text."""


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
    """The dialect's own mid-stream error event; nothing of the answer follows it. A field left None
    is the provider's own (OpenAI's `server_error` wording, Anthropic's `overloaded_error`), so one
    scenario fails in each dialect as that provider fails."""

    message: _OrDialectDefault = None
    type: _OrDialectDefault = None
    code: _OrDialectDefault = None


@dataclass(frozen=True, slots=True)
class Malformed:
    """An event in the dialect's own framing whose data does not parse: `data`, or the dialect's own
    broken JSON when None."""

    data: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A well-formed event of a type the client does not know, as providers add new ones."""


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of the answer, with its finish reason."""

    reason: str = "stop"


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait `ms` before the next step (keep-alive comments may be sent meanwhile)."""

    ms: DelayMs


@dataclass(frozen=True, slots=True)
class RawEvent:
    """An SSE event written as given, whatever the dialect."""

    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: WholeDelayMs | None = None


@dataclass(frozen=True, slots=True)
class Comment:
    """An SSE comment line (`: text`)."""

    text: str


@dataclass(frozen=True, slots=True)
class Raw:
    """Exact bytes on the wire."""

    data: Utf8Text


@dataclass(frozen=True, slots=True)
class Split:
    """Write the next frame in `pieces` writes, `ms` apart, cutting a multi-byte character if any."""

    pieces: Annotated[int, Field(ge=2, le=64)] = 3
    ms: DelayMs = 20


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Write the next event twice, as a proxy that retries a write does."""


@dataclass(frozen=True, slots=True)
class Drop:
    """End the TCP connection without ending the chunked body."""


@dataclass(frozen=True, slots=True)
class Reset:
    """Abort the TCP connection with a reset (RST)."""


@dataclass(frozen=True, slots=True)
class Stall:
    """Send nothing for `ms`, then go on; with no `ms`, hold the connection open until the client leaves."""

    ms: DelayMs | None = None


@dataclass(frozen=True, slots=True)
class UpstreamEvent:
    """One event of an upstream's stream (or one piece of its body), recorded or passing through a
    proxy: written as it came, counted as a chunk, so `@N` faults land between upstream events."""

    data: bytes


@dataclass(frozen=True, slots=True)
class UpstreamEvents:
    """Several events of an upstream's live stream passed on in one write, when no fault is left to
    place between them: not counted by `@N`, since nothing is placed after it."""

    data: bytes
    events: int


@dataclass(frozen=True, slots=True)
class UpstreamComments:
    """A block of SSE comments from an upstream (a keep-alive): written as it came, not counted."""

    data: bytes


ContentStep = Text | Reasoning | ToolCallStart | ToolCallArguments | ErrorEvent | Malformed | UnknownEvent | Finish
WireStep = (
    Sleep
    | RawEvent
    | Comment
    | Raw
    | Split
    | Duplicate
    | Drop
    | Reset
    | Stall
    | UpstreamEvent
    | UpstreamEvents
    | UpstreamComments
)
Step = ContentStep | WireStep

# A chunk is what `@N` counts: the pieces of the answer a model would emit one by one.
CHUNK_STEPS: tuple[type, ...] = (Text, Reasoning, ToolCallStart, ToolCallArguments, UpstreamEvent)


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


class ToolCallSpec(BaseModel):
    """A tool call the model makes, as a scenario writes it: function name and JSON arguments (a
    string, or an object to encode). The compiler cuts it into a ToolCallStart and ToolCallArguments."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1)
    arguments: str | dict[str, Any] | list[Any] = "{}"
    id: str | None = None

    @field_validator("arguments")
    @classmethod
    def _check_arguments(cls, value: str | dict[str, Any] | list[Any]) -> str | dict[str, Any] | list[Any]:
        if not isinstance(value, str):
            try:
                json.dumps(value, allow_nan=False)
            except ValueError:
                raise ValueError("holds NaN or an infinite number, which JSON cannot carry") from None
        return value

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


class Written(Enum):
    """How a step's value is written after its key in a scenario's `steps:` list."""

    SCALAR = "scalar"
    """`text: "hi"`, `sleep_ms: 100`: the value of the step's one field."""
    OBJECT = "object"
    """`event: {event: x, data: y}`: the step's fields by name, each left out taking its default."""
    OBJECT_OR_NULL = "object or null"
    """`split: {pieces: 4}`, or `split: null` for every default."""
    FLAG = "flag"
    """`drop: true`, or `drop: null`: a step without fields."""


@dataclass(frozen=True, slots=True)
class FileStep:
    """A step a scenario's `steps:` list may hold: `key: value`, the value written as `written` says and
    checked against the fields of `step` (with their bounds), and built into a `step`."""

    key: str
    step: type[Step] | type[ToolCallSpec]
    written: Written

    def __post_init__(self) -> None:
        count = len(dataclasses.fields(self.step)) if dataclasses.is_dataclass(self.step) else None
        if self.written is Written.SCALAR and count != 1:
            raise TypeError(f"step `{self.key}` is written as a scalar, so {self.step.__name__} needs one field")
        if self.written is Written.FLAG and count != 0:
            raise TypeError(f"step `{self.key}` is written as a flag, so {self.step.__name__} takes no fields")

    @property
    def value_type(self) -> Any:  # a type expression, which Python's typing has no type for yet
        """The type the value after the key is validated as."""
        match self.written:
            case Written.SCALAR:
                (field,) = dataclasses.fields(typing.cast("type[Text]", self.step))
                return typing.get_type_hints(self.step, include_extras=True)[field.name]
            case Written.OBJECT:
                return self.step
            case Written.OBJECT_OR_NULL:
                return self.step | None
            case Written.FLAG:
                return Literal[True] | None

    def build(self, value: object) -> Step | ToolCallSpec:
        """The step a validated value stands for (a ToolCallSpec is expanded by the compiler)."""
        make = typing.cast("Callable[..., Step | ToolCallSpec]", self.step)
        match self.written:
            case Written.SCALAR:
                return make(value)
            case Written.FLAG:
                return make()
            case Written.OBJECT | Written.OBJECT_OR_NULL:
                return make() if value is None else typing.cast("Step | ToolCallSpec", value)


FILE_STEPS: Mapping[str, FileStep] = {
    declared.key: declared
    for declared in (
        FileStep("text", Text, Written.SCALAR),
        FileStep("reasoning", Reasoning, Written.SCALAR),
        FileStep("tool_call", ToolCallSpec, Written.OBJECT),
        FileStep("sleep_ms", Sleep, Written.SCALAR),
        FileStep("event", RawEvent, Written.OBJECT),
        FileStep("comment", Comment, Written.SCALAR),
        FileStep("raw", Raw, Written.SCALAR),
        FileStep("split", Split, Written.OBJECT_OR_NULL),
        FileStep("duplicate", Duplicate, Written.FLAG),
        FileStep("malformed", Malformed, Written.OBJECT_OR_NULL),
        FileStep("unknown_event", UnknownEvent, Written.FLAG),
        FileStep("drop", Drop, Written.FLAG),
        FileStep("reset", Reset, Written.FLAG),
        FileStep("stall", Stall, Written.OBJECT_OR_NULL),
        FileStep("error", ErrorEvent, Written.OBJECT_OR_NULL),
        FileStep("finish", Finish, Written.OBJECT_OR_NULL),
    )
}
"""Every step a scenario's `steps:` list may hold, by its key, in the order messages list them."""
