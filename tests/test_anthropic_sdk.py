"""The official `anthropic` package against /v1/messages, unmodified: streams, whole messages, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import httpx2
import pytest
from anthropic import Anthropic, AsyncAnthropic

from mock_server.http.server import MockServer

UNPACED = {"X-Mock-Chunk-Ms": "0"}
MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Where is Zürich?"}]
GOLDEN_REPLY, GOLDEN_REASONING = "Looking it up.", "Check the weather."


@pytest.fixture
def client(server: MockServer) -> Iterator[Anthropic]:
    with Anthropic(base_url=server.url, api_key="x", max_retries=0) as client:
        yield client


def test_text_stream_equals_the_scenario_reply(client: Anthropic) -> None:
    with client.messages.stream(
        model="claude-mock-1", max_tokens=256, messages=MESSAGES, extra_headers=UNPACED
    ) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "You said: Where is Zürich?"
    assert message.content[0].type == "text"
    assert message.content[0].text == text
    assert message.stop_reason == "end_turn"
    assert message.model == "claude-mock-1"
    assert message.usage.output_tokens > 0


def test_async_text_stream_equals_the_scenario_reply(server: MockServer) -> None:
    async def collect() -> str:
        client = AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0)
        async with (
            client,
            client.messages.stream(model="default", max_tokens=256, messages=MESSAGES, extra_headers=UNPACED) as stream,
        ):
            return "".join([text async for text in stream.text_stream])

    assert asyncio.run(collect()) == "You said: Where is Zürich?"


def test_raw_events_come_in_the_service_order(client: Anthropic) -> None:
    events = list(client.messages.create(model="golden", max_tokens=256, messages=MESSAGES, stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-2:] == ["message_delta", "message_stop"]
    assert types.count("content_block_start") == types.count("content_block_stop") == 3


def test_thinking_tool_use_and_text_accumulate(client: Anthropic) -> None:
    with client.messages.stream(model="golden", max_tokens=256, messages=MESSAGES) as stream:
        message = stream.get_final_message()
    thinking, text, tool = message.content
    assert thinking.type == "thinking"
    assert thinking.thinking == GOLDEN_REASONING
    assert thinking.signature
    assert text.type == "text"
    assert text.text == GOLDEN_REPLY
    assert tool.type == "tool_use"
    assert (tool.name, tool.input) == ("get_weather", {"city": "Zürich"})
    assert tool.id.startswith("toolu_")
    assert message.stop_reason == "tool_use"


def test_whole_message_equals_the_streamed_one(client: Anthropic) -> None:
    with client.messages.stream(model="golden", max_tokens=256, messages=MESSAGES) as stream:
        streamed = stream.get_final_message()
    whole = client.messages.create(model="golden", max_tokens=256, messages=MESSAGES)
    assert whole.model_dump(exclude_none=True) == streamed.model_dump(exclude_none=True)


def test_error_event_raises_while_streaming(client: Anthropic) -> None:
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(
            model="golden", max_tokens=256, messages=MESSAGES, extra_headers={"X-Mock-Fault": "error@2"}
        ) as stream,
    ):
        received.extend(stream.text_stream)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "The server had an error while processing your request."},
    }
    assert received == []  # the error came during the thinking block, before any text


def test_error_in_a_whole_message_is_overloaded(client: Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model="golden", max_tokens=256, messages=MESSAGES, extra_headers={"X-Mock-Fault": "error@2"}
        )
    assert caught.value.status_code == 529
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.InternalServerError, "overloaded_error"),
    ],
)
def test_status_faults_raise_the_sdk_error_in_anthropic_shape(
    client: Anthropic, status: int, error: type[anthropic.APIStatusError], kind: str
) -> None:
    with pytest.raises(error) as caught:
        client.messages.create(
            model="x",
            max_tokens=256,
            messages=MESSAGES,
            stream=True,
            extra_headers={"X-Mock-Fault": f"status:{status}"},
        )
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == kind


def test_missing_max_tokens_is_a_bad_request_naming_the_field(client: Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens") as caught:
        client.messages.create(model="x", max_tokens=256, messages=MESSAGES, extra_body={"max_tokens": None})
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("fault", "error"), [("drop@3", httpx2.RemoteProtocolError), ("reset@3", httpx2.ReadError)], ids=["drop", "reset"]
)
def test_cut_stream_raises_instead_of_a_short_message(client: Anthropic, fault: str, error: type[Exception]) -> None:
    """The SDK lets transport errors out of the stream unwrapped."""
    received: list[object] = []
    with (
        pytest.raises(error),
        client.messages.stream(
            model="golden", max_tokens=256, messages=MESSAGES, extra_headers={"X-Mock-Fault": fault}
        ) as stream,
    ):
        received.extend(stream)
    assert received, "the events before the cut arrive first"


def test_models_list_in_anthropic_shape(client: Anthropic) -> None:
    ids = [model.id for model in client.models.list()]
    assert "golden" in ids
    assert ids == sorted(ids)
