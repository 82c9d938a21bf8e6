"""Dialects and whole-response rendering as pure functions: steps in, events or one body out."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mock_server.dialects import DIALECTS, Dialect, StreamInfo, bedrock, collect_answer, gemini, ollama
from mock_server.dialects.answer import Answer, ToolCall
from mock_server.scenarios import steps
from mock_server.timeline.compile import Timeline, Usage
from mock_server.wire.actions import Drop, Hang, Reset, Wait, Write
from mock_server.wire.eventstream import EVENT_STREAM
from mock_server.wire.frames import Event
from mock_server.wire.framing import NDJSON
from mock_server.wire.rendering import render_whole

INFO = StreamInfo(key="ab" * 32, created=1_700_000_000, model="m", usage=Usage(3, 7))
EVERY_CONTENT_STEP: list[steps.ContentStep] = [
    steps.Reasoning("think"),
    steps.Text("hello"),
    steps.ToolCallStart(0, "call_1", "get_weather"),
    steps.ToolCallArguments(0, '{"city": '),
    steps.ToolCallArguments(0, '"Oslo"}'),
    steps.Finish("tool_calls"),
]
dialects = pytest.mark.parametrize("spec", DIALECTS.values(), ids=list(DIALECTS))
TEXT_DIALECTS = {name: spec for name, spec in DIALECTS.items() if spec.framing is not EVENT_STREAM}
text_dialects = pytest.mark.parametrize("spec", TEXT_DIALECTS.values(), ids=list(TEXT_DIALECTS))
"""The dialects whose events are text (SSE, NDJSON, JSON): Bedrock's are binary frames, a malformed one
a frame with a wrong CRC and an unknown one a frame of another type, which tests/test_bedrock.py checks."""


@dialects
def test_every_dialect_renders_every_content_step_as_json_events(spec: Dialect) -> None:
    dialect = spec.stream(INFO)
    events = [*dialect.start(), *(e for step in EVERY_CONTENT_STEP for e in dialect.events(step)), *dialect.end()]
    for event in events:
        assert event.data is not None
        if event.data != "[DONE]":
            json.loads(event.data)
        if event.event is not None and spec.framing.sse:  # an event-stream frame's type is a header of its own
            assert json.loads(event.data)["type"] == event.event


@dialects
def test_every_dialect_renders_the_mid_stream_error(spec: Dialect) -> None:
    (event,) = spec.stream(INFO).events(steps.ErrorEvent("boom", "server_error", "c"))
    assert event.data is not None
    assert "boom" in event.data


@dialects
def test_only_a_dated_dialect_writes_the_response_time(spec: Dialect) -> None:
    """An undated dialect's stream and whole body are the same in any second, so one rendering serves
    every request of the stream; a dated one's are not."""

    def written(created: int) -> tuple[list[Event], dict[str, object]]:
        info = replace(INFO, created=created)
        dialect = spec.stream(info)
        events = [*dialect.start(), *(e for step in EVERY_CONTENT_STEP for e in dialect.events(step)), *dialect.end()]
        return events, spec.complete(info, collect_answer(EVERY_CONTENT_STEP))

    assert (written(1_700_000_000) != written(1_800_000_000)) is spec.dated


@dialects
def test_same_stream_renders_the_same_bytes(spec: Dialect) -> None:
    def run() -> list[object]:
        dialect = spec.stream(INFO)
        return [*dialect.start(), *(e for step in EVERY_CONTENT_STEP for e in dialect.events(step)), *dialect.end()]

    assert run() == run()


def test_responses_sequence_numbers_count_every_event_from_zero() -> None:
    dialect = DIALECTS["openai-responses"].stream(INFO)
    events = [*dialect.start(), *(e for step in EVERY_CONTENT_STEP for e in dialect.events(step)), *dialect.end()]
    assert [json.loads(e.data or "")["sequence_number"] for e in events] == list(range(len(events)))


