"""The official `google-genai` package against the Gemini routes, unmodified: streams and whole
responses, sync and async, tool calls, thoughts, every fault, errors in Google's shape; and the wire
itself (SSE with CRLF, the JSON array without `alt=sse`) byte for byte where the SDK cannot tell."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors, types

from mock_server.dialects import StreamInfo
from mock_server.dialects import gemini as dialect
from mock_server.dialects.gemini import google_json
from mock_server.http.server import MockServer
from mock_server.scenarios import steps
from mock_server.settings import Settings
from mock_server.timeline.compile import Usage
from tests.upstreams import Piece, RawUpstream, Script
from tests.wire import Ending, fetch

# google-genai's async client runs on aiohttp when it is installed (litellm brings it), and subclasses
# its ClientSession, which aiohttp warns against.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

PROMPT = "Where is Zürich?"
GOLDEN_REPLY, GOLDEN_THOUGHT = "Looking it up.", "Check the weather."
UNPACED = {"X-Mock-Chunk-Ms": "0"}
STREAM = "/v1beta/models/{model}:streamGenerateContent"
WHOLE = "/v1beta/models/{model}:generateContent"


def client_for(server: MockServer, *, api_version: str | None = None, **headers: str) -> genai.Client:
    """A client as its users make one, pointed at the server, sending `headers` on every request."""
    options = types.HttpOptions(base_url=server.url, headers={**UNPACED, **headers}, api_version=api_version)
    return genai.Client(api_key="x", http_options=options)


@pytest.fixture
def client(server: MockServer) -> Iterator[genai.Client]:
    with client_for(server) as client:
        yield client


def stream_text(client: genai.Client, model: str = "default", received: list[str] | None = None) -> str:
    """The answer's text as a careful caller gathers it: `chunk.text` is None on a chunk without text."""
    pieces = received if received is not None else []
    for chunk in client.models.generate_content_stream(model=model, contents=PROMPT):
        pieces.append(chunk.text or "")
    return "".join(pieces)


def last_request(server: MockServer) -> dict[str, Any]:
    records: list[dict[str, Any]] = httpx.get(server.url + "/_mock/requests").json()
    return records[-1]


def raw(server: MockServer, path: str, *, model: str = "golden", query: str = "alt=sse", **headers: str) -> Any:
    """The wire response to a Gemini request for PROMPT, read over a raw socket."""
    url = server.url + path.format(model=model) + (f"?{query}" if query else "")
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    return fetch(url, method="POST", body=body, headers={**UNPACED, **headers})


def sse_data(body: bytes) -> list[dict[str, Any]]:
    """The chunks of a Gemini SSE body: `data:` blocks ended by CRLF CRLF."""
    blocks = body.decode().split("\r\n\r\n")
    assert blocks[-1] == ""
    return [json.loads(block.removeprefix("data: ")) for block in blocks[:-1]]


# Streams and whole responses


@pytest.mark.parametrize(("api_version", "path"), [(None, "/v1/"), ("v1beta", "/v1beta/")])
def test_stream_equals_the_scenario_reply_on_either_api_version(
    server: MockServer, api_version: str | None, path: str
) -> None:
    with client_for(server, api_version=api_version) as client:
        assert stream_text(client) == f"You said: {PROMPT}"
    record = last_request(server)
    assert record["path"] == f"{path}models/default:streamGenerateContent"
    assert record["query"] == {"alt": "sse"}
    assert (record["dialect"], record["prompt"], record["outcome"]) == ("gemini", PROMPT, "completed")


