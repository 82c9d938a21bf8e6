"""The OpenAI-compatible routes under /v1: what `OpenAI(base_url=server.url + "/v1")` calls."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mock_server.dialects import DIALECTS
from mock_server.errors import MockLLMError
from mock_server.http import anthropic_api, openapi
from mock_server.http.auth import authorize
from mock_server.http.model_request import ApiRequest, flag, require, respond, stream_options_usage
from mock_server.http.pipeline import error_response, open_record, state_of
from mock_server.http.prompt import prompt_from_body
from mock_server.wire.actions import Outcome

router = APIRouter(prefix="/v1", tags=["openai"])

CHAT, COMPLETIONS, RESPONSES = DIALECTS["openai-chat"], DIALECTS["openai-completions"], DIALECTS["openai-responses"]
MODEL_OWNER = "mock-llm-sse"


def _read_chat(body: dict[str, Any]) -> ApiRequest:
    require(body, "messages", "a list of {role, content} messages")
    prompt = prompt_from_body(body, fields=("messages",))
    return ApiRequest(prompt, flag(body, "stream"), stream_options_usage(body))


def _read_completions(body: dict[str, Any]) -> ApiRequest:
    require(body, "prompt", "a string or a list of strings")
    prompt = prompt_from_body(body, fields=("prompt",))
    return ApiRequest(prompt, flag(body, "stream"), stream_options_usage(body))


def _read_responses(body: dict[str, Any]) -> ApiRequest:
    require(body, "input", "a string or a list of input items")
    return ApiRequest(prompt_from_body(body, fields=("input",)), flag(body, "stream"))


@router.post("/chat/completions", summary="OpenAI Chat Completions, streamed or whole", openapi_extra=openapi.CHAT)
async def chat_completions(request: Request) -> Response:
    return await respond(request, CHAT, _read_chat)


@router.post("/completions", summary="OpenAI legacy Completions, streamed or whole", openapi_extra=openapi.LEGACY)
async def completions(request: Request) -> Response:
    return await respond(request, COMPLETIONS, _read_completions)


@router.post("/responses", summary="OpenAI Responses API, streamed or whole", openapi_extra=openapi.RESPONSES)
async def responses(request: Request) -> Response:
    return await respond(request, RESPONSES, _read_responses)


@router.get("/models", summary="Every scenario, as a model")
async def models(request: Request) -> Response:
    """OpenAI's model list; with an `anthropic-version` header (as the Anthropic SDK sends), Anthropic's."""
    record = open_record(request, None)
    state = state_of(request)
    anthropic = "anthropic-version" in request.headers
    try:
        authorize(state.settings.require_auth, request.headers, request.query_params, api_key_header=anthropic)
    except MockLLMError as exc:
        return error_response(DIALECTS["anthropic"] if anthropic else CHAT, exc, record)
    names, created = state.catalog.names, int(state.settings.wall_clock())
    if anthropic:
        body = anthropic_api.model_list(names, created)
    else:
        data = [{"id": name, "object": "model", "created": created, "owned_by": MODEL_OWNER} for name in names]
        body = {"object": "list", "data": data}
    record.finish(200, Outcome.COMPLETED)
    return JSONResponse(body, headers={"X-Mock-Request-Id": str(record.id)})