@pytest.mark.parametrize(("reason", "terminal"), [("stop", "response.completed"), ("length", "response.incomplete")])
def test_responses_end_says_whether_the_answer_is_complete(reason: str, terminal: str) -> None:
    dialect = DIALECTS["openai-responses"].stream(INFO)
    dialect.start()
    dialect.events(steps.Text("hi"))
    dialect.events(steps.Finish(reason))
    (event,) = dialect.end()
    assert event.event == terminal


@pytest.mark.parametrize(
    ("given", "sent"),
    [("server_error", "overloaded_error"), ("api_error", "api_error"), ("rate_limit_error", "rate_limit_error")],
)
def test_anthropic_error_event_uses_anthropic_types(given: str, sent: str) -> None:
    (event,) = DIALECTS["anthropic"].stream(INFO).events(steps.ErrorEvent("m", given))
    assert json.loads(event.data or "") == {"type": "error", "error": {"type": sent, "message": "m"}}


def test_chat_role_comes_with_the_first_tool_call_when_the_answer_opens_with_one() -> None:
    dialect = DIALECTS["openai-chat"].stream(INFO)
    (event,) = dialect.events(steps.ToolCallStart(0, "call_1", "f"))
    delta = json.loads(event.data or "")["choices"][0]["delta"]
    assert delta["role"] == "assistant"
    assert delta["content"] is None
    assert delta["tool_calls"][0]["function"] == {"name": "f", "arguments": ""}


def test_collect_answer_joins_pieces_and_ignores_wire_steps() -> None:
    timeline_steps = [steps.Sleep(5), *EVERY_CONTENT_STEP[:3], steps.Comment("x"), *EVERY_CONTENT_STEP[3:]]
    assert collect_answer(timeline_steps) == Answer(
        "hello", "think", (ToolCall("call_1", "get_weather", '{"city": "Oslo"}'),), "tool_calls"
    )


def test_collect_answer_stops_at_an_error() -> None:
    error = steps.ErrorEvent("boom")
    assert collect_answer([steps.Text("a"), error]) == Answer(error=error)


def test_whole_response_waits_for_the_sum_of_the_timeline_sleeps() -> None:
    timeline = Timeline("s", steps=(steps.Sleep(100), steps.Text("a"), steps.Stall(50), steps.Finish()))
    whole = render_whole(timeline, lambda: DIALECTS["openai-chat"].whole_body(INFO, timeline.steps))
    assert whole.status == 200
    assert whole.actions == (Wait(0.15), Write(whole.body, 1))
    assert json.loads(whole.body)["choices"][0]["message"]["content"] == "a"


@pytest.mark.parametrize(("step", "end"), [(steps.Drop(), Drop()), (steps.Reset(), Reset()), (steps.Stall(), Hang())])
def test_whole_response_is_cut_before_its_body(step: steps.Step, end: object) -> None:
    timeline = Timeline("s", steps=(steps.Sleep(20), steps.Text("a"), step))
    answer = DIALECTS["anthropic"].whole_body
    assert render_whole(timeline, lambda: answer(INFO, timeline.steps)).actions == (Wait(0.02), end)


def test_whole_response_with_an_error_is_the_dialect_http_error() -> None:
    timeline = Timeline("s", steps=(steps.Text("a"), steps.ErrorEvent("boom", "overloaded_error")))
    whole = render_whole(timeline, lambda: DIALECTS["anthropic"].whole_body(INFO, timeline.steps))
    assert whole.status == 529
    assert json.loads(whole.body) == {"type": "error", "error": {"type": "overloaded_error", "message": "boom"}}


# --- each fault in the dialect's own framing -------------------------------------------------------

