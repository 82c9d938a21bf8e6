"""The model endpoints, declared once: their method and path, dialect, what they read and how the
OpenAPI schema describes them. The app dispatches them straight to the shared request path
(`pipeline.respond`), FastAPI lists them in /openapi.json, and the tests and the bench send each of
them its `example` request."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import compile_path

from mock_server.dialects import DIALECTS, Dialect, ollama
from mock_server.errors import BodyTooLargeError, MockLLMError, RequestBodyError
from mock_server.http import (
    azure,
    bedrock,
    embeddings,
    gemini,
    model_request,
    openapi,
    provider_embeddings,
)
from mock_server.http.auth import authorize
from mock_server.http.errors import answer_error
from mock_server.http.model_request import ModelRequest
from mock_server.http.prompt import parse_json_body
from mock_server.http.request_body import read_body
from mock_server.http.state import state_of
from mock_server.journal.journal import Entry
from mock_server.wire.framing import Framing
from mock_server.wire.outcome import Outcome

MODEL_OWNER = "mock-llm-sse"
Example = Callable[[str, bool, str], dict[str, Any]]


@dataclass(frozen=True, slots=True, eq=False)
class ModelRoute:
    """One model endpoint."""

    name: str
    method: str
    path: str
    dialect: Dialect
    read: Callable[[Mapping[str, Any], Mapping[str, str]], ModelRequest]
    """Reads the JSON body (the query, for GET) and the path's parameters into what the request path needs."""
    example: Example
    """A request for (model, stream, prompt): the JSON body, or for GET the query parameters."""
    summary: str
    openapi: dict[str, Any] = field(default_factory=dict)
    api_key_header: str | None = None
    """The header the token may also come in, besides `Authorization: Bearer` (Anthropic's
    `x-api-key`, Azure's `api-key`)."""
    close_events: bool = False
    """The route answers a `close` fault with `event: close`, the convention of custom backends that
    fetch-event-source and EventSource users meet; the provider routes end the stream cleanly instead."""
    forwarded: bool = False
    """A path this server does not model, only forwarded to the upstream: any body, any method."""
    framing: Callable[[Mapping[str, str]], Framing] | None = None
    """How the route frames a stream, given the request's query (Gemini: SSE with `alt=sse`, else a
    JSON array); None: as its dialect does."""
    google_api_key: bool = False
    """The token may come as `x-goog-api-key` or `?key=` (Google's ways), and a wrong one fails as
    Google fails it."""
    aws_signature: bool = False
    """The token is the access key id of an AWS SigV4 `Authorization` (what boto3 sends), or a Bedrock
    API key (`Authorization: Bearer`); a request without either fails as AWS fails it."""
    streams: bool | None = None
    """Whether the route always streams (True) or never does (False) whatever the body says, as
    Gemini's methods and embeddings; None: the body's `stream` decides. A route that makes its answer
    from the request (embeddings: `ModelRequest.answer`) takes only the scenario's status, waits and
    faults."""

    check_query: Callable[[Mapping[str, str]], None] | None = None
    """Raises the error a request's query earns before anything else is read (Azure's `api-version`)."""
    example_path: Callable[[str, bool], str] | None = None
    """Where a request for (model, stream) goes, when not to `path` as written: a path with parameters
    (Azure's deployment), a query the route requires."""

    def framing_for(self, query: Mapping[str, str]) -> Framing:
        return self.framing(query) if self.framing is not None else self.dialect.framing

    @property
    def reads_body(self) -> bool:
        return self.method not in ("GET", "HEAD")

    def example_target(self, model: str, stream: bool) -> str:
        """The path, with any query it needs, of the `example` request for (model, stream)."""
        return self.example_path(model, stream) if self.example_path is not None else self.path


class RouteTable:
    """The model routes by method and path: exact paths looked up at once, paths with parameters
    (`/openai/deployments/{deployment}/chat/completions`) matched as FastAPI matches them; `HEAD`
    answers on every GET route."""

    def __init__(self, routes: tuple[ModelRoute, ...]) -> None:
        self.routes = routes
        self._exact: dict[tuple[str, str], ModelRoute] = {}
        self._templated: list[tuple[str, str, re.Pattern[str], ModelRoute]] = []
        """Method, the path's text before its first parameter, the path's pattern, the route."""
        for route in routes:
            methods = [route.method, "HEAD"] if route.method == "GET" else [route.method]
            for method in methods:
                if "{" in route.path:
                    prefix = route.path[: route.path.index("{")]
                    self._templated.append((method, prefix, compile_path(route.path)[0], route))
                else:
                    self._exact[(route.path, method)] = route

    def match(self, method: str, path: str) -> tuple[ModelRoute, dict[str, str]] | None:
        """The route for a request and its path parameters, or None."""
        route = self._exact.get((path, method))
        if route is not None:
            return route, {}
        for wanted, prefix, pattern, templated in self._templated:
            # Only a path with the template's literal start can match it: a look at that start spares
            # the patterns of the other providers (a dozen before Bedrock's: 3 us).
            if wanted == method and path.startswith(prefix) and (found := pattern.match(path)) is not None:
                return templated, found.groupdict()
        return None

    def keys(self) -> set[tuple[str, str]]:
        """Every (path, method) answered, the templates as written."""
        exact = set(self._exact)
        return exact | {(route.path, method) for method, _, _, route in self._templated}