def test_whole_response_has_the_text_the_finish_and_the_usage(client: genai.Client) -> None:
    response = client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert response.text == f"You said: {PROMPT}"
    candidate = (response.candidates or [])[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content is not None
    assert candidate.content.role == "model"
    assert response.model_version == "gemini-2.5-flash"
    assert response.response_id
    usage = response.usage_metadata
    assert usage is not None
    assert usage.total_token_count == (usage.prompt_token_count or 0) + (usage.candidates_token_count or 0)


def test_async_stream_and_whole_response(server: MockServer) -> None:
    async def both() -> tuple[str, str | None]:
        with client_for(server) as client:
            stream = await client.aio.models.generate_content_stream(model="default", contents=PROMPT)
            streamed = "".join([chunk.text or "" async for chunk in stream])
            whole = await client.aio.models.generate_content(model="default", contents=PROMPT)
            return streamed, whole.text

    assert asyncio.run(both()) == (f"You said: {PROMPT}", f"You said: {PROMPT}")


def test_the_prompt_is_the_last_user_turns_text(client: genai.Client) -> None:
    contents = [
        types.Content(role="user", parts=[types.Part(text="first")]),
        types.Content(role="model", parts=[types.Part(text="an answer")]),
        types.Content(role="user", parts=[types.Part(text="second, "), types.Part(text="in two parts")]),
    ]
    response = client.models.generate_content(model="default", contents=contents)
    assert response.text == "You said: second, in two parts"


def test_thoughts_come_before_the_answer_and_the_call_ends_it(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model="golden", contents=PROMPT))
    parts = [part for chunk in chunks for part in (chunk.parts or [])]
    thought = "".join(part.text or "" for part in parts if part.thought)
    answer = "".join(part.text or "" for part in parts if part.text is not None and not part.thought)
    calls = [part.function_call for part in parts if part.function_call is not None]
    assert (thought, answer) == (GOLDEN_THOUGHT, GOLDEN_REPLY)
    assert [(call.name, call.args) for call in calls] == [("get_weather", {"city": "Zürich"})]
    assert parts.index(next(p for p in parts if p.function_call)) == len(parts) - 1
    final = (chunks[-1].candidates or [])[0]
    assert final.finish_reason == types.FinishReason.STOP
    assert all((chunk.candidates or [])[0].finish_reason is None for chunk in chunks[:-1])
    assert chunks[-1].function_calls == calls


def test_whole_response_holds_the_thought_the_text_and_the_call(client: genai.Client) -> None:
    response = client.models.generate_content(model="golden", contents=PROMPT)
    assert response.parts is not None
    thought, text, call = response.parts
    assert (thought.text, thought.thought) == (GOLDEN_THOUGHT, True)
    assert response.text == text.text == GOLDEN_REPLY
    assert call.function_call is not None
    assert (call.function_call.name, call.function_call.args) == ("get_weather", {"city": "Zürich"})


def test_a_tool_call_arrives_whole_with_its_arguments(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model="tool-call", contents=PROMPT))
    assert len(chunks) == 1  # no text: the call, whole, in the chunk that finishes
    (call,) = chunks[0].function_calls or []
    assert (call.name, call.args) == ("get_weather", {"location": "Paris, France", "unit": "celsius"})
    assert (chunks[0].candidates or [])[0].finish_reason == types.FinishReason.STOP


