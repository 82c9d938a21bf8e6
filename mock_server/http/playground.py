"""`GET /`: the playground, one self-contained page to pick a scenario and faults and watch a stream."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


@cache
def playground_html() -> str:
    """The page, read once from the package (it ships in the wheel as mock_server/http/static/)."""
    return (files("mock_server.http") / "static" / "playground.html").read_text(encoding="utf-8")


@router.get("/")
async def playground() -> HTMLResponse:
    return HTMLResponse(playground_html())