def forwarded_route(method: str, path: str) -> ModelRoute:
    """The route of a request to a path this server does not model, when there is an upstream: it is
    forwarded with the faults its query or headers carry, and its own errors take OpenAI's shape."""
    return ModelRoute(
        "upstream",
        method,
        path,
        DIALECTS["openai-chat"],
        model_request.read_forwarded,
        lambda model, stream, prompt: {},
        "forwarded to the upstream",
        close_events=True,
        forwarded=True,
    )


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def _gemini_routes() -> tuple[ModelRoute, ...]:
    """`:generateContent` and `:streamGenerateContent` under each API version google-genai calls."""
    return tuple(
        ModelRoute(
            f"gemini_{'stream_' if stream else ''}generate_content{'' if version == 'v1beta' else '_' + version}",
            "POST",
            f"/{version}/models/{{model}}:{method}",
            DIALECTS["gemini"],
            gemini.read_stream_generate_content if stream else gemini.read_generate_content,
            gemini.example,
            f"Gemini {method}{' (alt=sse: SSE, else a JSON array)' if stream else ''}",
            gemini.GENERATE_CONTENT,
            framing=gemini.framing,
            google_api_key=True,
            streams=stream,
            example_path=gemini.example_path(version, method, "alt=sse" if stream else ""),
        )
        for version in gemini.VERSIONS
        for method, stream in gemini.METHODS
    )


def _gemini_embedding_routes() -> tuple[ModelRoute, ...]:
    """`:embedContent` and `:batchEmbedContents` (what google-genai calls, for one content or several)
    under each API version."""
    return tuple(
        ModelRoute(
            f"gemini_{name}{'' if version == 'v1beta' else '_' + version}",
            "POST",
            f"/{version}/models/{{model}}:{method}",
            DIALECTS["gemini"],
            read,
            provider_embeddings.gemini_example(batch),
            f"Gemini {method}: deterministic vectors of the contents",
            provider_embeddings.gemini_openapi(batch),
            google_api_key=True,
            streams=False,
            example_path=gemini.example_path(version, method),
        )
        for version in gemini.VERSIONS
        for name, method, read, batch in (
            ("embed_content", "embedContent", provider_embeddings.read_embed_content, False),
            ("batch_embed_contents", "batchEmbedContents", provider_embeddings.read_batch_embed_contents, True),
        )
    )


def _bedrock_routes() -> tuple[ModelRoute, ...]:
    """Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream of a model id."""
    return tuple(
        ModelRoute(
            f"bedrock_{name}",
            "POST",
            bedrock.path(operation),
            DIALECTS[dialect],
            (bedrock.read_converse if dialect == "bedrock-converse" else bedrock.read_invoke)(stream),
            bedrock.example_converse if dialect == "bedrock-converse" else bedrock.example_invoke,
            f"Bedrock {operation}{' (AWS event-stream frames)' if stream else ''}",
            bedrock.CONVERSE_OPENAPI if dialect == "bedrock-converse" else bedrock.INVOKE_OPENAPI,
            streams=stream,
            aws_signature=True,
            example_path=bedrock.example_path(operation),
        )
        for name, operation, dialect, stream in bedrock.OPERATIONS
    )


