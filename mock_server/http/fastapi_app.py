"""FastAPI's part of the app: the control API (/_mock/), the model listings (/v1/models, ...), the
playground, the dashboard, the OpenAPI schema and docs, with the model routes declared for the
schema (`MockApp` answers them before FastAPI would). `MockApp` builds it on the first request that needs it:
importing FastAPI and building its routes is a third of start-up, and no model request needs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from mock_server.errors import MockLLMError
from mock_server.http import bedrock, control, dashboard, errors, gemini, openapi, playground, routes, stored_responses
from mock_server.http.access import AccessGuard, CorsByPath
from mock_server.http.pipeline import respond
from mock_server.settings import VERSION, Settings

Handler = Callable[[Request], Awaitable[Response]]


def fastapi_app(settings: Settings) -> FastAPI:
    """FastAPI's part of the app for `settings`; its routes find the state through `state_of`."""
    app = FastAPI(title="mock-llm-sse", version=VERSION, description="A mock LLM streaming server for testing clients.")
    app.add_middleware(CorsByPath, settings=settings)
    app.add_middleware(AccessGuard, settings=settings)  # added last: the outermost layer
    routers = (_schema_router(_fastapi_endpoint), control.router, dashboard.router, playground.router)
    for router in (*routers, _head_twins(routers)):
        app.include_router(router)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Answer every error the routes leave to the app in the shape of the path's API."""
    # Starlette types every handler as taking any Exception; each of ours takes the one it handles.
    app.add_exception_handler(MockLLMError, errors.our_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, errors.http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, errors.invalid_parameters)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, errors.client_gone)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, errors.unexpected)


def _fastapi_endpoint(route: routes.ModelRoute) -> Handler:
    """FastAPI's endpoint for a model route, which `MockApp` answers before FastAPI sees the request;
    should FastAPI ever get one, it answers it the same way."""

    async def endpoint(request: Request) -> Response:
        return await respond(request, route)

    endpoint.__name__ = route.name
    return endpoint


def _head_twins(routers: tuple[APIRouter, ...]) -> APIRouter:
    """`HEAD` for every GET route: the same status and headers, no body (uvicorn leaves it out). The
    twins stay out of the OpenAPI schema, which would otherwise list every operation twice."""
    twins = APIRouter(include_in_schema=False)
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.methods == {"GET"}:
                twins.add_api_route(route.path, route.endpoint, methods=["HEAD"], name=f"{route.name}_head")
    return twins


def _schema_router(handler: Callable[[routes.ModelRoute], Handler]) -> APIRouter:
    """The model routes for FastAPI's OpenAPI schema (requests to them are dispatched before FastAPI),
    and GET /v1/models and /v1beta/models, which FastAPI serves."""
    router = APIRouter()
    for route in routes.MODEL_ROUTES:
        tags: list[str | Enum] = [route.dialect.name.split("-")[0]]  # openai, anthropic, ollama, gemini
        router.add_api_route(
            route.path,
            handler(route),
            methods=[route.method],
            name=route.name,
            summary=route.summary,
            openapi_extra=route.openapi,
            tags=tags,
        )
    router.add_api_route(
        "/v1/models", routes.models, methods=["GET"], summary="Every scenario, as a model", tags=["openai"]
    )
    router.add_api_route(
        stored_responses.PATH,
        stored_responses.get_response,
        methods=["GET"],
        summary="A stored Responses API response",
        tags=["openai"],
    )
    router.add_api_route(
        stored_responses.PATH,
        stored_responses.delete_response,
        methods=["DELETE"],
        summary="Forget a stored Responses API response",
        tags=["openai"],
    )
    router.add_api_route(
        "/api/tags", routes.ollama_tags, methods=["GET"], summary="Every scenario, as an Ollama model", tags=["ollama"]
    )
    router.add_api_route(
        "/api/show",
        routes.ollama_show,
        methods=["POST"],
        summary="A scenario, as a model's details",
        tags=["ollama"],
        openapi_extra=openapi.OLLAMA_SHOW,
    )
    router.add_api_route(
        "/v1beta/models", gemini.models, methods=["GET"], summary="Every scenario, as a Gemini model", tags=["gemini"]
    )
    router.add_api_route(
        "/foundation-models",
        bedrock.foundation_models,
        methods=["GET"],
        summary="Every scenario, as a Bedrock foundation model",
        tags=["bedrock"],
    )
    return router
