"""The official `openai` package against /v1, unmodified: streams, whole responses, errors, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from mock_server.http.server import MockServer

UNPACED = {"X-Mock-Chunk-Ms": "0"}
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Where is Zürich?"}]
GOLDEN_REPLY, GOLDEN_REASONING = "Looking it up.", "Check the weather."


@pytest.fixture
def client(server: MockServer) -> Iterator[OpenAI]:
    """A client closed after the test: a stream a test leaves unfinished (it raised) gives its
    connection back then, not whenever the garbage collector finds it."""
    with OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
        yield client


def test_streamed_chat_text_equals_the_scenario_reply(client: OpenAI) -> None:
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=UNPACED)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: Where is Zürich?"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks][-2:] == [None, "stop"]
    assert {(c.id, c.created, c.model, c.system_fingerprint) for c in chunks} == {
        (chunks[0].id, chunks[0].created, "gpt-4o", chunks[0].system_fingerprint)
    }


def test_async_streamed_chat_text_equals_the_scenario_reply(server: MockServer) -> None:
    async def collect() -> str:
        async with AsyncOpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="default", messages=MESSAGES, stream=True, extra_headers=UNPACED
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream])

    assert asyncio.run(collect()) == "You said: Where is Zürich?"


def test_include_usage_adds_a_final_usage_chunk_with_no_choices(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="golden", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    *chunks, last = list(stream)
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks)


def test_usage_chunk_is_absent_without_include_usage(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="golden", messages=MESSAGES, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)


def test_whole_chat_completion_carries_reply_and_usage(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="default", messages=MESSAGES, extra_headers=UNPACED)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "You said: Where is Zürich?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0


def test_streamed_tool_call_arguments_parse_as_json(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="tool-call", messages=MESSAGES, stream=True, extra_headers=UNPACED)
    )
    first = chunks[0].choices[0].delta
    assert (first.role, first.content) == ("assistant", None)
    assert first.tool_calls is not None
    (opening,) = first.tool_calls
    assert opening.id
    assert opening.type == "function"
    assert opening.function is not None
    assert (opening.function.name, opening.function.arguments) == ("get_weather", "")
    fragments = [
        call.function.arguments
        for chunk in chunks[1:]
        for call in chunk.choices[0].delta.tool_calls or []
        if call.function and call.function.arguments
    ]
    assert len(fragments) > 1
    assert json.loads("".join(fragments)) == {"location": "Paris, France", "unit": "celsius"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_stream_helper_accumulates_the_tool_call(client: OpenAI) -> None:
    with client.chat.completions.stream(model="tool-call", messages=MESSAGES, extra_headers=UNPACED) as stream:
        completion = stream.get_final_completion()
    (call,) = completion.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert json.loads(call.function.arguments) == {"location": "Paris, France", "unit": "celsius"}


def test_whole_tool_call_completion_has_null_content(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="tool-call", messages=MESSAGES, extra_headers=UNPACED)
    message = completion.choices[0].message
    assert message.content is None
    (call,) = message.tool_calls or []
    assert call.type == "function"
    assert json.loads(call.function.arguments)["location"] == "Paris, France"
    assert completion.choices[0].finish_reason == "tool_calls"


def test_reasoning_streams_as_reasoning_content_before_the_answer(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="golden", messages=MESSAGES, stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    reasoning = [getattr(d, "reasoning_content", None) for d in deltas]
    content = [d.content for d in deltas]
    assert "".join(r or "" for r in reasoning) == GOLDEN_REASONING
    assert "".join(c or "" for c in content) == GOLDEN_REPLY
    last_reasoning = max(i for i, r in enumerate(reasoning) if r)
    first_text = min(i for i, c in enumerate(content) if c)
    assert last_reasoning < first_text


def test_legacy_completions_stream_and_whole(client: OpenAI) -> None:
    chunks = list(client.completions.create(model="golden", prompt="hi", stream=True))
    assert {c.object for c in chunks} == {"text_completion"}
    assert "".join(c.choices[0].text for c in chunks) == GOLDEN_REPLY
    assert chunks[-1].choices[0].finish_reason == "stop", "a legacy answer without its tool calls just stops"
    whole = client.completions.create(model="golden", prompt="hi")
    assert whole.choices[0].text == GOLDEN_REPLY
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None


def test_responses_stream_deltas_in_sequence(client: OpenAI) -> None:
    events = list(client.responses.create(model="golden", input="hi", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == GOLDEN_REPLY
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert reasoning == GOLDEN_REASONING
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"city": "Zürich"}


def test_responses_stream_helper_and_whole_response_agree(client: OpenAI) -> None:
    with client.responses.stream(model="golden", input="hi") as stream:
        streamed = stream.get_final_response()
    whole = client.responses.create(model="golden", input="hi")
    assert streamed.output_text == whole.output_text == GOLDEN_REPLY
    clock = {"created_at", "completed_at"}  # two requests may straddle a second
    assert streamed.model_dump(exclude_none=True, exclude=clock) == whole.model_dump(exclude_none=True, exclude=clock)
    assert [item.type for item in whole.output] == ["reasoning", "message", "function_call"]


def test_models_lists_every_scenario(client: OpenAI, server: MockServer) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"default", "tool-call", "reasoning", "golden", "mid-stream-drop"} <= ids


def test_unknown_model_falls_through_to_the_default_scenario(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=UNPACED)
    assert completion.choices[0].message.content == "You said: Where is Zürich?"


def test_unknown_scenario_header_is_not_found_with_the_known_names(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"X-Mock-Scenario": "nope"})
    assert "Known scenarios:" in caught.value.message
    assert caught.value.code == "scenario_not_found"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("status:429", openai.RateLimitError),
        ("status:401", openai.AuthenticationError),
        ("status:500", openai.InternalServerError),
        ("status:503", openai.InternalServerError),
        ("status:400", openai.BadRequestError),
    ],
)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_status_faults_raise_the_sdk_error_for_the_status(
    client: OpenAI, fault: str, error: type[openai.APIStatusError], stream: bool
) -> None:
    with pytest.raises(error) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=stream, extra_headers={"X-Mock-Fault": fault}
        )
    assert caught.value.status_code == int(fault.split(":")[1])
    assert isinstance(caught.value.body, dict)
    assert set(caught.value.body) >= {"message", "type", "code"}


def test_rate_limited_scenario_gives_retry_after(client: OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="rate-limited", messages=MESSAGES, stream=True)
    assert caught.value.response.headers["retry-after"] == "2"


def test_sdk_retry_gets_the_answer_after_a_scripted_503(server: MockServer) -> None:
    with OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=1) as retrying:
        completion = retrying.chat.completions.create(model="flaky", messages=MESSAGES)
    assert completion.choices[0].message.content == "Second time lucky."
    journal = httpx.get(server.url + "/_mock/requests").json()
    assert [r["status"] for r in journal if r["scenario"] == "flaky"] == [503, 200]


def open_stream(client: OpenAI, api: str, fault: str) -> Iterator[object]:
    """A streaming request to the chat, the legacy completions or the Responses API, with a fault."""
    headers = {"X-Mock-Fault": fault}
    if api == "chat":
        return iter(
            client.chat.completions.create(model="golden", messages=MESSAGES, stream=True, extra_headers=headers)
        )
    if api == "completions":
        return iter(client.completions.create(model="golden", prompt="hi", stream=True, extra_headers=headers))
    return iter(client.responses.create(model="golden", input="hi", stream=True, extra_headers=headers))


@pytest.mark.parametrize("fault", ["drop@3", "reset@3"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_cut_stream_raises_while_iterating(client: OpenAI, fault: str, api: str) -> None:
    stream = open_stream(client, api, fault)
    received = [next(stream), next(stream)]
    with pytest.raises(openai.APIConnectionError):
        received.extend(stream)
    assert len(received) > 2, "the events before the cut arrive first"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_error_event_raises_api_error(client: OpenAI, api: str) -> None:
    stream = open_stream(client, api, "error@2:The model is overloaded")
    with pytest.raises(openai.APIError, match="The model is overloaded"):
        list(stream)


@pytest.mark.parametrize("api", ["chat", "completions", "responses"])
def test_default_error_event_raises_with_openai_own_wording(client: OpenAI, api: str) -> None:
    stream = open_stream(client, api, "error@2")
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert caught.value.message == "The server had an error while processing your request. Sorry about that!"
    assert caught.value.type == "server_error"


@pytest.mark.parametrize("api", ["chat", "completions", "responses"])
def test_malformed_event_raises_while_iterating(client: OpenAI, api: str) -> None:
    """Not an APIError: the SDK lets the JSON error out as it is, after the events before it."""
    stream = open_stream(client, api, "malformed@4")
    next(stream)
    with pytest.raises(json.JSONDecodeError):
        list(stream)


def test_unknown_event_is_skipped_by_the_responses_stream(client: OpenAI) -> None:
    headers = {"X-Mock-Fault": "unknown_event@2"}
    with client.responses.stream(model="golden", input="hi", extra_headers=headers) as stream:
        events = list(stream)
        response = stream.get_final_response()
    assert response.output_text == GOLDEN_REPLY
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [str(e.type) for e in events].count("response.mock_unknown_event") == 1


def test_unknown_event_in_chat_is_azure_chunk_without_choices(client: OpenAI) -> None:
    """What Azure OpenAI streams do to a `chunk.choices[0]` loop, and what copes with it."""
    headers = {"X-Mock-Fault": "unknown_event@0"}
    stream = client.chat.completions.create(model="golden", messages=MESSAGES, stream=True, extra_headers=headers)
    with pytest.raises(IndexError):
        "".join(chunk.choices[0].delta.content or "" for chunk in stream)  # the README's loop
    chunks = list(client.chat.completions.create(model="golden", messages=MESSAGES, stream=True, extra_headers=headers))
    assert chunks[0].choices == []
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == GOLDEN_REPLY
    with client.chat.completions.stream(model="golden", messages=MESSAGES, extra_headers=headers) as helper:
        assert helper.get_final_completion().choices[0].message.content == GOLDEN_REPLY


def test_duplicate_event_reaches_the_sdk_twice(client: OpenAI) -> None:
    """The SDKs cannot tell a repeated chunk: the text repeats; Responses events repeat their number."""
    headers = {"X-Mock-Fault": "duplicate@3"}
    chunks = list(client.chat.completions.create(model="golden", messages=MESSAGES, stream=True, extra_headers=headers))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Looking" + GOLDEN_REPLY
    events = list(client.responses.create(model="golden", input="hi", stream=True, extra_headers=headers))
    numbers = [e.sequence_number for e in events]
    assert len(numbers) == len(set(numbers)) + 1
    assert sorted(set(numbers)) == list(range(len(events) - 1))


def test_error_in_a_whole_response_is_a_server_error(client: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError, match="The model is overloaded"):
        client.chat.completions.create(
            model="golden", messages=MESSAGES, extra_headers={"X-Mock-Fault": "error@2:The model is overloaded"}
        )


@pytest.mark.parametrize("fault", ["drop@3", "reset@3"])
def test_cut_whole_response_raises_a_connection_error(client: OpenAI, fault: str) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="golden", messages=MESSAGES, extra_headers={"X-Mock-Fault": fault})


def test_stall_without_end_times_out_the_sdk(server: MockServer) -> None:
    with OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0, timeout=0.5) as impatient:
        stream = impatient.chat.completions.create(
            model="golden", messages=MESSAGES, stream=True, extra_headers={"X-Mock-Fault": "stall@2"}
        )
        with pytest.raises(openai.APITimeoutError):
            list(stream)
