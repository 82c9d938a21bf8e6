"""The scenario model: what a scenario file (or a run-time scenario object) may say, and its checks.

Every problem is collected at once and reported as `source:line: problem` (see `load_scenario`).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from mock_server.errors import Problem, ScenarioError
from mock_server.scenarios import steps
from mock_server.scenarios.delays import DelayMs, WholeDelayMs
from mock_server.scenarios.faults import MAX_FAULTS, Fault
from mock_server.scenarios.loading import Document
from mock_server.scenarios.patterns import MatchPattern
from mock_server.scenarios.surrogates import lone_surrogates, replace_lone_surrogates

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FORBIDDEN_HEADERS = {"content-length", "transfer-encoding", "connection", "content-type"}

# Infinite or NaN delays would stall a stream or upset the event loop's timers; "forever" is a
# stall without `ms`.
_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ToolCallSpec(BaseModel):
    """A tool call the model makes: function name and JSON arguments (a string, or an object to encode)."""

    model_config = _STRICT

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


class _StepModel(BaseModel):
    model_config = _STRICT

    def build(self) -> steps.Step | ToolCallSpec:
        """The timeline step this entry stands for (a tool call is expanded by the compiler)."""
        raise NotImplementedError


class _TextStep(_StepModel):
    text: str

    def build(self) -> steps.Step | ToolCallSpec:
        return steps.Text(self.text)


class _ReasoningStep(_StepModel):
    reasoning: str

    def build(self) -> steps.Step | ToolCallSpec:
        return steps.Reasoning(self.reasoning)


class _ToolCallStep(_StepModel):
    tool_call: ToolCallSpec

    def build(self) -> steps.Step | ToolCallSpec:
        return self.tool_call


class _SleepStep(_StepModel):
    sleep_ms: DelayMs

    def build(self) -> steps.Step | ToolCallSpec:
        return steps.Sleep(self.sleep_ms)


class _EventArgs(BaseModel):
    model_config = _STRICT

    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: WholeDelayMs | None = None


class _EventStep(_StepModel):
    event: _EventArgs

    def build(self) -> steps.Step | ToolCallSpec:
        e = self.event
        return steps.RawEvent(event=e.event, data=e.data, id=e.id, retry=e.retry)


class _CommentStep(_StepModel):
    comment: str

    def build(self) -> steps.Step | ToolCallSpec:
        return steps.Comment(self.comment)


class _RawStep(_StepModel):
    raw: str

    def build(self) -> steps.Step | ToolCallSpec:
        return steps.Raw(self.raw.encode("utf-8"))


class _SplitArgs(BaseModel):
    model_config = _STRICT

    pieces: int = Field(default=3, ge=2, le=64)
    ms: DelayMs = 20


class _SplitStep(_StepModel):
    split: _SplitArgs | None

    def build(self) -> steps.Step | ToolCallSpec:
        args = self.split or _SplitArgs()
        return steps.Split(args.pieces, args.ms)


class _DropStep(_StepModel):
    drop: Literal[True] | None

    def build(self) -> steps.Step | ToolCallSpec:
        return steps.Drop()


class _ResetStep(_StepModel):
    reset: Literal[True] | None

    def build(self) -> steps.Step | ToolCallSpec:
        return steps.Reset()


class _StallArgs(BaseModel):
    model_config = _STRICT

    ms: DelayMs | None = None


class _StallStep(_StepModel):
    stall: _StallArgs | None

    def build(self) -> steps.Step | ToolCallSpec:
        return steps.Stall(self.stall.ms if self.stall else None)


class _ErrorArgs(BaseModel):
    model_config = _STRICT

    message: str | None = None
    type: str | None = None
    code: str | None = None


class _ErrorStep(_StepModel):
    error: _ErrorArgs | None

    def build(self) -> steps.Step | ToolCallSpec:
        args = self.error or _ErrorArgs()
        default = steps.ErrorEvent()
        return steps.ErrorEvent(args.message or default.message, args.type or default.type, args.code)


class _FinishArgs(BaseModel):
    model_config = _STRICT

    reason: str = "stop"


class _FinishStep(_StepModel):
    finish: _FinishArgs | None

    def build(self) -> steps.Step | ToolCallSpec:
        return steps.Finish((self.finish or _FinishArgs()).reason)


_STEP_MODELS: dict[str, type[_StepModel]] = {
    "text": _TextStep,
    "reasoning": _ReasoningStep,
    "tool_call": _ToolCallStep,
    "sleep_ms": _SleepStep,
    "event": _EventStep,
    "comment": _CommentStep,
    "raw": _RawStep,
    "split": _SplitStep,
    "drop": _DropStep,
    "reset": _ResetStep,
    "stall": _StallStep,
    "error": _ErrorStep,
    "finish": _FinishStep,
}
STEP_KINDS = tuple(_STEP_MODELS)


def _step_tag(value: Any) -> str | None:
    if isinstance(value, Mapping) and len(value) == 1:
        key = next(iter(value))
        return key if key in _STEP_MODELS else None
    if isinstance(value, _StepModel):
        return next(iter(type(value).model_fields))
    return None


ScenarioStep = Annotated[
    Annotated[_TextStep, Tag("text")]
    | Annotated[_ReasoningStep, Tag("reasoning")]
    | Annotated[_ToolCallStep, Tag("tool_call")]
    | Annotated[_SleepStep, Tag("sleep_ms")]
    | Annotated[_EventStep, Tag("event")]
    | Annotated[_CommentStep, Tag("comment")]
    | Annotated[_RawStep, Tag("raw")]
    | Annotated[_SplitStep, Tag("split")]
    | Annotated[_DropStep, Tag("drop")]
    | Annotated[_ResetStep, Tag("reset")]
    | Annotated[_StallStep, Tag("stall")]
    | Annotated[_ErrorStep, Tag("error")]
    | Annotated[_FinishStep, Tag("finish")],
    Discriminator(
        _step_tag,
        custom_error_type="unknown_step",
        custom_error_message="each step is a mapping with exactly one key, one of: " + ", ".join(STEP_KINDS),
    ),
]


class Match(BaseModel):
    """Regexes a request must fit for the scenario to be chosen without being named."""

    model_config = _STRICT

    prompt: MatchPattern | None = None
    model: MatchPattern | None = None
    headers: dict[str, MatchPattern] = Field(default_factory=dict)

    @field_validator("headers", mode="before")
    @classmethod
    def _lower_header_names(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {str(k).lower(): v for k, v in value.items()}
        return value


class Thresholds(BaseModel):
    """What the client verdict (`GET /_mock/verdict`) allows a client of this scenario."""

    model_config = _STRICT

    grace_ms: DelayMs = 5000
    """How long after a cut stream (beyond the `Retry-After` or `retry:` it was given) a client may take
    to ask again; also how far apart two requests may be and still be one call."""
    patience_ms: Annotated[DelayMs, Field(gt=0)] = 30_000
    """The longest a client should wait on a silent (stalled) stream before giving up."""
    close_grace_ms: DelayMs = 1000
    """How soon after a `close` event a client should hang up."""
    max_attempts: int = Field(default=5, ge=1)
    """How many attempts one call may take (resumes that get further do not count) before it is a storm."""


DEFAULT_THRESHOLDS = Thresholds()


class Scenario(BaseModel):
    """A scripted stream: the reply, its pacing, its faults, or a fully scripted list of steps."""

    model_config = _STRICT

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    reply: str = "{prompt}"
    chunk: Literal["word", "char"] | Annotated[int, Field(ge=1)] = "word"
    chunk_ms: DelayMs = 0
    first_chunk_ms: DelayMs = 0
    jitter_ms: DelayMs = 0
    seed: int = 0
    finish_reason: str = "stop"
    done: bool = True
    ids: bool = False
    retry_ms: WholeDelayMs | None = None
    keepalive_ms: Annotated[DelayMs, Field(ge=1)] | None = None  # more often would flood the client with pings
    status: int = 200
    headers: dict[str, str] = Field(default_factory=dict)
    content_type: str = "text/event-stream; charset=utf-8"
    tool_calls: list[ToolCallSpec] = Field(default_factory=list)
    reasoning: str | None = None
    match: Match | None = None
    faults: list[Fault] = Field(default_factory=list, max_length=MAX_FAULTS)
    steps: list[ScenarioStep] | None = None
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    @field_validator("status")
    @classmethod
    def _check_status(cls, value: int) -> int:
        if value != 200 and not 400 <= value <= 599:
            raise ValueError("status must be 200 (stream) or an error status 400-599")
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if name.lower() in _FORBIDDEN_HEADERS:
                raise ValueError(f"header {name!r} is set by the server; use `content_type` for Content-Type")
            if any(c in header_value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a CR, LF or NUL in its value")
            if not header_value.isascii():
                raise ValueError(f"header {name!r} has non-ASCII characters in its value; percent-encode them")
        return value

    @field_validator("content_type")
    @classmethod
    def _check_content_type(cls, value: str) -> str:
        if any(c in value for c in "\r\n\0"):
            raise ValueError("content_type has a CR, LF or NUL in it")
        return value

    @model_validator(mode="after")
    def _check_steps_end(self) -> Self:
        for index, step in enumerate(self.steps or ()):
            if isinstance(step, _DropStep | _ResetStep | _ErrorStep) or (
                isinstance(step, _StallStep) and (step.stall is None or step.stall.ms is None)
            ):
                rest = len(self.steps or ()) - index - 1
                if rest:
                    kind = next(iter(type(step).model_fields))
                    raise ValueError(
                        f"step {index} (`{kind}`) ends the stream, so the {rest} step(s) after it would "
                        "never be sent; remove them"
                    )
        return self

    def matches(self, prompt: str, model: str | None, headers: Mapping[str, str]) -> bool:
        """Whether every `match` rule fits (each looking at the first MATCH_INPUT_CHARS characters of its
        value); a scenario without rules matches nothing."""
        rules = self.match
        if rules is None:
            return False
        if rules.prompt is not None and not rules.prompt.search(prompt):
            return False
        if rules.model is not None and not rules.model.search(model or ""):
            return False
        return all(pattern.search(headers.get(name, "")) for name, pattern in rules.headers.items())


SCENARIO_FIELDS = tuple(Scenario.model_fields)
_KNOWN_FIELDS: dict[tuple[int | str, ...], tuple[str, ...]] = {
    (): SCENARIO_FIELDS,
    ("thresholds",): tuple(Thresholds.model_fields),
}


def load_scenario(document: Document, default_name: str | None = None) -> Scenario:
    """Validate a parsed scenario; raises ScenarioError listing every problem as `source:line: ...`."""
    data = document.data
    if not isinstance(data, Mapping):
        kind = type(data).__name__ if data is not None else "nothing"
        raise ScenarioError([Problem(document.source, 1, f"a scenario is a mapping of fields, not {kind}")])
    fields = dict(data)
    if default_name is not None:
        fields.setdefault("name", default_name)
    problems = [_lone_surrogate_problem(document, path) for path in lone_surrogates(fields)]
    if problems:
        fields = replace_lone_surrogates(fields)  # so that no other problem quotes one
    try:
        scenario = Scenario.model_validate(fields)
    except ValidationError as exc:
        flagged = {problem.path for problem in problems}
        found = (_problem(document, error) for error in exc.errors())
        problems.extend(problem for problem in found if problem.path not in flagged)
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise ScenarioError(problems)
    return scenario


def _lone_surrogate_problem(document: Document, location: tuple[int | str, ...]) -> Problem:
    shown = tuple(replace_lone_surrogates(part) for part in location)
    where = ".".join(str(part) for part in shown)
    message = (
        f"{where}: holds a lone surrogate (like \\ud800 without the other half of its pair), which is no "
        "character and cannot be sent as UTF-8; write the character itself, or both halves of its pair"
    )
    return Problem(document.source, document.line_of(location), message, shown)


def _problem(document: Document, error: ErrorDetails) -> Problem:
    location = _document_location(error["loc"])
    where = ".".join(str(part) for part in location)
    line = document.line_of(location)
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        name = str(location[-1])
        message = f"unknown field {name!r}"
        known = _KNOWN_FIELDS.get(tuple(location[:-1]))
        if known is not None:
            close = difflib.get_close_matches(name, known, n=1)
            message += f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known)}"
        return Problem(document.source, line, message, location)
    if error["type"] == "missing":
        return Problem(document.source, line, f"{where}: required field is missing", location)
    return Problem(document.source, line, f"{where}: {message}" if where else message, location)


def _document_location(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Pydantic's error location, minus the union tags it inserts, as a path into the document."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "steps" and isinstance(parts[1], int) and parts[2] in _STEP_MODELS:
        del parts[2]
    if parts and parts[0] == "chunk" and len(parts) > 1:
        parts = parts[:1]
    return tuple(parts)