MODEL_ROUTES: tuple[ModelRoute, ...] = (
    ModelRoute(
        "completions_get",
        "GET",
        "/completions",
        DIALECTS["openai-chat"],
        model_request.read_completions_query,
        lambda model, stream, prompt: {"messages": prompt, "model": model},
        "OpenAI chat chunks over SSE, for EventSource",
        openapi.COMPLETIONS_GET,
        close_events=True,
    ),
    ModelRoute(
        "completions_post",
        "POST",
        "/completions",
        DIALECTS["openai-chat"],
        model_request.read_completions_body,
        lambda model, stream, prompt: {"model": model, "stream": stream, "messages": _messages(prompt)},
        "OpenAI chat chunks over SSE, for fetch-event-source and friends",
        openapi.COMPLETIONS_POST,
        close_events=True,
    ),
    ModelRoute(
        "chat_completions",
        "POST",
        "/v1/chat/completions",
        DIALECTS["openai-chat"],
        model_request.read_chat,
        lambda model, stream, prompt: {"model": model, "stream": stream, "messages": _messages(prompt)},
        "OpenAI Chat Completions, streamed or whole",
        openapi.CHAT,
    ),
    ModelRoute(
        "completions",
        "POST",
        "/v1/completions",
        DIALECTS["openai-completions"],
        model_request.read_legacy_completions,
        lambda model, stream, prompt: {"model": model, "stream": stream, "prompt": prompt},
        "OpenAI legacy Completions, streamed or whole",
        openapi.LEGACY,
    ),
    ModelRoute(
        "responses",
        "POST",
        "/v1/responses",
        DIALECTS["openai-responses"],
        model_request.read_responses,
        lambda model, stream, prompt: {"model": model, "stream": stream, "input": prompt},
        "OpenAI Responses API, streamed or whole",
        openapi.RESPONSES,
    ),
    ModelRoute(
        "messages",
        "POST",
        "/v1/messages",
        DIALECTS["anthropic"],
        model_request.read_messages,
        lambda model, stream, prompt: {
            "model": model,
            "stream": stream,
            "messages": _messages(prompt),
            "max_tokens": 256,
        },
        "Anthropic Messages, streamed or whole",
        openapi.MESSAGES,
        api_key_header="x-api-key",
    ),
    ModelRoute(
        "azure_chat_completions",
        "POST",
        "/openai/deployments/{deployment}/chat/completions",
        DIALECTS["azure-openai"],
        azure.read_chat,
        lambda model, stream, prompt: {"model": model, "stream": stream, "messages": _messages(prompt)},
        "Azure OpenAI Chat Completions of a deployment, streamed or whole",
        azure.OPENAPI_CHAT,
        api_key_header="api-key",
        check_query=azure.check_api_version,
        example_path=azure.example_path("chat/completions"),
    ),
    ModelRoute(
        "azure_completions",
        "POST",
        "/openai/deployments/{deployment}/completions",
        DIALECTS["azure-openai-completions"],
        azure.read_completions,
        lambda model, stream, prompt: {"model": model, "stream": stream, "prompt": prompt},
        "Azure OpenAI legacy Completions of a deployment, streamed or whole",
        azure.OPENAPI_COMPLETIONS,
        api_key_header="api-key",
        check_query=azure.check_api_version,
        example_path=azure.example_path("completions"),
    ),
    ModelRoute(
        "ollama_chat",
        "POST",
        "/api/chat",
        DIALECTS["ollama-chat"],
        model_request.read_ollama_chat,
        lambda model, stream, prompt: {"model": model, "stream": stream, "messages": _messages(prompt)},
        "Ollama chat, streamed as NDJSON or whole",
        openapi.OLLAMA_CHAT,
    ),
    ModelRoute(
        "ollama_generate",
        "POST",
        "/api/generate",
        DIALECTS["ollama-generate"],
        model_request.read_ollama_generate,
        lambda model, stream, prompt: {"model": model, "stream": stream, "prompt": prompt},
        "Ollama generate, streamed as NDJSON or whole",
        openapi.OLLAMA_GENERATE,
    ),
    ModelRoute(
        "ollama_embed",
        "POST",
        "/api/embed",
        DIALECTS["ollama-chat"],
        provider_embeddings.read_ollama_embed,
        lambda model, stream, prompt: {"model": model, "input": prompt},
        "Ollama embed: deterministic vectors of the inputs",
        openapi.OLLAMA_EMBED,
        streams=False,
    ),
    *_gemini_routes(),
    *_gemini_embedding_routes(),
    *_bedrock_routes(),
    ModelRoute(
        "embeddings",
        "POST",
        "/v1/embeddings",
        DIALECTS["openai-chat"],
        embeddings.read_embeddings,
        lambda model, stream, prompt: {"model": model, "input": prompt},
        "OpenAI Embeddings: deterministic vectors of the inputs",
        openapi.EMBEDDINGS,
        streams=False,
    ),
    ModelRoute(
        "azure_embeddings",
        "POST",
        "/openai/deployments/{deployment}/embeddings",
        DIALECTS["azure-openai"],
        azure.read_embeddings,
        lambda model, stream, prompt: {"input": prompt},
        "Azure OpenAI Embeddings of a deployment: deterministic vectors of the inputs",
        azure.OPENAPI_EMBEDDINGS,
        api_key_header="api-key",
        streams=False,
        check_query=azure.check_api_version,
        example_path=azure.example_path("embeddings"),
    ),
)


