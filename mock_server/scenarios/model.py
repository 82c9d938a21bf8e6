"""The scenario model: what a scenario file (or a run-time scenario object) may say, and its checks.

Every problem is collected at once and reported as `source:line: problem` (see `load_scenario`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from mock_server.errors import Problem, ScenarioError
from mock_server.scenarios import steps
from mock_server.scenarios.conversation import NO_CONVERSATION, Conversation, ConversationMatch
from mock_server.scenarios.delays import DelayMs, WholeDelayMs
from mock_server.scenarios.faults import MAX_FAULTS, Fault
from mock_server.scenarios.headers import ResponseHeaders
from mock_server.scenarios.latency import LatencyField
from mock_server.scenarios.loading import Document
from mock_server.scenarios.patterns import MatchPattern
from mock_server.scenarios.problems import Described, problems_from
from mock_server.scenarios.recording import Recording
from mock_server.scenarios.steps import ToolCallSpec as ToolCallSpec
from mock_server.scenarios.surrogates import lone_surrogates, replace_lone_surrogates
from mock_server.scenarios.usage import ScriptedUsage

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

# Infinite or NaN delays would stall a stream or upset the event loop's timers; "forever" is a
# stall without `ms`.
_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _StepEntry(BaseModel):
    """One entry of a scenario's `steps:` list: the key of one of steps.FILE_STEPS and its value."""

    model_config = _STRICT

    @property
    def key(self) -> str:
        """The step's key, as written in the file (`sleep_ms`)."""
        return next(iter(type(self).model_fields))

    def build(self) -> steps.Step | ToolCallSpec:
        """The timeline step this entry stands for (a tool call is expanded by the compiler)."""
        key = self.key
        return steps.FILE_STEPS[key].build(getattr(self, key))


def _entry_model(declared: steps.FileStep) -> type[_StepEntry]:
    """The model of one entry `key: value` of `steps:`, the value checked as the declaration says."""
    name = "_" + "".join(part.title() for part in declared.key.split("_")) + "Step"
    field: dict[str, Any] = {declared.key: (declared.value_type, ...)}
    return create_model(name, __base__=_StepEntry, __module__=__name__, **field)


_STEP_ENTRIES = {key: _entry_model(declared) for key, declared in steps.FILE_STEPS.items()}
STEP_KINDS = tuple(_STEP_ENTRIES)


def _step_tag(value: Any) -> str | None:
    if isinstance(value, Mapping) and len(value) == 1:
        key = next(iter(value))
        return key if key in _STEP_ENTRIES else None
    if isinstance(value, _StepEntry):
        return value.key
    return None


if TYPE_CHECKING:
    ScenarioStep = _StepEntry
else:
    # A union built from FILE_STEPS, which a type checker cannot follow: it sees the entries' base.
    ScenarioStep = Annotated[
        Union[tuple(Annotated[entry, Tag(key)] for key, entry in _STEP_ENTRIES.items())],  # noqa: UP007
        Discriminator(
            _step_tag,
            custom_error_type="unknown_step",
            custom_error_message="each step is a mapping with exactly one key, one of: " + ", ".join(STEP_KINDS),
        ),
        Described("a step", "a mapping of one key, one of " + ", ".join(STEP_KINDS)),
    ]


class Match(ConversationMatch):
    """Rules a request must fit for the scenario to be chosen without being named: regexes on the
    prompt, model, path and headers, and the conversation's rules (turn, last role, tool results...)."""

    model_config = _STRICT

    prompt: MatchPattern | None = None
    model: MatchPattern | None = None
    path: MatchPattern | None = None
    """The request's path (`/v1/chat/completions`)."""
    # Empty defaults are values, which pydantic copies for each model, not `default_factory=list`:
    # pydantic inspects a factory's signature, and a builtin's made `inspect` compile tokenize's
    # patterns, a tenth of the server's start-up.
    headers: dict[str, MatchPattern] = Field(default={})

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

LimitCount = Annotated[int, Field(strict=True, ge=1)]


class Limits(BaseModel):
    """Rate limits on the scenario's requests, counted per client (API key, else address): requests
    and tokens per minute, requests per day."""

    model_config = _STRICT

    rpm: LimitCount | None = None
    tpm: LimitCount | None = None
    rpd: LimitCount | None = None

    @model_validator(mode="after")
    def _check_some(self) -> Self:
        if self.rpm is None and self.tpm is None and self.rpd is None:
            raise ValueError("sets no limit; give rpm, tpm or rpd (a whole number of 1 or more)")
        return self


MAX_REPLIES = 1000
REPLY_FIELDS = ("reply", "reasoning", "tool_calls")
"""The fields of a scenario's own answer, which the items of `replies:` say instead."""


