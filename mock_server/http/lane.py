"""A short path for the streaming endpoints: from uvicorn straight to their handlers.

FastAPI serves everything (routing, the OpenAPI schema, the control API, the playground), but a
request it handles passes some fifteen ASGI layers, and they stay suspended for as long as the
response lasts: for a stream, its whole life. Under load that is CPU per request and, above all,
objects the garbage collector walks on every pass, pausing every stream. `StreamingLane` sends the
model endpoints to the very same handler functions with only the access guard and CORS in between;
their routes stay registered in FastAPI for the OpenAPI schema, and every other request goes to
FastAPI as before. `HEAD` on a streaming GET route goes to its GET handler, which answers the head.
Errors no handler answers get the answers FastAPI's handlers give (`error_handlers`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mock_server.http import anthropic_api, completions_api, openai_api
from mock_server.http import errors as error_handlers
from mock_server.http.access import AccessGuard, cors_options
from mock_server.settings import Settings

Handler = Callable[[Request], Awaitable[Response]]

STREAMING_HANDLERS: tuple[Handler, ...] = (
    completions_api.completions_get,
    completions_api.completions_post,
    openai_api.chat_completions,
    openai_api.completions,
    openai_api.responses,
    anthropic_api.messages,
)


class StreamingLane:
    """ASGI app: the streaming endpoints directly, everything else through `app`."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        # Paths and methods as the routers declare them (create_app includes them without a prefix).
        routers: tuple[APIRouter, ...] = (completions_api.router, openai_api.router, anthropic_api.router)
        self.routes: dict[tuple[str, str], Handler] = {
            (route.path, method): route.endpoint
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute) and route.endpoint in STREAMING_HANDLERS
            for method in route.methods or ()
        }
        self.routes.update(
            {(path, "HEAD"): handler for (path, method), handler in self.routes.items() if method == "GET"}
        )
        self._guarded = AccessGuard(CORSMiddleware(self._handle, **cors_options(settings)), settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["path"], scope["method"]) in self.routes:
            scope["app"] = self.app  # what `request.app` reads, as FastAPI would have set it
            await self._guarded(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes[(scope["path"], scope["method"])]
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except ClientDisconnect:
            return  # gone before its body arrived: nobody is there to answer
        except Exception as exc:
            # FastAPI's handler for a bug, as FastAPI would apply it; re-raised so the log has the traceback.
            await (await error_handlers.unexpected(request, exc))(scope, receive, send)
            raise
        await response(scope, receive, send)
