"""`/completions`: OpenAI chat chunks over SSE for browser clients (GET for EventSource, POST for
fetch-event-source and friends)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mock_server.errors import MockLLMError
from mock_server.http import openapi
from mock_server.http.auth import authorize
from mock_server.http.model_request import ApiRequest, respond
from mock_server.http.pipeline import OPENAI_CHAT, error_response, open_record, state_of, stream
from mock_server.http.prompt import prompt_from_body, prompt_from_query

router = APIRouter()


@router.get(
    "/completions", summary="OpenAI chat chunks over SSE, for EventSource", openapi_extra=openapi.COMPLETIONS_GET
)
async def completions_get(request: Request) -> Response:
    record = open_record(request, None)
    query = dict(request.query_params)
    try:
        authorize(state_of(request).settings.require_auth, request.headers, query, query_param=True)
        prompt = prompt_from_query(query)
        return stream(request, record, OPENAI_CHAT, prompt, named=query.get("scenario"))
    except MockLLMError as exc:
        return error_response(OPENAI_CHAT, exc, record)


@router.post(
    "/completions",
    summary="OpenAI chat chunks over SSE, for fetch-event-source and friends",
    openapi_extra=openapi.COMPLETIONS_POST,
)
async def completions_post(request: Request) -> Response:
    return await respond(request, OPENAI_CHAT, lambda body: ApiRequest(prompt_from_body(body), stream=True))
