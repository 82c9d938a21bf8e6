"""What /v1 makes of its requests: bodies it refuses (400 naming the field), `--require-auth` (401),
scenario names (404), each answered in the dialect's own error shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from mock_server.http.server import MockServer
from mock_server.settings import Settings
from tests.conftest import TEST_SCENARIOS
from tests.model_requests import ENDPOINTS, V1_ENDPOINTS, Endpoint

TOKEN = "s3cret"
MESSAGES = [{"role": "user", "content": "hi"}]


def error_of(response: httpx.Response, endpoint_path: str) -> dict[str, Any]:
    """The error object, checked to be in the dialect's shape."""
    body = response.json()
    if endpoint_path == "/v1/messages":
        assert set(body) == {"type", "error"}
        assert body["type"] == "error"
        assert set(body["error"]) == {"type", "message"}
    elif endpoint_path.startswith("/api/"):  # Ollama's error is its message alone
        assert set(body) == {"error"}
        assert isinstance(body["error"], str)
        return {"message": body["error"]}
    else:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/chat/completions", {}, "messages"),
        ("/v1/chat/completions", {"messages": 5}, "messages"),
        ("/v1/chat/completions", {"messages": [3]}, "messages[0]"),
        ("/v1/chat/completions", {"messages": MESSAGES, "model": 4}, "model"),
        ("/v1/chat/completions", {"messages": MESSAGES, "stream": "yes"}, "stream"),
        ("/v1/chat/completions", {"messages": MESSAGES, "stream_options": 1}, "stream_options"),
        (
            "/v1/chat/completions",
            {"messages": MESSAGES, "stream_options": {"include_usage": "y"}},
            "stream_options.include_usage",
        ),
        ("/v1/chat/completions", {"messages": MESSAGES, "scenario": 1}, "scenario"),
        ("/v1/completions", {"model": "m"}, "prompt"),
        ("/v1/responses", {"model": "m"}, "input"),
        ("/v1/messages", {"messages": MESSAGES}, "max_tokens"),
        ("/v1/messages", {"messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ("/v1/messages", {"max_tokens": 5}, "messages"),
    ],
)
def test_bad_body_is_a_400_naming_the_field(server: MockServer, path: str, body: dict[str, Any], field: str) -> None:
    response = httpx.post(server.url + path, json=body)
    assert response.status_code == 400
    error = error_of(response, path)
    assert f"`{field}`" in error["message"]
    assert error["type"] == "invalid_request_error"
    if "param" in error:
        assert error["param"] == field


