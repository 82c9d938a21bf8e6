"""`create_app(settings)`: a fresh, isolated app; no state lives outside the returned object."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from mock_server import __version__, anthropic_api, completions_api, control, openai_api, playground
from mock_server.catalog import Catalog, bundled_scenarios_dir, load_paths
from mock_server.error_handlers import install_error_handlers
from mock_server.journal import Journal
from mock_server.settings import Settings
from mock_server.state import MockState

EXPOSED_HEADERS = ["X-Mock-Scenario", "X-Mock-Request-Id", "Retry-After"]


def load_catalog(settings: Settings) -> Catalog:
    """The scenarios `settings` names; raises ScenarioError listing every problem in every file."""
    paths = [bundled_scenarios_dir()] if settings.bundled_scenarios else []
    return Catalog(load_paths([*paths, *settings.scenario_dirs]), default=settings.default_scenario)


def cors_options(settings: Settings) -> dict[str, Any]:
    """Starlette CORSMiddleware's options for `settings`: any origin (echoed, so credentials work)
    unless `cors_origins` names some."""
    origins = list(settings.cors_origins)
    return {
        "allow_origins": [] if "*" in origins else origins,
        "allow_origin_regex": ".*" if "*" in origins else None,
        "allow_credentials": True,
        "allow_methods": ["*"],
        "allow_headers": ["*"],
        "expose_headers": EXPOSED_HEADERS,
    }


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
        journal=Journal(settings.journal_size, settings.wall_clock),
    )
    app.add_middleware(CORSMiddleware, **cors_options(settings))
    app.include_router(completions_api.router)
    app.include_router(openai_api.router)
    app.include_router(anthropic_api.router)
    app.include_router(control.router)
    app.include_router(playground.router)
    install_error_handlers(app)
    return app
