"""The /_mock/ routes: health and the server's own view of its scenarios."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mock_server import __version__
from mock_server.state import MockState

router = APIRouter(prefix="/_mock", tags=["control"])


def _state(request: Request) -> MockState:
    state: MockState = request.app.state.mock
    return state


@router.get("/health", summary="Ready check for Docker and test harnesses")
async def health(request: Request) -> dict[str, Any]:
    return {"status": "ok", "version": __version__, "scenarios": len(_state(request).catalog)}


@router.get("/scenarios", summary="Every scenario the server knows")
async def list_scenarios(request: Request) -> list[dict[str, str]]:
    return [
        {"name": e.scenario.name, "description": e.scenario.description, "source": e.source}
        for e in _state(request).catalog.entries()
    ]


@router.get("/requests", summary="The request journal, oldest first")
async def list_requests(request: Request, since: int | None = None) -> list[dict[str, Any]]:
    return [record.to_json() for record in _state(request).journal.records(since)]
