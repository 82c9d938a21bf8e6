"""`GET /v1/responses/{id}` and `DELETE /v1/responses/{id}`: the Responses API's stored responses,
answered as OpenAI answers them (a 404 in its error shape for an id not stored)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mock_server import dialects
from mock_server.errors import MockLLMError, ResponseNotFoundError
from mock_server.http.auth import authorize
from mock_server.http.errors import answer_error
from mock_server.http.state import MockState, state_of
from mock_server.wire.outcome import Outcome

PATH = "/v1/responses/{response_id}"
_PREFIX = "/v1/responses/"


async def upstream_response(state: MockState, method: str, path: str) -> bool:
    """Whether a request is for a response this server has not stored, which (with an upstream) is
    the upstream's to answer."""
    response_id = path.removeprefix(_PREFIX)
    is_ours = method in ("GET", "HEAD", "DELETE") and path.startswith(_PREFIX) and "/" not in response_id
    return is_ours and await state.responses.get(response_id) is None


async def get_response(response_id: str, request: Request) -> Response:
    """The stored response object, as `response.completed` carried it."""
    return await _answer(request, response_id, delete=False)


async def delete_response(response_id: str, request: Request) -> Response:
    """Forget a stored response: `previous_response_id` can no longer name it."""
    return await _answer(request, response_id, delete=True)


async def _answer(request: Request, response_id: str, *, delete: bool) -> Response:
    state = state_of(request)
    entry = await state.open_entry(request, None)
    headers = {"X-Mock-Request-Id": str(entry.id), "x-request-id": str(entry.id)}
    try:
        authorize(state.settings.require_auth, request.headers, request.query_params)
        stored = await state.responses.get(response_id)
        if stored is None:
            raise ResponseNotFoundError(response_id)
    except MockLLMError as exc:
        entry.finish(exc.status, Outcome.ERROR_STATUS)
        return answer_error(exc, dialects.DIALECTS["openai-responses"], headers=headers)
    entry.finish(200, Outcome.COMPLETED)
    if delete:
        await state.responses.delete(response_id)
        return JSONResponse({"id": response_id, "object": "response", "deleted": True}, headers=headers)
    return Response(stored.body, media_type="application/json", headers=headers)