OPENAI_SERVER_ERROR = {
    "message": "The server had an error while processing your request. Sorry about that!",
    "type": "server_error",
    "param": None,
    "code": None,
}
DEFAULT_ERROR_EVENTS = {
    "openai-chat": (None, {"error": OPENAI_SERVER_ERROR}),
    "openai-completions": (None, {"error": OPENAI_SERVER_ERROR}),
    "openai-responses": (
        "error",
        {
            "type": "error",
            "error": {"type": "server_error", "code": None, "message": OPENAI_SERVER_ERROR["message"], "param": None},
            "sequence_number": 0,
        },
    ),
    "anthropic": ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    "ollama-chat": (None, {"error": ollama.MID_STREAM_ERROR}),
    "ollama-generate": (None, {"error": ollama.MID_STREAM_ERROR}),
    # Google writes it as a bare JSON object, not an SSE event: its framing does so with the event named `error`.
    "gemini": ("error", gemini.error_body(500, None)),
    "azure-openai": (None, {"error": OPENAI_SERVER_ERROR}),
    "azure-openai-completions": (None, {"error": OPENAI_SERVER_ERROR}),
    # An exception frame, not an event: the model's failure, with the status it reports.
    **{
        name: (
            "modelStreamErrorException",
            {
                "message": bedrock.MODEL_STREAM_ERROR_MESSAGE,
                "originalStatusCode": 500,
                "originalMessage": bedrock.MODEL_STREAM_ERROR_MESSAGE,
            },
        )
        for name in ("bedrock-converse", "bedrock-invoke")
    },
}
DELTA_EVENT = {
    "openai-chat": None,
    "openai-completions": None,
    "openai-responses": "response.output_text.delta",
    "anthropic": "content_block_delta",
    "ollama-chat": None,
    "ollama-generate": None,
    "gemini": None,
    "azure-openai": None,
    "azure-openai-completions": None,
}


def _data(event: Event) -> str:
    assert event.data is not None
    return event.data


def _parses(data: str) -> bool:
    try:
        json.loads(data)
    except json.JSONDecodeError:
        return False
    return True


@dialects
def test_an_error_step_without_fields_is_the_provider_own_error_event(spec: Dialect) -> None:
    (event,) = spec.stream(INFO).events(steps.ErrorEvent())
    assert (event.event, json.loads(_data(event))) == DEFAULT_ERROR_EVENTS[spec.name]


@text_dialects
def test_a_whole_response_fails_with_the_error_its_stream_would_send(spec: Dialect) -> None:
    error = steps.ErrorEvent()
    status, body = spec.whole_body(INFO, [steps.Text("a"), error])
    sent = json.loads(_data(spec.stream(INFO).events(error)[0]))
    assert json.loads(body)["error"] == sent["error"]
    assert status == (529 if spec.name == "anthropic" else 500)


@pytest.mark.parametrize(
    ("error", "sent"),
    [
        (steps.ErrorEvent("boom"), {"type": "overloaded_error", "message": "boom"}),
        (steps.ErrorEvent(type="api_error"), {"type": "api_error", "message": "Internal server error"}),
        (
            steps.ErrorEvent(type="rate_limit_error"),
            {
                "type": "rate_limit_error",
                "message": "Number of request tokens has exceeded your per-minute rate limit.",
            },
        ),
    ],
)
def test_anthropic_error_fields_not_given_are_anthropic_own(error: steps.ErrorEvent, sent: dict[str, str]) -> None:
    (event,) = DIALECTS["anthropic"].stream(INFO).events(error)
    assert json.loads(_data(event)) == {"type": "error", "error": sent}


def test_openai_error_fields_not_given_are_openai_own() -> None:
    (event,) = DIALECTS["openai-chat"].stream(INFO).events(steps.ErrorEvent(type="insufficient_quota", code="q"))
    assert json.loads(_data(event)) == {"error": {**OPENAI_SERVER_ERROR, "type": "insufficient_quota", "code": "q"}}


@text_dialects
def test_malformed_is_the_dialect_next_delta_cut_inside_its_string(spec: Dialect) -> None:
    dialect = spec.stream(INFO)
    dialect.start()
    dialect.events(steps.Text("a"))
    (broken,) = dialect.events(steps.Malformed())
    (following,) = dialect.events(steps.Text("hello"))
    assert broken.event == following.event == DELTA_EVENT[spec.name]
    assert not _parses(_data(broken))
    assert _data(following).startswith(_data(broken) + "hello")


