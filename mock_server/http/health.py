"""`GET /_mock/health`, the ready check, and the instance headers the control API's answers carry.

`MockApp` answers it itself, as it answers a model request, without FastAPI: it is what Docker and
test harnesses poll while a server starts, and FastAPI's part of the app is built on first use. The
control API declares it too (`control.py`), so the OpenAPI schema lists it.
"""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from mock_server.http.state import state_of
from mock_server.journal.journal import Journal
from mock_server.settings import VERSION

PATH = "/_mock/health"


def instance_headers(journal: Journal) -> dict[str, str]:
    """`X-Mock-Instance` and `X-Mock-Started-At`: which start of the server answered."""
    return {"X-Mock-Instance": journal.instance, "X-Mock-Started-At": f"{journal.started_at:.3f}"}


async def health(request: Request) -> JSONResponse:
    state = state_of(request)
    journal = state.journal
    settings = state.settings
    body = {
        "status": "ok",
        "version": VERSION,
        "scenarios": len(state.catalog),
        "instance": journal.instance,
        "started_at": journal.started_at,
        # Which process answered: workers (`serve --workers`) share a port, and a test tells them apart.
        "worker": settings.worker,
        "workers": settings.workers,
        "pid": os.getpid(),
    }
    return JSONResponse(body, headers=instance_headers(journal))


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    """The ready check as an ASGI app (a HEAD gets the head alone: uvicorn leaves the body out)."""
    await (await health(Request(scope, receive)))(scope, receive, send)