async def models(request: Request) -> Response:
    """OpenAI's model list; with an `anthropic-version` header (as the Anthropic SDK sends), Anthropic's;
    with `x-goog-api-client` (as google-genai sends, which lists models at /v1/models), Gemini's."""
    if "x-goog-api-client" in request.headers:
        return await gemini.models(request)
    state = state_of(request)
    entry = await state.open_entry(request, None)
    anthropic = "anthropic-version" in request.headers
    dialect = DIALECTS["anthropic" if anthropic else "openai-chat"]
    try:
        authorize(
            state.settings.require_auth,
            request.headers,
            request.query_params,
            api_key_header="x-api-key" if anthropic else None,
        )
    except MockLLMError as exc:
        entry.finish(exc.status, Outcome.ERROR_STATUS)
        return answer_error(exc, dialect, headers={"X-Mock-Request-Id": str(entry.id)})
    names, created = state.catalog.names, int(state.settings.wall_clock())
    body = _anthropic_model_list(names, created) if anthropic else _openai_model_list(names, created)
    entry.finish(200, Outcome.COMPLETED)
    return JSONResponse(body, headers={"X-Mock-Request-Id": str(entry.id)})


def _openai_model_list(names: list[str], created: int) -> dict[str, Any]:
    data = [{"id": name, "object": "model", "created": created, "owned_by": MODEL_OWNER} for name in names]
    return {"object": "list", "data": data}


def _anthropic_model_list(names: list[str], created: int) -> dict[str, Any]:
    created_at = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = [{"type": "model", "id": name, "display_name": name, "created_at": created_at} for name in names]
    return {
        "data": data,
        "has_more": False,
        "first_id": names[0] if names else None,
        "last_id": names[-1] if names else None,
    }


async def ollama_tags(request: Request) -> Response:
    """Ollama's model list (`ollama list`, `Client.list()`): every scenario, as /v1/models lists them."""
    state = state_of(request)
    entry = await state.open_entry(request, None)
    refused = _refused(request, entry)
    if refused is not None:
        return refused
    body = ollama.model_list(state.catalog.names, state.settings.wall_clock())
    entry.finish(200, Outcome.COMPLETED)
    return JSONResponse(body, headers={"X-Mock-Request-Id": str(entry.id)})


async def ollama_show(request: Request) -> Response:
    """Ollama's model details (`Client.show()`) of the scenario `model` names; any other name is a 404,
    as Ollama answers for a model it does not have."""
    state = state_of(request)
    dialect = DIALECTS["ollama-chat"]
    try:
        raw = await read_body(request, state.settings.max_body_bytes)
    except BodyTooLargeError as exc:
        entry = await state.open_entry(request, None)
        entry.finish(exc.status, Outcome.ERROR_STATUS)
        return answer_error(exc, dialect, headers={"X-Mock-Request-Id": str(entry.id)})
    entry = await state.open_entry(request, raw)
    refused = _refused(request, entry)
    if refused is not None:
        return refused
    headers = {"X-Mock-Request-Id": str(entry.id)}
    try:
        name = _model_name(parse_json_body(raw))
    except MockLLMError as exc:
        entry.finish(exc.status, Outcome.ERROR_STATUS)
        return answer_error(exc, dialect, headers=headers)
    if name not in state.catalog:
        entry.finish(404, Outcome.ERROR_STATUS)
        return JSONResponse({"error": f"model '{name}' not found"}, status_code=404, headers=headers)
    description = state.catalog.get(name).description or ""
    entry.finish(200, Outcome.COMPLETED)
    return JSONResponse(ollama.model_details(name, description, state.settings.wall_clock()), headers=headers)


def _refused(request: Request, entry: Entry) -> Response | None:
    """The 401 of a request to Ollama's listing routes without the token `--require-auth` asks for."""
    try:
        authorize(state_of(request).settings.require_auth, request.headers, request.query_params)
    except MockLLMError as exc:
        entry.finish(exc.status, Outcome.ERROR_STATUS)
        return answer_error(exc, DIALECTS["ollama-chat"], headers={"X-Mock-Request-Id": str(entry.id)})
    return None


def _model_name(body: Mapping[str, Any]) -> str:
    """`model` (or the older `name`) of an /api/show request."""
    name = body.get("model", body.get("name"))
    if not isinstance(name, str) or not name:
        raise RequestBodyError("model is required", param="model")
    return name