@pytest.mark.parametrize("endpoint", V1_ENDPOINTS, ids=lambda e: e.id)
@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]"], ids=["empty", "invalid", "array"])
def test_body_that_is_not_a_json_object_is_a_400(server: MockServer, endpoint: Endpoint, raw: bytes) -> None:
    response = httpx.post(server.url + endpoint.path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in error_of(response, endpoint.path)["message"]


@pytest.mark.parametrize("endpoint", V1_ENDPOINTS, ids=lambda e: e.id)
def test_a_refused_request_names_its_id_in_the_provider_header(server: MockServer, endpoint: Endpoint) -> None:
    response = httpx.post(
        server.url + endpoint.path, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    header = "request-id" if endpoint.path == "/v1/messages" else "x-request-id"
    assert response.headers[header] == response.headers["x-mock-request-id"]


@pytest.mark.parametrize("endpoint", V1_ENDPOINTS, ids=lambda e: e.id)
def test_malformed_override_is_a_400_in_the_dialect_shape(server: MockServer, endpoint: Endpoint) -> None:
    response = httpx.post(server.url + endpoint.path, json=endpoint.body("x"), headers={"X-Mock-Fault": "dorp@3"})
    assert response.status_code == 400
    assert "unknown fault kind 'dorp'" in error_of(response, endpoint.path)["message"]


@pytest.mark.parametrize("endpoint", V1_ENDPOINTS, ids=lambda e: e.id)
@pytest.mark.parametrize("where", ["header", "query", "body"])
def test_unknown_scenario_name_is_a_404_listing_the_known(server: MockServer, endpoint: Endpoint, where: str) -> None:
    body, headers, params = endpoint.body("gpt-4o"), {}, {}
    if where == "header":
        headers["X-Mock-Scenario"] = "goldne"
    elif where == "query":
        params["scenario"] = "goldne"
    else:
        body["scenario"] = "goldne"
    response = httpx.post(server.url + endpoint.path, json=body, headers=headers, params=params)
    assert response.status_code == 404
    error = error_of(response, endpoint.path)
    assert "Did you mean 'golden'" in error["message"]
    assert error["type"] == ("not_found_error" if endpoint.dialect == "anthropic" else "invalid_request_error")


@pytest.mark.parametrize("endpoint", V1_ENDPOINTS, ids=lambda e: e.id)
def test_model_naming_a_scenario_selects_it(server: MockServer, endpoint: Endpoint) -> None:
    response = httpx.post(server.url + endpoint.path, json=endpoint.body("golden", stream=False))
    assert response.headers["x-mock-scenario"] == "golden"
    assert "Looking it up." in response.text


# --- --require-auth --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked() -> Iterator[MockServer]:
    settings = Settings(port=0, scenario_dirs=(TEST_SCENARIOS,), access_log=False, require_auth=TOKEN)
    with MockServer(settings=settings) as running:
        yield running


def request_to(server: MockServer, endpoint: Endpoint, headers: dict[str, str]) -> httpx.Response:
    body = endpoint.body("golden", stream=False)
    return httpx.post(server.url + endpoint.path, json=body, headers={**headers, "X-Mock-Chunk-Ms": "0"})


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
@pytest.mark.parametrize(
    ("headers", "problem"),
    [({}, "Missing API key"), ({"Authorization": "Bearer wrong"}, "Incorrect API key")],
    ids=["missing", "wrong"],
)
def test_require_auth_refuses_model_requests_without_the_token(
    locked: MockServer, endpoint: Endpoint, headers: dict[str, str], problem: str
) -> None:
    response = request_to(locked, endpoint, headers)
    assert response.status_code == 401
    error = error_of(response, endpoint.path)
    assert problem in error["message"]
    if not endpoint.dialect.startswith("ollama"):  # Ollama's error is a message without a type
        assert error["type"] == ("authentication_error" if endpoint.dialect == "anthropic" else "invalid_request_error")
    records = httpx.get(locked.url + "/_mock/requests").json()
    assert (records[-1]["path"], records[-1]["status"]) == (endpoint.path, 401)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_require_auth_accepts_the_bearer_token(locked: MockServer, endpoint: Endpoint) -> None:
    assert request_to(locked, endpoint, {"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_messages_accept_the_token_as_x_api_key(locked: MockServer) -> None:
    (messages,) = [e for e in ENDPOINTS if e.id == "messages"]
    assert request_to(locked, messages, {"x-api-key": TOKEN}).status_code == 200
    (chat,) = [e for e in ENDPOINTS if e.id == "chat_completions"]
    assert request_to(locked, chat, {"x-api-key": TOKEN}).status_code == 401


def test_event_source_sends_the_token_as_a_query_parameter(locked: MockServer) -> None:
    url = locked.url + "/completions"
    query = {"messages": "hi", "scenario": "golden"}
    assert httpx.get(url, params=query).status_code == 401
    response = httpx.get(url, params={**query, "api_key": TOKEN})
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")


def test_models_need_the_token_too(locked: MockServer) -> None:
    assert httpx.get(locked.url + "/v1/models").status_code == 401
    listed = httpx.get(locked.url + "/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "golden" in {model["id"] for model in listed.json()["data"]}


def ask_openai(server: MockServer, key: str) -> str | None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key=key, max_retries=0) as client:
        completion = client.chat.completions.create(model="golden", messages=[{"role": "user", "content": "hi"}])
    return completion.choices[0].message.content


def ask_anthropic(server: MockServer, key: str) -> list[str]:
    with anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0) as client:
        message = client.messages.create(model="golden", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    return [block.type for block in message.content]


def test_sdks_with_the_wrong_key_raise_authentication_errors(locked: MockServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        ask_openai(locked, "wrong")
    with pytest.raises(anthropic.AuthenticationError):
        ask_anthropic(locked, "wrong")


def test_sdks_with_the_right_key_get_answers(locked: MockServer) -> None:
    assert ask_openai(locked, TOKEN) == "Looking it up."
    assert ask_anthropic(locked, TOKEN) == ["thinking", "text", "tool_use"]
