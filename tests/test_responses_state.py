"""The Responses API's state through the official `openai` package: responses are stored unless
`store: false`, `GET /v1/responses/{id}` returns them, `previous_response_id` continues one (its
turns and its place in a sequence) or is OpenAI's 400 when none of that id is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from mock_server.conversations.responses import ResponseStore
from mock_server.http.server import MockServer
from mock_server.settings import Settings

UNPACED = {"X-Mock-Chunk-Ms": "0"}
STEPS = ["Step one.", "Step two.", "Step three."]


@pytest.fixture
def server(make_server: Callable[..., MockServer]) -> MockServer:
    """A server of the test's own (responses are stored in it, and reset empties them)."""
    running = make_server()
    running.add_scenario("steps", replies=STEPS)
    return running


@pytest.fixture
def client(server: MockServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0, default_headers=UNPACED) as client:
        yield client


def test_a_chain_of_responses_is_one_conversation_through_the_sequence(client: OpenAI) -> None:
    first = client.responses.create(model="steps", input="Begin")
    client.responses.create(model="steps", input="Another conversation")  # names no previous response
    second = client.responses.create(model="steps", input="Go on", previous_response_id=first.id)
    third = client.responses.create(model="steps", input="Go on", previous_response_id=second.id)
    assert [r.output_text for r in (first, second, third)] == STEPS
    assert (second.previous_response_id, third.previous_response_id) == (first.id, second.id)
    assert len({first.id, second.id, third.id}) == 3


def test_a_stored_response_is_returned_as_it_was_created(client: OpenAI) -> None:
    created = client.responses.create(model="steps", input="Begin")
    assert client.responses.retrieve(created.id) == created
    assert created.to_dict()["store"] is True


def test_a_streamed_response_is_stored_as_its_completed_event_carries_it(client: OpenAI) -> None:
    events = list(client.responses.create(model="steps", input="Begin", stream=True))
    completed = events[-1]
    assert completed.type == "response.completed"
    stored = client.responses.retrieve(completed.response.id)
    assert stored.output_text == "Step one."
    assert stored.model_dump(exclude={"created_at", "completed_at"}) == completed.response.model_dump(
        exclude={"created_at", "completed_at"}
    )


def test_an_unknown_previous_response_is_openais_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="steps", input="Go on", previous_response_id="resp_unknown")
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["message"].startswith("Previous response with id 'resp_unknown' not found.")
    assert body == {
        "message": body["message"],
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }


def test_a_response_not_stored_can_be_neither_retrieved_nor_continued(client: OpenAI) -> None:
    unstored = client.responses.create(model="steps", input="Begin", store=False)
    assert unstored.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="steps", input="Go on", previous_response_id=unstored.id)
    assert raised.value.code == "previous_response_not_found"


def test_reset_and_delete_forget_stored_responses(server: MockServer, client: OpenAI) -> None:
    kept, deleted = (client.responses.create(model="steps", input=text) for text in ("one", "two"))
    client.responses.delete(deleted.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(deleted.id)
    assert client.responses.retrieve(kept.id).id == kept.id
    server.reset()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)


def test_a_continued_response_counts_the_turns_before_it(server: MockServer, client: OpenAI) -> None:
    server.add_scenario("follow-up", reply="Turn two or later.", match={"turn": {"min": 2}})
    first = client.responses.create(model="gpt-4o", input="Hello")
    second = client.responses.create(model="gpt-4o", input="Hello again", previous_response_id=first.id)
    assert first.output_text == "You said: Hello"
    assert second.output_text == "Turn two or later."


def test_a_function_call_output_takes_its_tools_name_from_the_previous_response(
    server: MockServer, client: OpenAI
) -> None:
    server.add_scenario("agent", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    server.add_scenario("after-weather", reply="Sunny, then.", match={"tool_result": {"name": "^get_weather$"}})
    called = client.responses.create(model="agent", input="Weather in Paris?")
    call = next(item for item in called.output if item.type == "function_call")
    answered = client.responses.create(
        model="gpt-4o",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}],
        previous_response_id=called.id,
    )
    assert answered.output_text == "Sunny, then."


def test_an_async_streamed_chain_goes_through_the_sequence(server: MockServer) -> None:
    async def converse() -> list[str]:
        texts = []
        previous = None
        async with AsyncOpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
            for text in ("Begin", "Go on", "Go on"):
                stream = await client.responses.create(
                    model="steps", input=text, stream=True, previous_response_id=previous, extra_headers=UNPACED
                )
                async for event in stream:
                    if event.type == "response.completed":
                        previous = event.response.id
                        texts.append(event.response.output_text)
        return texts

    assert asyncio.run(converse()) == STEPS


def test_through_a_proxy_the_upstream_keeps_and_continues_its_own_responses() -> None:
    with (
        MockServer(settings=Settings(port=0, access_log=False)) as upstream,
        MockServer(settings=Settings(port=0, access_log=False, upstream=upstream.url)) as proxy,
        OpenAI(base_url=proxy.openai_base_url, api_key="x", max_retries=0, default_headers=UNPACED) as client,
    ):
        upstream.add_scenario("steps", replies=STEPS)
        first = client.responses.create(model="steps", input="Begin")
        second = client.responses.create(model="steps", input="Go on", previous_response_id=first.id)
        assert client.responses.retrieve(first.id).output_text == "Step one."
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve("resp_unknown")
        forwarded = [record.path for record in upstream.requests]
    assert second.output_text == "Step two."
    assert forwarded == ["/v1/responses", "/v1/responses", f"/v1/responses/{first.id}", "/v1/responses/resp_unknown"]


def test_stored_responses_are_bounded_in_memory(make_server: Callable[..., MockServer]) -> None:
    server = make_server(responses_max_bytes=16 << 10)
    with OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0, default_headers=UNPACED) as client:
        created = [client.responses.create(model="gpt-4o", input=f"question {n}") for n in range(20)]
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(created[0].id)
        assert client.responses.retrieve(created[-1].id).output_text == "You said: question 19"
    app = server.app
    assert app is not None
    assert isinstance(app.state.responses, ResponseStore)
    assert 0 < len(app.state.responses) < 20
