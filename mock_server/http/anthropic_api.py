"""The Anthropic-compatible route: what `Anthropic(base_url=server.url)` calls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mock_server.dialects import DIALECTS
from mock_server.errors import RequestBodyError
from mock_server.http import openapi
from mock_server.http.model_request import ApiRequest, flag, require, respond
from mock_server.http.prompt import prompt_from_body

router = APIRouter(prefix="/v1", tags=["anthropic"])

ANTHROPIC = DIALECTS["anthropic"]


def _read_messages(body: dict[str, Any]) -> ApiRequest:
    require(body, "messages", "a list of {role, content} messages")
    max_tokens = require(body, "max_tokens", "the most tokens to generate, a positive integer")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestBodyError(f"`max_tokens` must be a positive integer, not {max_tokens!r}.", param="max_tokens")
    return ApiRequest(prompt_from_body(body, fields=("messages",)), flag(body, "stream"))


@router.post("/messages", summary="Anthropic Messages, streamed or whole", openapi_extra=openapi.MESSAGES)
async def messages(request: Request) -> Response:
    return await respond(request, ANTHROPIC, _read_messages, api_key_header=True)


def model_list(names: list[str], created: int) -> dict[str, Any]:
    """GET /v1/models as the Anthropic SDK reads it (the route itself is served with OpenAI's)."""
    created_at = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = [{"type": "model", "id": name, "display_name": name, "created_at": created_at} for name in names]
    return {
        "data": data,
        "has_more": False,
        "first_id": names[0] if names else None,
        "last_id": names[-1] if names else None,
    }
