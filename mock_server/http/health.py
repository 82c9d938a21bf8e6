"""`GET /_mock/health`, the ready check, and the instance headers the control API's answers carry.

`MockApp` answers it itself, as it answers a model request, without FastAPI: it is what Docker and
test harnesses poll while a server starts, and FastAPI's part of the app is built on first use. The
control API declares it too (`control.py`), so the OpenAPI schema lists it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from mock_server.http.state import STATE_SCOPE_KEY
from mock_server.settings import VERSION

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from mock_server.http.state import MockState
    from mock_server.journal.journal import Journal

PATH = "/_mock/health"


def instance_headers(journal: Journal) -> dict[str, str]:
    """`X-Mock-Instance` and `X-Mock-Started-At`: which start of the server answered."""
    return {"X-Mock-Instance": journal.instance, "X-Mock-Started-At": f"{journal.started_at:.3f}"}


def health_body(state: MockState) -> dict[str, Any]:
    journal = state.journal
    settings = state.settings
    return {
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


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    """The ready check as an ASGI app: the control API's route's answer (`control.health`), byte for
    byte, without Starlette's requests and responses, which a server answering its first poll has not
    loaded. A HEAD gets the head alone: uvicorn leaves the body out."""
    state: MockState = scope[STATE_SCOPE_KEY]
    body = json.dumps(health_body(state), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in instance_headers(state.journal).items()
    ]
    headers += [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
