"""Every error answer, in the shape of the API the request went to: the control API's
`{"error": {"type", "message", ...}}` under /_mock/, Anthropic's for /v1/messages (or a request
carrying `anthropic-version`), Ollama's `{"error": "..."}` under /api/, Google's for Gemini's paths,
Azure OpenAI's under /openai/, Bedrock's under /model/, OpenAI's elsewhere. An error of ours
(`MockLLMError`) is answered with its class's status and code; the handlers below answer what no
route answered itself (an unknown path or method, a malformed control-API query, a client gone, a
bug), never with a traceback. A bug is a 500 saying so, and the server's log gets the traceback
(uvicorn logs what Starlette re-raises after answering).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from mock_server import dialects
from mock_server.errors import MockLLMError, close_matches
from mock_server.journal.journal import Entry
from mock_server.scenarios import steps
from mock_server.settings import CONTROL_PREFIX
from mock_server.wire.outcome import Outcome

if TYPE_CHECKING:  # FastAPI is loaded with the part of the app that uses it (fastapi_app.py)
    from fastapi.exceptions import RequestValidationError

    from mock_server.dialects import Dialect

OLLAMA_PREFIX = "/api/"
AZURE_PREFIX = "/openai/"
BEDROCK_PREFIX = "/model/"


def control_error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The control API's error shape: `{"error": {"type", "message", ...}}`."""
    return {"error": {"type": code, "message": message, **extra}}


def dialect_error_body(
    dialect: Dialect, status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The dialect's error body for `status`, with our message, and OpenAI's `code` and `param`
    (Anthropic's shape has neither; Google's says them its own way); the code may choose the shape
    (Azure's gateway errors)."""
    if dialect.refusal_body is not None:
        return dialect.refusal_body(status, message, code, param)
    body = dialect.error_body(status, steps.ErrorEvent(message, None, code))
    details = body["error"]
    if isinstance(details, str):  # Ollama's error is its message alone
        return {**body, "error": message}
    details["message"] = message
    details.update({name: value for name, value in (("code", code), ("param", param)) if name in details})
    return body


def dialect_of(path: str, headers: Headers) -> Dialect | None:
    """The dialect whose error shape a request's errors take; None for the control API's own (which
    loads no dialect: the ready check's refusals are answered before any is loaded)."""
    if path.startswith(CONTROL_PREFIX):
        return None
    if path.startswith(OLLAMA_PREFIX):
        return dialects.DIALECTS["ollama-chat"]
    if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path):
        return dialects.DIALECTS["gemini"]  # Gemini's paths: /v1beta/..., /v1/models/{model}:{method}
    if path.startswith(AZURE_PREFIX):
        return dialects.DIALECTS["azure-openai"]
    if path.startswith(BEDROCK_PREFIX):
        return dialects.DIALECTS["bedrock-converse"]
    anthropic = path == "/v1/messages" or "anthropic-version" in headers
    return dialects.DIALECTS["anthropic" if anthropic else "openai-chat"]


def error_answer(
    status: int,
    code: str,
    message: str,
    dialect: Dialect | None,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An error answer in `dialect`'s shape, or the control API's when `dialect` is None (`extra`
    fields go there only)."""
    if dialect is None:
        body = control_error_body(code, message, **extra)
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))
    body = dialect_error_body(dialect, status, message, code=code, param=param)
    return JSONResponse(
        body,
        status_code=status,
        headers={**dict(dialect.error_headers(status, code, tuple((headers or {}).items()))), **(headers or {})},
    )


def answer_error(
    exc: MockLLMError, dialect: Dialect | None, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """`exc` answered with its class's status and code, in `dialect`'s shape (None: the control API's)."""
    return error_answer(
        exc.status, exc.code, str(exc), dialect, param=exc.param, headers={**exc.headers, **(headers or {})}, **extra
    )


def shaped_error(request: Request, status: int, code: str, message: str, **headers: str) -> JSONResponse:
    """An error in the shape of the API `request` went to."""
    return error_answer(status, code, message, dialect_of(request.url.path, request.headers), headers=headers)


async def our_error(request: Request, exc: MockLLMError) -> Response:
    """An error of ours a route raised, with its class's status, in the shape of the path's API."""
    return answer_error(exc, dialect_of(request.url.path, request.headers))


async def http_error(request: Request, exc: HTTPException) -> Response:
    """No route for the path (with the nearest known path), or not for the method."""
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        known = sorted(request.app.openapi()["paths"])
        close = close_matches(path, known)
        hint = f" Did you mean {close[0]}?" if close else ""
        message = f"There is no {path} here.{hint} Paths: {', '.join(known)}; the API is described at /docs."
        return shaped_error(request, 404, "not_found", message)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{method} is not allowed on {path}; it takes {allowed}."
        return shaped_error(request, 405, "method_not_allowed", message, Allow=allowed)
    return shaped_error(request, exc.status_code, "http_error", str(exc.detail), **(exc.headers or {}))


async def invalid_parameters(request: Request, exc: RequestValidationError) -> Response:
    """A control-API query FastAPI could not read: every parameter that was wrong."""
    problems = []
    for error in exc.errors():
        where, *name = error["loc"]
        field = ".".join(str(part) for part in name)
        problems.append(f"{where} parameter `{field}`: {error['msg']} (got {error.get('input')!r})")
    return shaped_error(request, 400, "invalid_parameter", "; ".join(problems) + ".")


async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
    """The client left while its request was arriving: nobody is there to read an answer."""
    return Response(status_code=400)


async def unexpected(request: Request, exc: Exception) -> Response:
    """A bug: a 500 saying so, in the API's shape, with the request's journal record finished."""
    entry = getattr(request.state, "journal_entry", None)
    if isinstance(entry, Entry) and entry.record.outcome is None:
        entry.finish(500, Outcome.ERROR_STATUS)
    message = (
        f"mock-llm-sse failed unexpectedly while answering {request.method} {request.url.path} "
        f"({type(exc).__name__}); the server's log has the traceback. This is a bug: please report it."
    )
    return shaped_error(request, 500, "internal_error", message)
