"""`GET /_mock/health`, the ready check, and the instance headers the control API's answers carry.

`MockApp` answers it itself, without FastAPI, Starlette's responses or the app's state: it is what
Docker and test harnesses poll while a server starts, and those are made on first use. The control
API declares it too (`control.py`), so the OpenAPI schema lists it, and answers the same bytes.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Protocol

from mock_server.settings import VERSION, Settings

if TYPE_CHECKING:
    from starlette.types import Send

PATH = "/_mock/health"


class Started(Protocol):
    """Which start of the server this is: the journal's log's (`journal.RecordLog`), or its journal's."""

    @property
    def instance(self) -> str: ...

    @property
    def started_at(self) -> float: ...


def instance_headers(started: Started) -> dict[str, str]:
    """`X-Mock-Instance` and `X-Mock-Started-At`: which start of the server answered."""
    return {"X-Mock-Instance": started.instance, "X-Mock-Started-At": f"{started.started_at:.3f}"}


def health_body(settings: Settings, scenarios: int, started: Started) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": VERSION,
        "scenarios": scenarios,
        "instance": started.instance,
        "started_at": started.started_at,
        # Which process answered: workers (`serve --workers`) share a port, and a test tells them apart.
        "worker": settings.worker,
        "workers": settings.workers,
        "pid": os.getpid(),
    }


async def answer(send: Send, settings: Settings, scenarios: int, started: Started) -> None:
    """The ready check sent as the control API's route answers it (`control.health`), byte for byte,
    without Starlette's responses, which a server answering its first poll has not loaded. A HEAD gets
    the head alone: uvicorn leaves the body out."""
    body = health_body(settings, scenarios, started)
    content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in instance_headers(started).items()
    ]
    headers += [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": content})
