"""A journal record's response, rendered again from its request: the raw frames on demand.

The server is deterministic (the same scenario, prompt, seed and overrides give the same bytes), so
the journal does not keep what it wrote; the dashboard asks for it when someone wants to look. The
record's request goes through the same request path as any model request, against a scratch copy of
the state: nothing is journaled, no counter, sequence, rate limit or stored response of the server
moves, and nothing is played. The scenario is pinned to the one the record was answered with, and
the clock reads the record's arrival (the `created` of its chunks).

What cannot come out the same is said in `notes`: a counted fault (`!times=`) or a `replies:`
sequence counts afresh, a rate limit starts whole, and secrets the journal masked are sent masked.
A request forwarded to an upstream is not sent again (it would reach the upstream).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from mock_server.conversations.responses import ResponseStore
from mock_server.errors import NotRenderableError
from mock_server.http import routes
from mock_server.http.pipeline import respond
from mock_server.http.scope import STATE_SCOPE_KEY
from mock_server.http.state import MockState
from mock_server.journal.journal import Journal, RequestRecord
from mock_server.journal.log import MemoryLog
from mock_server.scenarios.catalog import Catalog
from mock_server.wire.actions import Drop, Hang, Reset, Wait, Write
from mock_server.wire.transport import StreamResponse

_ROUTES = routes.RouteTable(routes.MODEL_ROUTES)
_SCRATCH_ID = 1
"""The id of the one record the scratch journal makes."""
_NOT_SENT_AGAIN = frozenset({"content-length", "x-mock-scenario", "transfer-encoding"})
NOTES = (
    "Rendered again from the journal's record of the request, not captured from the wire.",
    "A counted fault (`!times=`), a `replies:` sequence and rate limits count as on a fresh server.",
)


@dataclass(frozen=True, slots=True)
class Rendered:
    """What the server would answer to a record's request: its status and headers, and what it plays,
    in order: writes (bytes, with their moment in ms from when playing begins), waits, and the cut."""

    record: int
    status: int
    headers: list[tuple[str, str]]
    ops: list[dict[str, Any]] = field(default_factory=list)
    notes: tuple[str, ...] = NOTES

    def to_json(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "status": self.status,
            "headers": [list(pair) for pair in self.headers],
            "ops": self.ops,
            "notes": list(self.notes),
        }


async def rerender(state: MockState, record: RequestRecord) -> Rendered:
    """The record's response rendered again (see the module's docstring); raises NotRenderableError."""
    matched = _ROUTES.match(record.method, record.path)
    if matched is None or record.upstream_status is not None or record.scenario in (None, "upstream"):
        raise NotRenderableError(
            f"record {record.id} ({record.method} {record.path}) was not answered by a scenario of this server "
            "(forwarded to an upstream, or not a model request): there is nothing to render again"
        )
    route, path_params = matched
    scratch = _scratch(state, record)
    request = _request(record, scratch, path_params)
    response = await respond(request, route)
    rendered = _rendered(record.id, response)
    if record.status is not None and rendered.status != record.status:
        differs = (
            f"This rendering answered {rendered.status} where the record says {record.status}: the request depends "
            "on what the server held then (a stored response, a conversation's place, a rate limit, a counted fault)."
        )
        rendered = replace(rendered, notes=(*rendered.notes, differs))
    return rendered


def _scratch(state: MockState, record: RequestRecord) -> MockState:
    """A state that renders like `state` but keeps nothing: its own journal, counters and stores."""
    settings = replace(
        state.settings,
        wall_clock=lambda: record.received_at,
        require_auth=None,  # the journal may hold the key masked: rendering does not depend on it
        rpm=None,
        tpm=None,
        rpd=None,
        upstream=None,
        state="memory",  # the scratch state is this process's alone, whatever the server shares
    )
    catalog = Catalog(state.catalog.entries(), default=state.catalog.default)
    return MockState(
        settings=settings,
        catalog=catalog,
        journal=Journal(MemoryLog(1, wall_clock=settings.wall_clock), settings.wall_clock),
        caches=state.caches,  # caches of pure functions: sharing them changes nothing
        responses=ResponseStore(settings.responses_max_bytes),
    )


def _request(record: RequestRecord, scratch: MockState, path_params: dict[str, str]) -> Request:
    body = b"" if record.body is None else _body_bytes(record.body)
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in record.headers.items()
        if name not in _NOT_SENT_AGAIN
    ]
    headers.append((b"x-mock-scenario", (record.scenario or "").encode("latin-1")))
    if body:
        headers.append((b"content-length", str(len(body)).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": record.method,
        "scheme": "http",
        "path": record.path,
        "raw_path": record.path.encode(),
        "root_path": "",
        "query_string": urlencode(record.query).encode(),
        "headers": headers,
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "path_params": path_params,
        STATE_SCOPE_KEY: scratch,
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def _body_bytes(body: Any) -> bytes:
    """The body as the journal kept it, back to bytes: its text, or its JSON value re-encoded."""
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, ensure_ascii=False).encode()


def _rendered(record_id: int, response: Response) -> Rendered:
    headers = [
        _with_record_id(name.decode("latin-1"), value.decode("latin-1"), record_id)
        for name, value in response.raw_headers
    ]
    ops: list[dict[str, Any]] = []
    if not isinstance(response, StreamResponse):
        ops.append({"op": "write", "at_ms": 0.0, "data": bytes(response.body).decode("utf-8", "backslashreplace")})
        return Rendered(record_id, response.status_code, headers, ops)
    moment = 0.0
    for action in response.actions:
        if isinstance(action, Write):
            data = action.data.decode("utf-8", "backslashreplace")
            ops.append({"op": "write", "at_ms": round(moment, 3), "data": data, "events": action.events})
        elif isinstance(action, Wait):
            if action.stall:
                ops.append({"op": "stall", "at_ms": round(moment, 3), "ms": round(action.seconds * 1000, 3)})
            moment += action.seconds * 1000
        elif isinstance(action, Hang):
            ops.append({"op": "hang", "at_ms": round(moment, 3)})
        elif isinstance(action, Drop):
            ops.append({"op": "drop", "at_ms": round(moment, 3)})
        elif isinstance(action, Reset):
            ops.append({"op": "reset", "at_ms": round(moment, 3)})
    return Rendered(record_id, response.status_code, headers, ops)


def _with_record_id(name: str, value: str, record_id: int) -> tuple[str, str]:
    """A header as the record's response had it: the request id headers (ours and the provider's) name
    the record, not the scratch journal's only record."""
    is_request_id = name.lower().replace("-", "").endswith("requestid")
    return (name, str(record_id)) if is_request_id and value == str(_SCRATCH_ID) else (name, value)
