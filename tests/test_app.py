"""The app a server runs: model requests go straight to their route, everything else through FastAPI,
and `create_app()` is that very app for anyone who serves it."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from mock_server.http.app import MockApp, create_app
from mock_server.http.routes import MODEL_ROUTES
from mock_server.http.server import MockServer, uvicorn_config
from mock_server.settings import Settings


def test_the_app_dispatches_every_model_route_and_head_on_its_get_routes() -> None:
    app = create_app()
    assert app.model_routes.keys() == {
        ("/completions", "GET"),
        ("/completions", "HEAD"),
        ("/completions", "POST"),
        ("/v1/chat/completions", "POST"),
        ("/v1/completions", "POST"),
        ("/v1/responses", "POST"),
        ("/v1/messages", "POST"),
        ("/api/chat", "POST"),
        ("/api/generate", "POST"),
        ("/v1beta/models/{model}:generateContent", "POST"),
        ("/v1beta/models/{model}:streamGenerateContent", "POST"),
        ("/v1/models/{model}:generateContent", "POST"),
        ("/v1/models/{model}:streamGenerateContent", "POST"),
        ("/v1/embeddings", "POST"),
        ("/openai/deployments/{deployment}/chat/completions", "POST"),
        ("/openai/deployments/{deployment}/completions", "POST"),
        ("/openai/deployments/{deployment}/embeddings", "POST"),
        ("/api/embed", "POST"),
        ("/v1beta/models/{model}:embedContent", "POST"),
        ("/v1beta/models/{model}:batchEmbedContents", "POST"),
        ("/v1/models/{model}:embedContent", "POST"),
        ("/v1/models/{model}:batchEmbedContents", "POST"),
        ("/model/{modelId:path}/converse-stream", "POST"),
        ("/model/{modelId:path}/converse", "POST"),
        ("/model/{modelId:path}/invoke-with-response-stream", "POST"),
        ("/model/{modelId:path}/invoke", "POST"),
    }
    assert app.model_routes.routes == MODEL_ROUTES


def test_model_routes_are_declared_once_and_listed_in_the_openapi_schema() -> None:
    paths = create_app().fastapi.openapi()["paths"]
    for route in MODEL_ROUTES:
        operation = paths[route.path.replace(":path}", "}")][route.method.lower()]  # the schema names no converter
        assert operation["summary"] == route.summary


class SeenByFastAPI:
    """A middleware inside FastAPI's stack that notes every request passing through it."""

    paths: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


def test_no_model_request_nor_the_ready_check_passes_through_fastapis_stack() -> None:
    app = create_app()
    app.fastapi.add_middleware(SeenByFastAPI)
    SeenByFastAPI.paths = []

    async def requests() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answers = [await client.get("/completions", params={"messages": "hi"})]
            for route in MODEL_ROUTES:
                if route.reads_body:
                    target = route.example_target("default", False)
                    answers.append(await client.post(target, json=route.example("default", False, "hi")))
            answers.append(await client.get("/_mock/health"))
            answers.append(await client.get("/_mock/scenarios"))
            answers.append(await client.get("/v1/models"))
            return [answer.status_code for answer in answers]

    assert set(asyncio.run(requests())) == {200}
    assert SeenByFastAPI.paths == ["GET /_mock/scenarios", "GET /v1/models"]


def test_every_way_of_serving_gets_the_app_create_app_returns() -> None:
    settings = Settings(port=0, access_log=False)
    app = create_app(settings)
    assert uvicorn_config(app, settings).app is app
    with MockServer(settings=settings) as server:
        assert isinstance(server.app, MockApp)