def _check_steps_end(entries: list[_StepEntry]) -> None:
    """Raise ValueError when a step that ends the stream has steps after it, which would never be sent."""
    for index, entry in enumerate(entries[:-1]):
        built = entry.build()
        if not isinstance(built, ToolCallSpec) and steps.ends_stream(built):
            rest = len(entries) - index - 1
            raise ValueError(
                f"step {index} (`{entry.key}`) ends the stream, so the {rest} step(s) after it would "
                "never be sent; remove them"
            )


class Reply(BaseModel):
    """One answer of a sequence (an item of `replies:`): its text, reasoning and tool calls, or steps."""

    model_config = _STRICT

    reply: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCallSpec] = Field(default=[])
    finish_reason: str | None = None
    """None: the scenario's `finish_reason`, or `tool_calls` when the reply calls tools."""
    steps: list[ScenarioStep] | None = None

    @model_validator(mode="after")
    def _check_steps(self) -> Self:
        if self.steps is None:
            return self
        given = [key for key in (*REPLY_FIELDS, "finish_reason") if key in self.model_fields_set]
        if given:
            raise ValueError(
                f"steps script the whole reply; leave out {', '.join(given)} (write them as `text`, "
                "`reasoning`, `tool_call` and `finish` steps)"
            )
        _check_steps_end(self.steps)
        return self


def _as_reply(value: object) -> object:
    """An item of `replies:` as a Reply's fields: a string is its text, a list its steps."""
    if isinstance(value, str):
        return {"reply": value}
    if isinstance(value, list):
        return {"steps": value}
    return value


ReplyItem = Annotated[
    Reply,
    BeforeValidator(_as_reply),
    Described("a reply", "a text, a list of steps, or a mapping of reply, reasoning, tool_calls, finish_reason, steps"),
]


