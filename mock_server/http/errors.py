"""The last word on errors no endpoint answered itself: an unknown path or method, a malformed query
parameter of the control API, a client gone before its body arrived, an unexpected exception.

Each answer has the error shape of the API its path belongs to (the control API's under /_mock/,
Anthropic's for /v1/messages or a request carrying `anthropic-version`, OpenAI's elsewhere), never
a traceback. An unexpected exception is a bug: the client gets a 500 saying so, and the server's
log gets the traceback (uvicorn logs what Starlette re-raises after answering).
"""

from __future__ import annotations

import difflib

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from mock_server.dialects import DIALECTS
from mock_server.http.control import error_body as control_error_body
from mock_server.http.pipeline import dialect_error_body
from mock_server.journal.journal import Record
from mock_server.wire.actions import Outcome

CONTROL_PREFIX = "/_mock/"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error the endpoints leave to the app in the shape of the path's API."""
    # Starlette types every handler as taking any Exception; each of ours takes the one it handles.
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_parameters)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, client_gone)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)


def shaped_error(request: Request, status: int, kind: str, message: str, **headers: str) -> JSONResponse:
    """An error in the shape of the API `request` went to; `kind` names it in the control API's shape."""
    path = request.url.path
    if path.startswith(CONTROL_PREFIX):
        body = control_error_body(kind, message)
    else:
        anthropic = path == "/v1/messages" or "anthropic-version" in request.headers
        body = dialect_error_body(DIALECTS["anthropic" if anthropic else "openai-chat"], status, message)
    return JSONResponse(body, status_code=status, headers=headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        known = sorted(request.app.openapi()["paths"])
        close = difflib.get_close_matches(path, known, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        message = f"There is no {path} here.{hint} Paths: {', '.join(known)}; the API is described at /docs."
        return shaped_error(request, 404, "not_found", message)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{method} is not allowed on {path}; it takes {allowed}."
        return shaped_error(request, 405, "method_not_allowed", message, Allow=allowed)
    return shaped_error(request, exc.status_code, "http_error", str(exc.detail), **(exc.headers or {}))


async def _invalid_parameters(request: Request, exc: RequestValidationError) -> Response:
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
    record = getattr(request.state, "journal_record", None)
    if isinstance(record, Record) and record.outcome is None:
        record.finish(500, Outcome.ERROR_STATUS)
    message = (
        f"mock-llm-sse failed unexpectedly while answering {request.method} {request.url.path} "
        f"({type(exc).__name__}); the server's log has the traceback. This is a bug: please report it."
    )
    return shaped_error(request, 500, "internal_error", message)
