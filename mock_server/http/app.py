"""`create_app(settings)`: a fresh, isolated app; no state lives outside the returned object."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from mock_server import __version__
from mock_server.http import anthropic_api, completions_api, control, openai_api, playground
from mock_server.http.access import AccessGuard, CorsByPath
from mock_server.http.errors import install_error_handlers
from mock_server.http.state import MockState
from mock_server.journal.journal import Journal
from mock_server.scenarios.catalog import Catalog, bundled_scenarios_dir, load_paths
from mock_server.settings import Settings


def load_catalog(settings: Settings) -> Catalog:
    """The scenarios `settings` names; raises ScenarioError listing every problem in every file."""
    paths = [bundled_scenarios_dir()] if settings.bundled_scenarios else []
    return Catalog(load_paths([*paths, *settings.scenario_dirs]), default=settings.default_scenario)


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> FastAPI:
    """The ASGI app for `settings`; pass `catalog` to reuse scenarios already loaded."""
    settings = settings or Settings()
    catalog = catalog if catalog is not None else load_catalog(settings)
    app = FastAPI(
        title="mock-llm-sse",
        version=__version__,
        description="A mock LLM streaming server for testing clients.",
    )
    app.state.mock = MockState(
        settings=settings,
        catalog=catalog,
        journal=Journal(
            settings.journal_size,
            settings.wall_clock,
            max_bytes=settings.journal_max_bytes,
            mask_secrets=settings.journal_secrets == "mask",
        ),
    )
    app.add_middleware(CorsByPath, settings=settings)
    app.add_middleware(AccessGuard, settings=settings)  # added last: the outermost layer
    routers = (completions_api.router, openai_api.router, anthropic_api.router, control.router, playground.router)
    for router in (*routers, _head_twins(routers)):
        app.include_router(router)
    install_error_handlers(app)
    return app


def _head_twins(routers: tuple[APIRouter, ...]) -> APIRouter:
    """`HEAD` for every GET route: the same status and headers, no body (uvicorn leaves it out). The
    twins stay out of the OpenAPI schema, which would otherwise list every operation twice."""
    twins = APIRouter(include_in_schema=False)
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.methods == {"GET"}:
                twins.add_api_route(route.path, route.endpoint, methods=["HEAD"], name=f"{route.name}_head")
    return twins
