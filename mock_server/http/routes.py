"""The model endpoints, declared once: their method and path, dialect, what they read and how the
OpenAPI schema describes them. The app dispatches them straight to the shared request path
(`pipeline.respond`), FastAPI lists them in /openapi.json, and the tests and the bench send each of
them its `example` request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mock_server.dialects import DIALECTS, Dialect
from mock_server.errors import MockLLMError
from mock_server.http import model_request, openapi
from mock_server.http.auth import authorize
from mock_server.http.errors import answer_error
from mock_server.http.model_request import ModelRequest
from mock_server.http.state import state_of
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
    read: Callable[[Mapping[str, Any]], ModelRequest]
    """Reads the JSON body (the query, for GET) into what the request path needs."""
    example: Example
    """A request for (model, stream, prompt): the JSON body, or for GET the query parameters."""
    summary: str
    openapi: dict[str, Any] = field(default_factory=dict)
    api_key_header: bool = False
    """The token may come as `x-api-key` (Anthropic's way)."""
    close_events: bool = False
    """The route answers a `close` fault with `event: close`, the convention of custom backends that
    fetch-event-source and EventSource users meet; the provider routes end the stream cleanly instead."""
    forwarded: bool = False
    """A path this server does not model, only forwarded to the upstream: any body, any method."""

    @property
    def reads_body(self) -> bool:
        return self.method not in ("GET", "HEAD")


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
        api_key_header=True,
    ),
)


def schema_router(handler: Callable[[ModelRoute], Callable[[Request], Any]]) -> APIRouter:
    """The model routes for FastAPI's OpenAPI schema (requests to them are dispatched before FastAPI),
    and GET /v1/models, which FastAPI serves."""
    router = APIRouter()
    for route in MODEL_ROUTES:
        tags: list[str | Enum] = ["anthropic" if route.dialect.name == "anthropic" else "openai"]
        router.add_api_route(
            route.path,
            handler(route),
            methods=[route.method],
            name=route.name,
            summary=route.summary,
            openapi_extra=route.openapi,
            tags=tags,
        )
    router.add_api_route("/v1/models", models, methods=["GET"], summary="Every scenario, as a model", tags=["openai"])
    return router


async def models(request: Request) -> Response:
    """OpenAI's model list; with an `anthropic-version` header (as the Anthropic SDK sends), Anthropic's."""
    state = state_of(request)
    entry = state.open_entry(request, None)
    anthropic = "anthropic-version" in request.headers
    dialect = DIALECTS["anthropic" if anthropic else "openai-chat"]
    try:
        authorize(state.settings.require_auth, request.headers, request.query_params, api_key_header=anthropic)
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
