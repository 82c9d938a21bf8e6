"""Azure OpenAI through the official `openai` package's AzureOpenAI and AsyncAzureOpenAI, unmodified:
the deployment routes, `api-version`, the content filter's chunks and refusals, Azure's error shapes
and headers, and every fault as the chat endpoint plays it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncAzureOpenAI, AzureOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel

from mock_server.http.azure import API_VERSIONS, EXAMPLE_VERSION
from mock_server.http.server import MockServer
from mock_server.settings import Settings
from tests.conftest import TEST_SCENARIOS
from tests.wire import WireResponse, fetch

UNPACED = {"X-Mock-Chunk-Ms": "0"}
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi there"}]
REPLY = "You said: hi there"
SCENARIOS = {
    "filtered-reply.yaml": "reply: The first words got through\nfinish_reason: content_filter\n",
    "filtered-prompt.yaml": "faults:\n  - {kind: status, status: 400, code: content_filter}\n",
}


@pytest.fixture(scope="module")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    """The bundled and test scenarios, and the two content filter scenarios of the README."""
    folder: Path = tmp_path_factory.mktemp("azure-scenarios")
    for name, text in SCENARIOS.items():
        (folder / name).write_text(text)
    settings = Settings(port=0, scenario_dirs=(TEST_SCENARIOS, folder), access_log=False)
    with MockServer(settings=settings) as running:
        yield running


@pytest.fixture
def client(azure_server: MockServer) -> Iterator[AzureOpenAI]:
    with AzureOpenAI(
        azure_endpoint=azure_server.url, api_version=EXAMPLE_VERSION, api_key="x", max_retries=0
    ) as client:
        yield client


def chat(client: AzureOpenAI, fault: str | None = None, *, deployment: str = "default", **kwargs: Any) -> Any:
    headers = {**UNPACED, **({"X-Mock-Fault": fault} if fault else {})}
    return client.chat.completions.create(model=deployment, messages=MESSAGES, extra_headers=headers, **kwargs)


def extra(model: BaseModel) -> dict[str, Any]:
    """The fields an object has beyond the openai SDK's types: Azure's."""
    assert model.model_extra is not None
    return model.model_extra


def text_of(chunks: Any) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --- the routes, streamed and whole ----------------------------------------------------------------


def test_a_stream_opens_with_the_prompt_filter_chunk_and_annotates_each_choice(client: AzureOpenAI) -> None:
    first, *chunks = list(chat(client, stream=True))
    assert first.choices == []
    assert extra(first)["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
    assert text_of(chunks) == REPLY
    verdicts = [extra(c.choices[0])["content_filter_results"] for c in chunks]
    assert verdicts[0] == verdicts[-1] == {}  # the role chunk and the finish
    assert all(v["violence"] == {"filtered": False, "severity": "safe"} for v in verdicts[1:-1])
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_whole_response_carries_the_verdicts_and_azure_request_ids(client: AzureOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="default", messages=MESSAGES)
    completion = raw.parse()
    assert (completion.choices[0].message.content, completion.choices[0].finish_reason) == (REPLY, "stop")
    assert extra(completion)["prompt_filter_results"][0]["prompt_index"] == 0
    assert extra(completion.choices[0])["content_filter_results"]["sexual"]["filtered"] is False
    assert completion._request_id == raw.headers["apim-request-id"] == raw.headers["x-mock-request-id"]
    assert raw.headers["x-ms-region"]


def test_the_deployment_picks_the_scenario_whatever_model_the_body_names(azure_server: MockServer) -> None:
    with AzureOpenAI(
        azure_endpoint=azure_server.url, azure_deployment="tool-call", api_version="2024-06-01", api_key="x"
    ) as client:
        completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=UNPACED)
    assert completion.model == "tool-call"
    assert completion.choices[0].finish_reason == "tool_calls"
    assert azure_server.last_request.path == "/openai/deployments/tool-call/chat/completions"


def test_legacy_completions_stream_and_answer_whole(client: AzureOpenAI) -> None:
    stream = client.completions.create(model="default", prompt="hi there", stream=True, extra_headers=UNPACED)
    first, *chunks = list(stream)
    assert first.choices == []
    assert "".join(c.choices[0].text for c in chunks) == REPLY
    whole = client.completions.create(model="default", prompt="hi there")
    assert (whole.choices[0].text, extra(whole)["prompt_filter_results"][0]["prompt_index"]) == (REPLY, 0)


def test_the_async_client_streams_the_same(azure_server: MockServer) -> None:
    async def collect() -> str:
        async with AsyncAzureOpenAI(
            azure_endpoint=azure_server.url, api_version="2025-04-01-preview", api_key="x", max_retries=0
        ) as client:
            stream = await client.chat.completions.create(
                model="default", messages=MESSAGES, stream=True, extra_headers=UNPACED
            )
            return text_of([chunk async for chunk in stream])

    assert asyncio.run(collect()) == REPLY


# --- api-version and auth --------------------------------------------------------------------------


def test_an_unknown_api_version_is_azures_400(azure_server: MockServer) -> None:
    client = AzureOpenAI(azure_endpoint=azure_server.url, api_version="2024-10-01", api_key="x", max_retries=0)
    with client, pytest.raises(openai.BadRequestError) as caught:
        chat(client)
    assert caught.value.code == "BadRequest"
    body = caught.value.body
    assert isinstance(body, dict)
    assert set(body) == {"code", "message"}
    assert body["message"].startswith("API version not supported: '2024-10-01'")
    assert "Did you mean '2024-10-21'?" in body["message"]
    assert caught.value.request_id is not None


def test_a_missing_api_version_is_azures_404(azure_server: MockServer) -> None:
    # The mistake as it is made: the plain OpenAI client pointed at a deployment sends no api-version.
    base_url = f"{azure_server.url}/openai/deployments/default"
    client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    with client, pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="default", messages=MESSAGES)
    assert caught.value.code == "404"
    assert isinstance(caught.value.body, dict)
    assert set(caught.value.body) == {"code", "message"}
    assert "Resource not found: Azure OpenAI requests need the `api-version` query parameter" in str(caught.value)
    assert azure_server.last_request.status == 404


def test_a_path_under_openai_that_is_not_served_is_answered_in_azures_shape(azure_server: MockServer) -> None:
    url = f"{azure_server.url}/openai/deployments/default/no-such-operation?api-version={EXAMPLE_VERSION}"
    response = fetch(url, method="POST", body={"messages": "hi"})
    assert response.status == 404
    assert set(json.loads(response.body)["error"]) == {"code", "message"}


def test_every_documented_api_version_is_accepted(azure_server: MockServer) -> None:
    url = f"{azure_server.url}/openai/deployments/default/chat/completions"
    for version in API_VERSIONS:
        response = fetch(f"{url}?api-version={version}", method="POST", body={"messages": "hi"}, headers=UNPACED)
        assert response.status == 200, version


@pytest.mark.parametrize("bearer", [False, True], ids=["api-key header", "Authorization Bearer"])
def test_the_token_may_come_as_api_key_or_bearer(make_server: Callable[..., MockServer], bearer: bool) -> None:
    server = make_server(require_auth="s3cret")
    api_key, ad_token = (None, "s3cret") if bearer else ("s3cret", None)
    with AzureOpenAI(
        azure_endpoint=server.url, api_version=EXAMPLE_VERSION, api_key=api_key, azure_ad_token=ad_token, max_retries=0
    ) as client:
        assert chat(client).choices[0].message.content == REPLY
    wrong = AzureOpenAI(azure_endpoint=server.url, api_version=EXAMPLE_VERSION, api_key="wrong", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError) as caught:
        chat(wrong)
    assert "`api-key: <token>`" in caught.value.message


# --- the content filter ----------------------------------------------------------------------------


def test_a_content_filter_finish_ends_the_stream_with_the_category_that_tripped(client: AzureOpenAI) -> None:
    chunks = list(chat(client, deployment="filtered-reply", stream=True))
    last = chunks[-1].choices[0]
    assert (last.finish_reason, last.delta.content) == ("content_filter", None)
    assert extra(last)["content_filter_results"]["violence"] == {"filtered": True, "severity": "medium"}
    assert text_of(chunks) == "The first words got through"


def test_a_whole_response_the_filter_stopped_carries_its_finish_and_verdicts(client: AzureOpenAI) -> None:
    choice = chat(client, deployment="filtered-reply").choices[0]
    assert (choice.finish_reason, choice.message.content) == ("content_filter", "The first words got through")
    assert extra(choice)["content_filter_results"]["violence"]["filtered"] is True


def test_a_prompt_the_filter_refuses_is_a_400_content_filter(client: AzureOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, deployment="filtered-prompt", stream=True)
    error = caught.value
    assert (error.code, error.param, error.type) == ("content_filter", "prompt", None)
    assert isinstance(error.body, dict)
    assert error.body["message"].startswith("The response was filtered due to the prompt triggering")
    assert error.body["status"] == 400
    assert error.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error.body["innererror"]["content_filter_result"]["violence"]["filtered"] is True


# --- faults through the SDK ------------------------------------------------------------------------


def test_a_drop_raises_a_connection_error_after_the_first_words(client: AzureOpenAI) -> None:
    seen: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        seen.extend(chat(client, "drop@3", stream=True))  # keeps what arrived before the drop
    assert text_of(seen) == "You said: hi"


def test_a_reset_raises_a_connection_error(client: AzureOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        list(chat(client, "reset@3", stream=True))


def test_a_mid_stream_error_raises_api_error(client: AzureOpenAI) -> None:
    with pytest.raises(openai.APIError) as caught:
        list(chat(client, "error@2", stream=True))
    assert "The server had an error" in caught.value.message


def test_a_429_is_azures_with_retry_after_and_request_ids(client: AzureOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, "status:429", stream=True)
    error = caught.value
    assert error.code == "429"
    assert isinstance(error.body, dict)
    assert set(error.body) == {"code", "message"}
    assert error.body["message"].startswith("Requests to the ChatCompletions_Create Operation")
    headers = error.response.headers
    assert headers["retry-after"] == "1"
    assert headers["retry-after-ms"] == "1000"  # which the openai SDK reads first
    assert error.request_id == headers["apim-request-id"] == headers["x-mock-request-id"]


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ({"Retry-After": "7"}, "7000"),
        ({"Retry-After": "7", "retry-after-ms": "250"}, "250"),
        ({"Retry-After": None}, None),
    ],
)
def test_retry_after_ms_follows_the_scenarios_retry_after(
    azure_server: MockServer, client: AzureOpenAI, given: dict[str, str | None], sent: str | None
) -> None:
    name = azure_server.add_scenario(status=429, headers=given)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, deployment=name)
    assert caught.value.response.headers.get("retry-after-ms") == sent


def test_openais_own_429_has_no_retry_after_ms(server: MockServer) -> None:
    answer = fetch(
        server.url + "/v1/chat/completions?fault=status:429",
        method="POST",
        body={"model": "default", "messages": MESSAGES},
    )
    assert answer.status == 429
    assert "retry-after" in answer.headers
    assert "retry-after-ms" not in answer.headers


def test_a_malformed_chunk_fails_to_parse(client: AzureOpenAI) -> None:
    with pytest.raises(json.JSONDecodeError):
        list(chat(client, "malformed@1", stream=True))


def test_unknown_event_is_the_async_filter_chunk_a_naive_loop_trips_on(client: AzureOpenAI) -> None:
    with pytest.raises(AttributeError):  # its choice has no delta: `delta` is None
        "".join(c.choices[0].delta.content or "" for c in chat(client, "unknown_event@2", stream=True) if c.choices)
    chunks = list(chat(client, "unknown_event@2", stream=True))
    guarded = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].delta)
    assert guarded == REPLY


# --- every fault as chat plays it ------------------------------------------------------------------

FAULTS = [
    "drop@3",
    "reset@3",
    "close@2",
    "error@2",
    "stall@2:50",
    "malformed@1",
    "split@1:4",
    "delay@1:50",
    "no_done",
    "duplicate@2",
    "unknown_event@2",
    "status:503",
    "drop@head",
    "reset@head",
    "stall@head:50",
]


def _comparable(data: str) -> object:
    """An event's data without Azure's verdicts and the moment it was made; a chunk with an empty id
    (an unknown event, which is Azure's own on Azure) as a marker."""
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError:
        return data
    if not isinstance(parsed, dict):
        return parsed
    if parsed.get("id") == "":
        return "unknown event"
    parsed.pop("created", None)  # the two requests may fall on either side of a second
    for choice in parsed.get("choices", []):
        choice.pop("content_filter_results", None)
    return parsed


def _fetch_or_failure(url: str, body: dict[str, Any], headers: dict[str, str]) -> WireResponse | str:
    """The response, or how the connection failed before its status line."""
    try:
        return fetch(url, method="POST", body=body, headers=headers, timeout=5)
    except ConnectionError as exc:
        return str(exc)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_reaches_azure_as_it_reaches_chat(azure_server: MockServer, fault: str, stream: bool) -> None:
    headers = {**UNPACED, "X-Mock-Fault": fault}
    body = {"model": "default", "messages": MESSAGES, "stream": stream}
    azure_path = f"/openai/deployments/default/chat/completions?api-version={EXAMPLE_VERSION}"
    on_azure, on_chat = (
        _fetch_or_failure(azure_server.url + path, body, headers) for path in (azure_path, "/v1/chat/completions")
    )
    if isinstance(on_chat, str):  # cut before the status line
        assert on_azure == on_chat
        return
    assert not isinstance(on_azure, str)
    assert (on_azure.status, on_azure.ending) == (on_chat.status, on_chat.ending)
    if stream and on_chat.status == 200:
        prompt_verdicts, *rest = on_azure.data
        assert json.loads(prompt_verdicts)["prompt_filter_results"]
        assert [_comparable(d) for d in rest] == [_comparable(d) for d in on_chat.data]