def test_arguments_that_are_not_an_object_are_a_malformed_function_call() -> None:
    info = StreamInfo(key="ab" * 32, created=0, model="m", usage=Usage(3, 7))
    call: list[steps.ContentStep] = [
        steps.ToolCallStart(0, "call_1", "f"),
        steps.ToolCallArguments(0, "[1, 2"),
        steps.Finish("tool_calls"),
    ]
    renderer = dialect.DIALECT.stream(info)
    (final,) = [event for step in call for event in renderer.events(step)]
    _, whole = dialect.DIALECT.whole_body(info, call)
    message = "Malformed function call: f([1, 2)"
    expected = {"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0, "finishMessage": message}
    for candidate in (json.loads(final.data or "")["candidates"][0], json.loads(whole)["candidates"][0]):
        assert candidate == expected


# Errors


@pytest.mark.parametrize(
    ("status", "error", "name"),
    [
        (400, errors.ClientError, "INVALID_ARGUMENT"),
        (401, errors.ClientError, "UNAUTHENTICATED"),
        (403, errors.ClientError, "PERMISSION_DENIED"),
        (404, errors.ClientError, "NOT_FOUND"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
        (504, errors.ServerError, "DEADLINE_EXCEEDED"),
    ],
)
def test_status_faults_raise_the_sdk_error_in_googles_shape(
    server: MockServer, status: int, error: type[errors.APIError], name: str
) -> None:
    with client_for(server, **{"X-Mock-Fault": f"status:{status}"}) as client:
        with pytest.raises(error) as whole:
            client.models.generate_content(model="default", contents=PROMPT)
        with pytest.raises(error) as streamed:
            stream_text(client)
    for caught in (whole, streamed):
        assert (caught.value.code, caught.value.status) == (status, name)
        assert caught.value.message


def test_a_rate_limit_carries_retry_after(server: MockServer) -> None:
    response = raw(server, STREAM, **{"X-Mock-Fault": "status:429"})
    assert (response.status, response.headers["retry-after"]) == (429, "1")
    assert json.loads(response.body)["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_a_mid_stream_error_is_a_bare_json_object_the_sdk_raises(server: MockServer) -> None:
    received: list[str] = []
    overloaded = "The model is overloaded."
    with (
        client_for(server, **{"X-Mock-Fault": f"error@4:{overloaded}"}) as client,
        pytest.raises(errors.ServerError) as caught,
    ):
        stream_text(client, "golden", received)
    assert (caught.value.code, caught.value.status, caught.value.message) == (500, "INTERNAL", overloaded)
    assert "".join(received) == "Looking"
    body = raw(server, STREAM, **{"X-Mock-Fault": "error@0"}).body
    assert body.startswith(b'{\n  "error": {\n    "code": 500,')  # not a `data:` line: as Google writes it
    assert json.loads(body) == dialect.error_body(500, None)


def test_an_error_in_a_whole_response_is_its_status(client: genai.Client) -> None:
    with pytest.raises(errors.ServerError) as caught:
        client.models.generate_content(
            model="golden", contents=PROMPT, config={"http_options": {"headers": {"X-Mock-Fault": "error@2"}}}
        )
    assert (caught.value.code, caught.value.status) == (500, "INTERNAL")


def test_a_scripted_error_may_name_a_google_status_or_an_http_code() -> None:
    assert dialect.error_status(steps.ErrorEvent(type="RESOURCE_EXHAUSTED")) == 429
    assert dialect.error_status(steps.ErrorEvent(code="503")) == 503
    assert dialect.error_status(steps.ErrorEvent(type="server_error")) == 500
    body = dialect.error_body(429, steps.ErrorEvent(message="slow down", type="RESOURCE_EXHAUSTED"))
    assert body == {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}


def test_a_malformed_chunk_makes_the_stream_raise(server: MockServer) -> None:
    received: list[str] = []
    with (
        client_for(server, **{"X-Mock-Fault": "malformed@4"}) as client,
        pytest.raises(errors.UnknownApiResponseError),
    ):
        stream_text(client, "golden", received)
    assert "".join(received) == "Looking"
    cut = raw(server, STREAM, **{"X-Mock-Fault": "malformed@1"}).body
    assert b'\r\n\r\ndata: {"candidates": [{"content": {"parts": [{"text": "\r\n\r\n' in cut


def test_an_unknown_chunk_has_no_text_and_the_stream_goes_on(server: MockServer) -> None:
    with client_for(server, **{"X-Mock-Fault": "unknown_event@3"}) as client:
        chunks = list(client.models.generate_content_stream(model="golden", contents=PROMPT))
        assert [chunk.text for chunk in chunks].count(None) == 5  # three thoughts, the unknown chunk, the call
        with pytest.raises(TypeError):
            "".join(chunk.text for chunk in chunks)  # type: ignore[misc]  # the loop the chunk breaks
        assert "".join(chunk.text or "" for chunk in chunks) == GOLDEN_REPLY
    unknown = sse_data(raw(server, STREAM, **{"X-Mock-Fault": "unknown_event@0"}).body)[0]
    assert dialect.UNKNOWN_FIELD in unknown
    assert "candidates" not in unknown


@pytest.mark.parametrize(("fault", "raised"), [("drop@4", httpx2.RemoteProtocolError), ("reset@4", httpx2.ReadError)])
def test_a_cut_stream_raises_the_http_error_after_the_text_before_it(
    server: MockServer, fault: str, raised: type[Exception]
) -> None:
    """The sync client runs on httpx2 when it is installed (anthropic brings it); it does not wrap its errors."""
    received: list[str] = []
    with client_for(server, **{"X-Mock-Fault": fault}) as client, pytest.raises(raised):
        stream_text(client, "golden", received)
    assert "".join(received) == "Looking"


def test_the_readme_loop_prints_what_came_before_a_drop(server: MockServer) -> None:
    printed: list[str] = []

    def readme_loop(client: genai.Client) -> None:
        for chunk in client.models.generate_content_stream(
            model="gemini-2.5-flash",
            contents="hi there friend",
            config={"http_options": {"headers": {"X-Mock-Fault": "drop@3"}}},
        ):
            printed.append(chunk.text or "")

    with (
        genai.Client(api_key="x", http_options=types.HttpOptions(base_url=server.url)) as client,
        pytest.raises(httpx2.RemoteProtocolError),
    ):
        readme_loop(client)
    assert "".join(printed) == "You said: hi"


def test_a_cut_stream_raises_aiohttps_payload_error_in_the_async_client(server: MockServer) -> None:
    """The async client runs on aiohttp when it is installed, and a drop and a reset read alike there."""

    async def gather(client: genai.Client, received: list[str]) -> None:
        async for chunk in await client.aio.models.generate_content_stream(model="golden", contents=PROMPT):
            received.append(chunk.text or "")

    for fault in ("drop@4", "reset@4"):
        received: list[str] = []
        with client_for(server, **{"X-Mock-Fault": fault}) as client, pytest.raises(aiohttp.ClientPayloadError):
            asyncio.run(gather(client, received))
        assert "".join(received) == "Looking"


def test_a_rate_limit_retried_by_the_sdk_succeeds_the_second_time(make_server: Any) -> None:
    server = make_server()
    options = types.HttpOptions(base_url=server.url, headers={**UNPACED, "X-Mock-Fault": "status:429!times=1"})
    options.retry_options = types.HttpRetryOptions(attempts=2, initial_delay=0.01, jitter=0)
    with genai.Client(api_key="x", http_options=options) as client:
        assert client.models.generate_content(model="default", contents=PROMPT).text == f"You said: {PROMPT}"
    records = httpx.get(server.url + "/_mock/requests").json()
    assert [record["status"] for record in records] == [429, 200]


def test_close_ends_the_stream_early_and_cleanly(server: MockServer) -> None:
    response = raw(server, STREAM, **{"X-Mock-Fault": "close@4"})
    assert response.ending is Ending.COMPLETE
    chunks = sse_data(response.body)
    assert "".join(part.get("text", "") for c in chunks for part in c["candidates"][0]["content"]["parts"]) == (
        f"{GOLDEN_THOUGHT}Looking"
    )
    assert not any("finishReason" in chunk["candidates"][0] for chunk in chunks)


def test_duplicate_sends_a_chunk_twice(server: MockServer) -> None:
    with client_for(server, **{"X-Mock-Fault": "duplicate@4"}) as client:
        assert stream_text(client, "golden") == "Looking it it up."


def test_split_cuts_a_character_and_the_text_arrives_whole(server: MockServer) -> None:
    with client_for(server, **{"X-Mock-Fault": "split@1:4,split@3:2"}) as client:
        assert stream_text(client, "cjk") == stream_text(client_for(server), "cjk")
    response = raw(server, STREAM, model="cjk", **{"X-Mock-Fault": "split@1:4"})
    assert not all(_decodes(data) for _, data in response.chunks)  # a cut fell inside a character


def _decodes(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


# The wire


def test_sse_lines_end_with_crlf_and_nothing_follows_the_last_chunk(server: MockServer) -> None:
    response = raw(server, STREAM)
    assert (response.status, response.ending) == (200, Ending.COMPLETE)
    assert response.headers["content-type"] == "text/event-stream"
    assert b"\n\n" not in response.body.replace(b"\r\n\r\n", b"")
    chunks = sse_data(response.body)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "candidatesTokenCount" in chunks[-1]["usageMetadata"]
    assert len({(chunk["modelVersion"], chunk["responseId"]) for chunk in chunks}) == 1


def test_without_alt_sse_the_stream_is_a_json_array_of_the_same_chunks(server: MockServer) -> None:
    array = raw(server, STREAM, query="")
    assert array.headers["content-type"] == "application/json; charset=UTF-8"
    assert array.body.startswith(b'[{\n  "candidates": [\n')
    assert array.body.endswith(b"}\n]")
    assert json.loads(array.body) == sse_data(raw(server, STREAM).body)


def test_no_done_leaves_the_json_array_open_and_the_sse_stream_as_it_is(server: MockServer) -> None:
    fault = {"X-Mock-Fault": "no_done"}
    assert not raw(server, STREAM, query="", **fault).body.endswith(b"]")
    assert raw(server, STREAM, **fault).body == raw(server, STREAM).body


def test_ids_when_a_scenario_asks_for_them_end_with_crlf_too(server: MockServer) -> None:
    body = raw(server, STREAM, model="resumable-paced").body
    assert body.startswith(b"id: 1\r\ndata: {")


def test_bad_bodies_are_400s_naming_the_field(server: MockServer) -> None:
    url = server.url + WHOLE.format(model="default")
    cases = [
        ({}, "contents"),
        ({"contents": "hi"}, "contents"),
        ({"contents": ["hi"]}, "contents[0]"),
        ({"contents": [{"parts": {"text": "hi"}}]}, "contents[0].parts"),
        ({"contents": [{"parts": [{"text": 1}]}]}, "contents[0].parts[0]"),
        ({"contents": [{"role": 1, "parts": []}]}, "contents[0].role"),
    ]
    for body, field in cases:
        answer = httpx.post(url, json=body).json()["error"]
        assert (answer["code"], answer["status"]) == (400, "INVALID_ARGUMENT"), body
        assert answer["details"][0]["fieldViolations"][0]["field"] == field
    answer = httpx.post(url, content=b"{").json()["error"]
    assert (answer["code"], answer["status"], "details" in answer) == (400, "INVALID_ARGUMENT", False)


def test_unknown_scenarios_and_paths_answer_in_googles_shape(server: MockServer) -> None:
    answer = httpx.post(
        server.url + WHOLE.format(model="x"), json={"contents": []}, headers={"X-Mock-Scenario": "nope"}
    )
    assert (answer.status_code, answer.json()["error"]["status"]) == (404, "NOT_FOUND")
    answer = httpx.post(server.url + "/v1beta/models/default:countTokens", json={"contents": []})
    assert (answer.status_code, answer.json()["error"]["status"]) == (404, "NOT_FOUND")


def test_a_fault_in_a_proxied_gemini_stream_is_in_googles_framing() -> None:
    chunk = 'data: {"candidates": [{"content": {"parts": [{"text": "Hi"}],"role": "model"},"index": 0}]}\r\n\r\n'
    script = Script(headers=(b"Content-Type: text/event-stream",), pieces=(Piece(chunk.encode()),) * 3)
    with (
        RawUpstream(script) as upstream,
        MockServer(settings=Settings(port=0, access_log=False, upstream=upstream.url, upstream_only=True)) as server,
    ):
        body = raw(server, STREAM, **{"X-Mock-Fault": "error@2"}).body
        received: list[str] = []
        with client_for(server, **{"X-Mock-Fault": "error@2"}) as client, pytest.raises(errors.ServerError):
            stream_text(client, "gemini-2.5-flash", received)
    assert body == (chunk * 2).encode() + google_json(dialect.error_body(500, None), indent=True).encode() + b"\n"
    assert received == ["Hi", "Hi"]


# The key, the model list


def test_the_key_is_required_where_google_takes_it(make_server: Any) -> None:
    server = make_server(require_auth="sesame")
    url = server.url + WHOLE.format(model="default")
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    missing = httpx.post(url, json=body)
    assert (missing.status_code, missing.json()["error"]["status"]) == (403, "PERMISSION_DENIED")
    wrong = httpx.post(url, json=body, headers={"x-goog-api-key": "nope"}).json()["error"]
    assert (wrong["code"], wrong["status"], wrong["details"][0]["reason"]) == (
        400,
        "INVALID_ARGUMENT",
        "API_KEY_INVALID",
    )
    for answer in (
        httpx.post(url, json=body, headers={"x-goog-api-key": "sesame"}),
        httpx.post(url + "?key=sesame", json=body),
        httpx.post(url, json=body, headers={"Authorization": "Bearer sesame"}),
    ):
        assert answer.status_code == 200
    with genai.Client(api_key="nope", http_options=types.HttpOptions(base_url=server.url)) as client:
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="default", contents="hi")
        assert (caught.value.code, caught.value.details["error"]["details"][0]["reason"]) == (400, "API_KEY_INVALID")
    with genai.Client(api_key="sesame", http_options=types.HttpOptions(base_url=server.url)) as client:
        assert client.models.generate_content(model="default", contents="hi").text == "You said: hi"


@pytest.mark.parametrize("api_version", ["v1beta", None])
def test_the_model_list_is_every_scenario(server: MockServer, api_version: str | None) -> None:
    """google-genai 3.x lists models at /v1/models by default: with its `x-goog-api-client` header, that
    is Gemini's list too (OpenAI's and Anthropic's SDKs get theirs)."""
    scenarios = httpx.get(server.url + "/_mock/scenarios").json()
    with client_for(server, api_version=api_version) as client:
        models = list(client.models.list())
    assert [model.name for model in models] == [f"models/{s['name']}" for s in scenarios]
    assert [model.description for model in models] == [s["description"] or "" for s in scenarios]
    assert models[0].supported_actions == ["generateContent", "streamGenerateContent"]


def test_the_model_list_wants_the_key_too(make_server: Any) -> None:
    server = make_server(require_auth="sesame")
    assert httpx.get(server.url + "/v1beta/models").status_code == 403
    assert httpx.get(server.url + "/v1beta/models?key=sesame").status_code == 200
