"""GET and POST /completions through httpx and httpx-sse: chunk format, prompts, selection, errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from mock_server.http.server import MockServer


def stream_chunks(server: MockServer, method: str = "GET", **kwargs: Any) -> tuple[httpx.Response, list[str]]:
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        connect_sse(client, method, "/completions", **kwargs) as source,
    ):
        return source.response, [event.data for event in source.iter_sse()]


def content_of(data: list[str]) -> str:
    chunks = [json.loads(d) for d in data if d != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


def test_get_streams_openai_chat_chunks(server: MockServer) -> None:
    response, data = stream_chunks(server, params={"messages": "hello world"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}  # one id per stream
    assert chunks[0]["id"].startswith("chatcmpl-")
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert isinstance(chunk["created"], int)
        assert chunk["choices"][0]["index"] == 0
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert content_of(data) == "You said: hello world"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "prompt"),
    [
        (
            {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "from messages"}]},
            "from messages",
        ),
        ({"messages": "a plain string"}, "a plain string"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "from parts"}]}]}, "from parts"),
        (
            {"model": "gpt-4o", "stream": True, "convGroupId": "g1", "parentConvId": "p1", "request": "fes shape"},
            "fes shape",
        ),
        ({"prompt": "legacy prompt"}, "legacy prompt"),
        ({"input": "responses input"}, "responses input"),
        ({"input": [{"role": "user", "content": [{"type": "input_text", "text": "input parts"}]}]}, "input parts"),
        ({"unknown": 1, "messages": "unknown fields ignored"}, "unknown fields ignored"),
    ],
    ids=["messages", "string", "parts", "fetch-event-source", "prompt", "input", "input-parts", "unknown-fields"],
)
def test_post_reads_the_prompt_from_every_body_shape(server: MockServer, body: dict[str, Any], prompt: str) -> None:
    _, data = stream_chunks(server, "POST", json=body)
    assert content_of(data) == f"You said: {prompt}"


def test_get_messages_may_be_a_json_list(server: MockServer) -> None:
    messages = json.dumps([{"role": "user", "content": "listed"}])
    _, data = stream_chunks(server, params={"messages": messages})
    assert content_of(data) == "You said: listed"


def test_model_is_echoed_in_chunks(server: MockServer) -> None:
    _, data = stream_chunks(server, "POST", json={"model": "gpt-4o-mini", "messages": "hi"})
    assert json.loads(data[0])["model"] == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"headers": {"X-Mock-Scenario": "cjk"}, "params": {"scenario": "paced"}, "json": {}}, "cjk"),
        ({"params": {"scenario": "paced"}, "json": {"scenario": "cjk", "messages": "x"}}, "paced"),
        ({"json": {"scenario": "cjk", "model": "paced", "messages": "x"}}, "cjk"),
        ({"json": {"model": "paced", "messages": "what is the weather"}}, "paced"),
        ({"json": {"model": "gpt-4o", "messages": "what is the weather"}}, "weather"),
        ({"json": {"model": "gpt-4o", "messages": "hi"}}, "default"),
    ],
    ids=["header-over-query", "query-over-body", "body-over-model", "model-over-match", "match", "default"],
)
def test_scenario_selection_follows_the_spec_order(server: MockServer, kwargs: dict[str, Any], expected: str) -> None:
    response, _ = stream_chunks(server, "POST", **kwargs)
    assert response.headers["x-mock-scenario"] == expected


def test_stream_headers(server: MockServer) -> None:
    response, _ = stream_chunks(server, params={"messages": "hi"})
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["x-mock-scenario"] == "default"
    assert response.headers["x-mock-request-id"].isdigit()


def test_cors_allows_any_origin_with_authorization_and_last_event_id(server: MockServer) -> None:
    preflight = httpx.options(
        server.url + "/completions",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, last-event-id, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "last-event-id" in allowed
    response = httpx.get(server.url + "/completions?messages=hi", headers={"Origin": "http://example.test"})
    assert response.headers["access-control-allow-origin"] == "http://example.test"
    assert "x-mock-scenario" in response.headers["access-control-expose-headers"].lower()


def test_unknown_scenario_is_a_404_listing_the_known_ones(server: MockServer) -> None:
    response = httpx.get(server.url + "/completions", params={"messages": "hi", "scenario": "defualt"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert "'defualt'" in error["message"]
    assert "Did you mean 'default'" in error["message"]
    assert "mid-stream-drop" in error["message"]
    assert error["code"] == "scenario_not_found"


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ({"fault": "dorp@3"}, "unknown fault kind 'dorp'"),
        ({"fault": "drop@x"}, "@N in 'drop@x'"),
        ({"fault": "status:abc"}, "status"),
        ({"fault": "status:200"}, "greater than or equal to 400"),
        ({"chunk_ms": "fast"}, "query parameter chunk_ms must be a number"),
        ({"first_chunk_ms": "-5"}, "first_chunk_ms"),
        ({"jitter_ms": "inf"}, "jitter_ms"),
        ({"seed": "1.5"}, "seed must be a whole number"),
    ],
)
def test_malformed_override_is_a_400_saying_what_is_wrong(
    server: MockServer, query: dict[str, str], needle: str
) -> None:
    response = httpx.get(server.url + "/completions", params={"messages": "hi", **query})
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]


def test_header_override_wins_over_query(server: MockServer) -> None:
    response = httpx.get(
        server.url + "/completions",
        params={"messages": "hi", "fault": "status:500"},
        headers={"X-Mock-Fault": "status:429"},
    )
    assert response.status_code == 429


def test_malformed_header_override_names_the_header(server: MockServer) -> None:
    response = httpx.get(server.url + "/completions?messages=hi", headers={"X-Mock-Chunk-Ms": "slow"})
    assert response.status_code == 400
    assert "header X-Mock-Chunk-Ms" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not an array"),
        (b"", "body is empty"),
        (b"\xff\xfe", "not valid"),
        (b'{"messages": 42}', "`messages` must be a string"),
        (b'{"messages": [42]}', "`messages[0]` must be an object"),
        (b'{"model": 7, "messages": "x"}', "`model` must be a string"),
        (b'{"scenario": 7, "messages": "x"}', "`scenario` must be a scenario name"),
    ],
    ids=["malformed", "array", "empty", "not-utf8", "messages-number", "message-number", "model", "scenario"],
)
def test_bad_post_body_is_a_400_never_a_500(server: MockServer, content: bytes, needle: str) -> None:
    response = httpx.post(server.url + "/completions", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]


def test_health(server: MockServer) -> None:
    health = httpx.get(server.url + "/_mock/health").json()
    assert health["status"] == "ok"
    assert health["scenarios"] >= 17
    assert isinstance(health["version"], str)


@pytest.mark.slow
def test_chunk_ms_override_paces_the_stream(server: MockServer) -> None:
    import time

    start = time.monotonic()
    _, data = stream_chunks(server, params={"messages": "a b c d e f", "scenario": "paced", "chunk_ms": "100"})
    assert time.monotonic() - start >= 0.9  # ten chunks, 100 ms apart
    assert len(data) == 13