@text_dialects
def test_malformed_with_data_sends_that_data_in_the_dialect_framing(spec: Dialect) -> None:
    dialect = spec.stream(INFO)
    dialect.start()
    (event,) = dialect.events(steps.Malformed("{not json"))
    assert (event.event, event.data) == (DELTA_EVENT[spec.name], "{not json")


@pytest.mark.parametrize(
    ("content", "delta"),
    [
        (steps.Reasoning("think"), '"delta":{"type":"thinking_delta","thinking":"'),
        (steps.ToolCallStart(0, "call_1", "f"), '"delta":{"type":"input_json_delta","partial_json":"'),
    ],
)
def test_anthropic_malformed_delta_is_of_the_open_block(content: steps.ContentStep, delta: str) -> None:
    dialect = DIALECTS["anthropic"].stream(INFO)
    dialect.start()
    dialect.events(content)
    (event,) = dialect.events(steps.Malformed())
    assert _data(event).endswith(delta)


def test_responses_malformed_delta_is_of_the_open_item() -> None:
    dialect = DIALECTS["openai-responses"].stream(INFO)
    dialect.start()
    dialect.events(steps.Reasoning("think"))
    (event,) = dialect.events(steps.Malformed())
    assert event.event == "response.reasoning_text.delta"


@text_dialects
def test_unknown_event_is_well_formed_and_of_a_type_the_client_does_not_know(spec: Dialect) -> None:
    dialect = spec.stream(INFO)
    dialect.start()
    (event,) = dialect.events(steps.UnknownEvent())
    data = json.loads(_data(event))
    if spec.framing is NDJSON:  # Ollama's: a line with the fields a cloud model's answer adds
        assert (data["remote_model"], data["remote_host"], data["done"]) == ("m", ollama.REMOTE_HOST, False)
    elif spec.name == "gemini":  # a chunk without a candidate, with a field no SDK declares
        assert gemini.UNKNOWN_FIELD in data
        assert "candidates" not in data
    elif spec.name.startswith("azure-"):  # its asynchronous filter's verdicts: a choice with no delta
        (choice,) = data["choices"]
        assert set(choice) == {"content_filter_offsets", "content_filter_results", "finish_reason", "index"}
    elif event.event is None:  # data-only: Azure OpenAI's prompt-filter chunk, no choice
        assert data["choices"] == []
        assert data["prompt_filter_results"][0]["prompt_index"] == 0
    else:
        assert data["type"] == event.event
        assert event.event not in {e.event for e in _every_event(spec)}


def _every_event(spec: Dialect) -> list[Event]:
    dialect = spec.stream(INFO)
    return [*dialect.start(), *(e for step in EVERY_CONTENT_STEP for e in dialect.events(step)), *dialect.end()]


def test_chat_role_chunk_waits_for_the_answer_after_an_unknown_event() -> None:
    dialect = DIALECTS["openai-chat"].stream(INFO)
    (unknown,) = dialect.events(steps.UnknownEvent())
    role, _ = dialect.events(steps.Text("hi"))
    assert json.loads(_data(unknown))["choices"] == []
    assert json.loads(_data(role))["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}


def test_responses_sequence_numbers_count_the_unknown_event_and_skip_the_malformed_one() -> None:
    dialect = DIALECTS["openai-responses"].stream(INFO)
    faults: list[steps.ContentStep] = [steps.UnknownEvent(), steps.Malformed()]
    events = [
        *dialect.start(),
        *(
            e
            for step in [*faults, *EVERY_CONTENT_STEP[:2], *faults, *EVERY_CONTENT_STEP[2:]]
            for e in dialect.events(step)
        ),
        *dialect.end(),
    ]
    parsed = [json.loads(_data(e)) for e in events if _parses(_data(e))]
    assert len(parsed) == len(events) - 2
    assert [p["sequence_number"] for p in parsed] == list(range(len(parsed)))
    assert sum(p["type"] == "response.mock_unknown_event" for p in parsed) == 2