class Scenario(BaseModel):
    """A scripted stream: the reply, its pacing, its faults, or a fully scripted list of steps."""

    model_config = _STRICT

    name: Annotated[
        str,
        Described("a scenario name", "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"),
    ] = Field(pattern=NAME_PATTERN)
    description: str = ""
    reply: str = "{prompt}"
    chunk: Annotated[
        Literal["word", "char"] | Annotated[int, Field(ge=1), Described("a number of characters")],
        Described("a way to chunk a reply"),
    ] = "word"
    chunk_ms: DelayMs = 0
    first_chunk_ms: DelayMs = 0
    jitter_ms: DelayMs = 0
    latency: LatencyField | None = None
    """Drawn delays or a measured preset, instead of chunk_ms, first_chunk_ms and jitter_ms."""
    seed: int = 0
    finish_reason: str = "stop"
    done: bool = True
    ids: bool = False
    retry_ms: WholeDelayMs | None = None
    keepalive_ms: Annotated[DelayMs, Field(ge=1)] | None = None  # more often would flood the client with pings
    status: int = 200
    headers: ResponseHeaders = ()
    content_type: str = "text/event-stream; charset=utf-8"
    tool_calls: list[ToolCallSpec] = Field(default=[])
    reasoning: str | None = None
    usage: ScriptedUsage | None = None
    """Token counts that replace the counted ones (and those nothing counts: cached, reasoning)."""
    match: Match | None = None
    faults: list[Fault] = Field(default=[], max_length=MAX_FAULTS)
    steps: list[ScenarioStep] | None = None
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    recording: Recording | None = None
    """A response recorded from an upstream, played instead of `reply` or `steps`."""
    speed: Annotated[float, Field(ge=0, le=1000)] = 1.0
    """How fast a recording plays: 2 twice as fast, 0 with no waits."""
    proxy: bool = False
    """Forward the request to the server's upstream and apply `faults` to its live response."""
    replies: Annotated[list[ReplyItem], Field(min_length=1, max_length=MAX_REPLIES)] | None = None
    """A sequence: the first request of a conversation that selects the scenario gets the first reply,
    the next the second, and so on; then the last again (or the first, with `cycle`)."""
    cycle: bool = False
    limits: Limits | None = None
    """Rate limits on this scenario's requests, counted per client, besides the server's (`--rpm`)."""
    tool_mode: Literal["off", "auto"] = "off"
    """`auto`: answer a request that offers tools with a call to one, and its results in text."""
    call_tool: Annotated[str, Field(min_length=1)] | None = None
    """The tool `tool_mode: auto` calls when the request offers it (else the seed chooses)."""
    parallel_tools: Annotated[int, Field(ge=1, le=16)] = 1
    """How many of the offered tools `tool_mode: auto` calls at once, when the request allows it."""

    @field_validator("status")
    @classmethod
    def _check_status(cls, value: int) -> int:
        if value != 200 and not 400 <= value <= 599:
            raise ValueError(f"{value} is not a status to answer with; use 200 (a stream) or an error status 400-599")
        return value

    @field_validator("content_type")
    @classmethod
    def _check_content_type(cls, value: str) -> str:
        if any(c in value for c in "\r\n\0"):
            raise ValueError("content_type has a CR, LF or NUL in it")
        return value

    @model_validator(mode="after")
    def _check_steps_end(self) -> Self:
        _check_steps_end(self.steps or [])
        return self

    @model_validator(mode="after")
    def _check_one_source(self) -> Self:
        given = [key for key in ("steps", "recording", "proxy", "replies") if getattr(self, key)]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} each say where the response comes from; keep one of them")
        return self

    @model_validator(mode="after")
    def _check_replies(self) -> Self:
        if self.replies is None:
            if self.cycle:
                raise ValueError("cycle: true needs `replies`, the sequence to go round")
            return self
        given = [key for key in REPLY_FIELDS if key in self.model_fields_set]
        if given:
            raise ValueError(
                f"replies say what each request is answered; leave out {', '.join(given)}, or make it an item "
                "of `replies`"
            )
        return self

    @model_validator(mode="after")
    def _check_tool_mode(self) -> Self:
        given = [key for key in ("call_tool", "parallel_tools") if key in self.model_fields_set]
        if self.tool_mode != "auto" and given:
            raise ValueError(f"{' and '.join(given)} only say how `tool_mode: auto` calls tools; add tool_mode: auto")
        taken = [key for key in ("steps", "recording", "proxy", "replies") if getattr(self, key)]
        if self.tool_mode == "auto" and taken:
            raise ValueError(f"tool_mode: auto makes the answer itself, and {taken[0]} says it too; keep one of them")
        return self

    def reply_index(self, count: int) -> int:
        """Which of `replies` answers the `count`th request of a conversation (1 for the first)."""
        total = len(self.replies or ())
        if total == 0:
            return 0
        return (count - 1) % total if self.cycle else min(count, total) - 1

    @model_validator(mode="after")
    def _check_one_pacing(self) -> Self:
        if self.latency is None:
            return self
        given = [key for key in ("first_chunk_ms", "chunk_ms", "jitter_ms") if key in self.model_fields_set]
        if given:
            raise ValueError(
                f"latency and {' and '.join(given)} both pace the stream; keep latency (its ttft_ms and itl_ms "
                f"or tokens_per_s) or {' and '.join(given)}"
            )
        source = "recording" if self.recording is not None else "proxy" if self.proxy else None
        if source is not None:
            raise ValueError(f"latency does not pace a {source}, which keeps its own timing; remove latency")
        return self

    def matches(
        self,
        prompt: str,
        model: str | None,
        headers: Mapping[str, str],
        path: str = "",
        conversation: Conversation = NO_CONVERSATION,
    ) -> bool:
        """Whether every `match` rule fits (each regex looking at the first MATCH_INPUT_CHARS characters
        of its value); a scenario without rules matches nothing."""
        rules = self.match
        if rules is None:
            return False
        if not rules.fits_conversation(conversation):
            return False
        if rules.prompt is not None and not rules.prompt.search(prompt):
            return False
        if rules.model is not None and not rules.model.search(model or ""):
            return False
        if rules.path is not None and not rules.path.search(path):
            return False
        return all(pattern.search(headers.get(name, "")) for name, pattern in rules.headers.items())


SCENARIO_FIELDS = tuple(Scenario.model_fields)


def load_scenario(document: Document, default_name: str | None = None) -> Scenario:
    """Validate a parsed scenario; raises ScenarioError listing every problem as `source:line: ...`."""
    data = document.data
    if not isinstance(data, Mapping):
        kind = type(data).__name__ if data is not None else "nothing"
        raise ScenarioError([Problem(document.source, 1, f"a scenario is a mapping of fields, not {kind}")])
    fields = dict(data)
    if default_name is not None:
        fields.setdefault("name", default_name)
    # A key and its value, or two keys, may show as one path once their surrogates are replaced.
    surrogates = (_lone_surrogate_problem(document, path) for path in lone_surrogates(fields))
    flagged = {problem.path: problem for problem in surrogates}
    problems = list(flagged.values())
    if problems:
        fields = replace_lone_surrogates(fields)  # so that no other problem quotes one
    try:
        scenario = Scenario.model_validate(fields)
    except ValidationError as exc:
        found = problems_from(exc.errors(), fields, Scenario, document)
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
