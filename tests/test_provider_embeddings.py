"""The embeddings of Azure OpenAI, Ollama and Gemini through their official SDKs, unmodified: the very
vectors `mock_server.embed` computes, each provider's request checks, errors and keys, and the
faults a JSON answer can suffer."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import httpx2
import ollama
import openai
import pytest
from google import genai
from google.genai import errors, types
from openai import AzureOpenAI

from mock_server import embed
from mock_server.http.azure import EXAMPLE_VERSION
from mock_server.http.server import MockServer

TEXTS = ["the cat sat", "a cat sat", "stock prices fell"]
GEMINI = "text-embedding-004"


def vectors(model: str, dimensions: int | None = None, texts: list[str] = TEXTS) -> list[list[float]]:
    return [embed(text, model=model, dimensions=dimensions, seed=0) for text in texts]


# --- Azure OpenAI ----------------------------------------------------------------------------------


@pytest.fixture
def azure(server: MockServer) -> Iterator[AzureOpenAI]:
    with AzureOpenAI(azure_endpoint=server.url, api_version=EXAMPLE_VERSION, api_key="x", max_retries=0) as client:
        yield client


def test_azure_embeds_with_the_deployment_as_the_model(azure: AzureOpenAI) -> None:
    response = azure.embeddings.create(model="my-embedder", input=TEXTS, encoding_format="float", dimensions=64)
    assert response.model == "my-embedder"
    assert [d.embedding for d in response.data] == vectors("my-embedder", 64)


def test_azure_base64_decodes_to_the_same_floats(azure: AzureOpenAI) -> None:
    response = azure.embeddings.create(model="text-embedding-3-small", input="the cat sat", encoding_format="base64")
    raw = base64.b64decode(response.data[0].embedding)  # type: ignore[arg-type]  # left as it came, as asked
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vectors("text-embedding-3-small", texts=["the cat sat"])[0]
    assert (
        azure.embeddings.create(model="text-embedding-3-small", input="the cat sat").data[0].embedding
        == (vectors("text-embedding-3-small", texts=["the cat sat"])[0])
    )


def test_azure_embeddings_want_an_api_version_and_the_key(make_server: Callable[..., MockServer]) -> None:
    server = make_server(require_auth="s3cret")
    url = server.url + "/openai/deployments/d/embeddings"
    assert httpx.post(url, json={"input": "hi"}, headers={"api-key": "s3cret"}).status_code == 404
    assert (
        httpx.post(url + "?api-version=2020-01-01", json={"input": "hi"}, headers={"api-key": "s3cret"}).status_code
        == 400
    )
    wrong = AzureOpenAI(azure_endpoint=server.url, api_version=EXAMPLE_VERSION, api_key="wrong", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError):
        wrong.embeddings.create(model="d", input="hi")
    with AzureOpenAI(azure_endpoint=server.url, api_version=EXAMPLE_VERSION, api_key="s3cret", max_retries=0) as client:
        assert len(client.embeddings.create(model="d", input="hi").data) == 1


def test_azure_refuses_what_openai_refuses(azure: AzureOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="empty string"):
        azure.embeddings.create(model="d", input="")


def test_azure_status_fault_is_a_rate_limit_and_a_head_drop_a_connection_error(azure: AzureOpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        azure.embeddings.create(model="d", input="hi", extra_headers={"X-Mock-Fault": "status:429"})
    with pytest.raises(openai.APIConnectionError):
        azure.embeddings.create(model="d", input="hi", extra_headers={"X-Mock-Fault": "drop@head"})


# --- Ollama ----------------------------------------------------------------------------------------


def ollama_client(server: MockServer, fault: str | None = None) -> ollama.Client:
    return ollama.Client(host=server.url, headers={"X-Mock-Fault": fault} if fault else {})


def test_ollama_embeds_a_list_and_a_string(server: MockServer) -> None:
    with ollama_client(server) as client:
        response = client.embed(model="nomic-embed-text", input=TEXTS, dimensions=32, truncate=True)
        single = client.embed(model="nomic-embed-text", input="the cat sat")
    assert response.model == "nomic-embed-text"
    assert [list(vector) for vector in response.embeddings] == vectors("nomic-embed-text", 32)
    assert response.prompt_eval_count == 9
    assert (response.total_duration or 0) > (response.load_duration or 0) > 0
    assert [list(vector) for vector in single.embeddings] == vectors("nomic-embed-text", texts=["the cat sat"])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"input": "hi"}, "`model`"),
        ({"model": "m"}, "`input`"),
        ({"model": "m", "input": []}, "empty list"),
        ({"model": "m", "input": ["hi", 3]}, "`input[1]`"),
        ({"model": "m", "input": "hi", "dimensions": 0}, "`dimensions`"),
        ({"model": "m", "input": "hi", "truncate": "yes"}, "`truncate`"),
    ],
)
def test_ollama_bad_requests_are_ollamas_400s(server: MockServer, body: dict[str, Any], says: str) -> None:
    response = httpx.post(server.url + "/api/embed", json=body)
    assert response.status_code == 400
    assert says in response.json()["error"]


def test_ollama_status_fault_is_a_response_error_and_a_head_drop_a_connection_error(server: MockServer) -> None:
    with ollama_client(server, "status:429") as client, pytest.raises(ollama.ResponseError) as caught:
        client.embed(model="m", input="hi")
    assert caught.value.status_code == 429
    with ollama_client(server, "drop@head") as client, pytest.raises((httpx.TransportError, ConnectionError)):
        client.embed(model="m", input="hi")


# --- Gemini ----------------------------------------------------------------------------------------


def gemini_client(server: MockServer, api_version: str | None = None, **headers: str) -> genai.Client:
    return genai.Client(
        api_key="x", http_options=types.HttpOptions(base_url=server.url, api_version=api_version, headers=headers)
    )


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_gemini_sdk_embeds_one_content_and_several(server: MockServer, api_version: str) -> None:
    with gemini_client(server, api_version) as client:
        several = client.models.embed_content(model=GEMINI, contents=TEXTS, config={"output_dimensionality": 16})
        one = client.models.embed_content(model=GEMINI, contents="the cat sat")
    assert [e.values for e in several.embeddings or []] == vectors(GEMINI, 16)
    assert [e.values for e in one.embeddings or []] == vectors(GEMINI, texts=["the cat sat"])


def test_the_sdk_calls_batch_embed_contents_for_one_content_as_for_several(server: MockServer) -> None:
    with gemini_client(server) as client:
        client.models.embed_content(model=GEMINI, contents="hi")
    last = httpx.get(server.url + "/_mock/requests").json()
    records = last if isinstance(last, list) else last.get("requests", last.get("entries", []))
    assert records[-1]["path"].endswith(f"/models/{GEMINI}:batchEmbedContents")


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_embed_content_answers_one_embedding(server: MockServer, version: str) -> None:
    body = {"content": {"parts": [{"text": "the cat "}, {"text": "sat"}]}, "outputDimensionality": 8}
    response = httpx.post(f"{server.url}/{version}/models/{GEMINI}:embedContent", json=body)
    assert response.json() == {"embedding": {"values": vectors(GEMINI, 8, ["the cat sat"])[0]}}


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("embedContent", {}, "content"),
        ("embedContent", {"content": {"parts": [{"text": ""}]}}, "content"),
        ("embedContent", {"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 0}, "outputDimensionality"),
        ("batchEmbedContents", {"requests": []}, "requests"),
        (
            "batchEmbedContents",
            {"requests": [{"model": "models/other", "content": {"parts": []}}]},
            "requests[0].model",
        ),
        (
            "batchEmbedContents",
            {"requests": [{"model": f"models/{GEMINI}", "content": {"parts": [3]}}]},
            "requests[0].content.parts[0]",
        ),
    ],
)
def test_gemini_bad_requests_are_googles_400s_naming_the_field(
    server: MockServer, method: str, body: dict[str, Any], field: str
) -> None:
    error = httpx.post(f"{server.url}/v1beta/models/{GEMINI}:{method}", json=body).json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["details"][0]["fieldViolations"][0]["field"] == field


def test_gemini_embeddings_want_the_key_where_google_takes_it(make_server: Callable[..., MockServer]) -> None:
    server = make_server(require_auth="sesame")
    url = f"{server.url}/v1beta/models/{GEMINI}:embedContent"
    body = {"content": {"parts": [{"text": "hi"}]}}
    assert httpx.post(url, json=body).status_code == 403
    assert httpx.post(url + "?key=sesame", json=body).status_code == 200
    wrong = genai.Client(api_key="nope", http_options=types.HttpOptions(base_url=server.url))
    with wrong, pytest.raises(errors.ClientError) as caught:
        wrong.models.embed_content(model=GEMINI, contents="hi")
    assert caught.value.code == 400


def test_gemini_status_fault_is_a_client_error_and_a_head_drop_a_connection_error(server: MockServer) -> None:
    with gemini_client(server, **{"X-Mock-Fault": "status:429"}) as client, pytest.raises(errors.ClientError) as caught:
        client.models.embed_content(model=GEMINI, contents="hi")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    dropped = gemini_client(server, **{"X-Mock-Fault": "drop@head"})
    with dropped, pytest.raises(httpx2.RemoteProtocolError):  # the sync client runs on httpx2, unwrapped
        dropped.models.embed_content(model=GEMINI, contents="hi")
