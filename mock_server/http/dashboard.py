"""`GET /_mock/ui`: the dashboard, one page that shows the journal and the verdict as they happen.

The page, its script and its style ship in the package (mock_server/http/static/): no build step,
nothing from a CDN. Its data comes from the control API and from `GET /_mock/ui/feed`, an SSE
stream of the journal's records (each new one, and each in flight again when it changes) and of the
verdict when it changes. The feed polls the state (`MockState.records`) rather than listening to
the journal, so it shows records wherever they were written; it ends when its client leaves, or
with an `end` event after `max_s` or when the server stops.

The page itself holds nothing and is served to anyone who may reach the control API; the feed, like
the journal, needs `Authorization: Bearer <admin token>` on a server started with `--admin-token`.
The page reads the feed with `fetch` (not EventSource, which cannot send headers), so the token
never goes into a URL, where logs and the browser's history would keep it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, fields
from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from mock_server.errors import RecordNotFoundError, RestartedError
from mock_server.http.control import _require_admin
from mock_server.http.rerender import rerender
from mock_server.http.state import MockState, state_of
from mock_server.journal.journal import RequestRecord
from mock_server.wire.tcp import Connection, connection_of

router = APIRouter(prefix="/_mock", tags=["dashboard"])

FEED_POLL_S = 0.25
FEED_BACKLOG = 300
"""How many of the newest records a feed starts with."""
FEED_MAX_S = 3600.0
FEED_KEEPALIVE_S = 15.0
FEED_PRUNE_S = 30.0
"""How often the feed reads the whole journal, to tell the page which old records were pushed out
(a clear or a reset shows at once: the newest record is gone)."""
VERDICT_EVERY_S = 1.0
"""The verdict is judged again at most this often (it reads the whole journal)."""
_ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
_FEED_FIELDS = tuple(
    f.name for f in fields(RequestRecord) if f.name not in ("body", "headers", "thresholds", "tools", "events_timing")
)
_LIST_HEADERS = ("x-mock-fault", "x-mock-scenario", "x-mock-seed", "last-event-id")
"""The request headers a record in the feed keeps: what says how the response was shaped."""


@cache
def _static(name: str) -> str:
    """A file of the page, read once from the package (mock_server/http/static/)."""
    return (files("mock_server.http") / "static" / name).read_text(encoding="utf-8")


@router.get("/ui", include_in_schema=False)
async def dashboard() -> HTMLResponse:
    return HTMLResponse(_static("dashboard.html"))


@router.get("/ui/feed", include_in_schema=False)  # a stream for as long as max_s: not for schema-driven clients
async def feed(
    request: Request,
    max_s: float = Query(FEED_MAX_S, gt=0, le=86_400, description="end the feed (an `end` event) after this long"),
) -> Response:
    _require_admin(request)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":
        return Response(headers=headers, media_type="text/event-stream")
    state = state_of(request)
    everything = await state.records()
    return StreamingResponse(
        _feed_events(request, state, everything, max_s),
        media_type="text/event-stream",
        headers=headers,
    )


@router.get("/ui/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    media_type = _ASSETS.get(name)
    if media_type is None:
        return Response(status_code=404)
    return Response(_static(name), media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/requests/{record_id}/frames", summary="A record's response rendered again: its raw frames and cut")
async def frames(record_id: int, request: Request) -> JSONResponse:
    _require_admin(request)
    state = state_of(request)
    try:
        found = [r for r in await state.records(max(record_id - 1, 0)) if r.id == record_id]
    except RestartedError:
        found = []
    if not found:
        raise RecordNotFoundError(f"The journal holds no record {record_id}: it was never made, or is gone.")
    return JSONResponse((await rerender(state, found[0])).to_json())


def feed_record(record: RequestRecord) -> dict[str, Any]:
    """A record as the feed sends it: what the list, the filters and the timeline need, without the
    body and headers (the journal's `GET /_mock/requests` has them)."""
    data = {name: getattr(record, name) for name in _FEED_FIELDS}  # not to_json: it copies the body too
    timing = record.events_timing
    data["events_timing"] = None if timing is None else asdict(timing)
    data["request_headers"] = {name: record.headers[name] for name in _LIST_HEADERS if name in record.headers}
    return data


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class _Feed:
    """What one feed has sent: the newest record id, the records in flight as last sent, the oldest
    record the journal held, and the verdict."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.last_id = 0
        self.in_flight: dict[int, dict[str, Any]] = {}
        self.oldest: int | None = None
        self.verdict: dict[str, Any] = {}
        self.verdict_stale = True
        self.verdict_due = 0.0

    def floor(self) -> int:
        """The `since` that reads the new records, those still in flight, and the newest one sent
        (gone from the read: the journal was cleared)."""
        return min([max(self.last_id - 1, 0), *(i - 1 for i in self.in_flight)])

    def cleared(self, records: list[RequestRecord]) -> bool:
        """Whether a read from `floor` misses the newest record sent: the journal no longer holds it."""
        return self.last_id > 0 and not any(record.id == self.last_id for record in records)

    def kept(self, everything: list[RequestRecord]) -> list[bytes]:
        """A `kept` event when the journal's oldest record is another (cleared, reset or pushed out):
        the page forgets the records below it (all of them for `null`)."""
        oldest = everything[0].id if everything else None
        if oldest == self.oldest:
            return []
        self.oldest = oldest
        return [_event("kept", {"oldest": oldest})]

    def records(self, records: list[RequestRecord]) -> list[bytes]:
        """A `record` event for each record that is new, or in flight and changed since it was sent."""
        events = []
        for record in records:
            is_new = record.id > self.last_id
            if not is_new and record.id not in self.in_flight:
                continue  # sent when it ended
            data = feed_record(record)
            if not is_new and self.in_flight[record.id] == data:
                continue
            self.last_id = max(self.last_id, record.id)
            if record.outcome is None:
                self.in_flight[record.id] = data
            else:
                self.in_flight.pop(record.id, None)
            events.append(_event("record", data))
        seen = {record.id for record in records}
        for gone in [i for i in self.in_flight if i not in seen]:
            self.in_flight.pop(gone)  # cleared from the journal (or pushed out) while in flight
        self.verdict_stale = self.verdict_stale or bool(events)
        return events

    async def judged(self, now: float) -> list[bytes]:
        """A `verdict` event when the records changed (or checks are pending) and the verdict with them,
        at most once every VERDICT_EVERY_S."""
        if now < self.verdict_due or not (self.verdict_stale or self.verdict.get("pending")):
            return []
        self.verdict_stale = False
        self.verdict_due = now + VERDICT_EVERY_S
        judged = (await self.state.verdict()).to_json()
        judged.pop("judged_at", None)
        if judged == self.verdict:
            return []
        self.verdict = judged
        return [_event("verdict", judged)]


async def _feed_events(
    request: Request, state: MockState, everything: list[RequestRecord], max_s: float
) -> AsyncIterator[bytes]:
    """The feed: the newest FEED_BACKLOG records, then every poll the records that are new or changed
    while in flight, the verdict when it changed, and what the journal no longer holds; ends when the
    client leaves, or after `max_s` with an `end` event."""
    stopping = _ServerStop(connection_of(request.scope))
    try:
        async for event in _feed_loop(request, state, everything, max_s, stopping.event):
            yield event
    finally:
        stopping.release()


class _ServerStop:
    """Ends a feed when the server shuts down: it stands on the connection where a stream would, so
    the protocol's shutdown (`http/protocol.py`) reaches it, instead of waiting out the grace time."""

    def __init__(self, connection: Connection | None) -> None:
        self.event = asyncio.Event()
        self._connection = connection
        if connection is not None:
            connection.stream = self

    def stop(self) -> None:
        self.event.set()

    def client_left(self) -> None:
        self.event.set()  # nobody is left to feed

    def release(self) -> None:
        if self._connection is not None and self._connection.stream is self:
            self._connection.stream = None


async def _feed_loop(
    request: Request, state: MockState, everything: list[RequestRecord], max_s: float, stopping: asyncio.Event
) -> AsyncIterator[bytes]:
    started = last_write = time.monotonic()
    journal = state.journal
    yield _event("hello", {"instance": journal.instance, "started_at": journal.started_at, "max_s": max_s})
    feed = _Feed(state)
    feed.last_id = everything[-FEED_BACKLOG - 1].id if len(everything) > FEED_BACKLOG else 0
    records = everything
    whole: list[RequestRecord] | None = everything  # the whole journal, on the rounds that read it
    pruned_at = started
    while True:
        now = time.monotonic()
        events = [*(feed.kept(whole) if whole is not None else []), *feed.records(records), *await feed.judged(now)]
        for event in events:
            yield event
        if events:
            last_write = now
        elif now - last_write >= FEED_KEEPALIVE_S:
            last_write = now
            yield b": keep-alive\n\n"
        if now - started >= max_s:
            yield _event("end", {"reason": f"the feed lasts {max_s:g} s at most (max_s); connect again to go on"})
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), FEED_POLL_S)
        if stopping.is_set():
            yield _event("end", {"reason": "the server is stopping"})
            return
        if await request.is_disconnected():
            return
        floor = feed.floor()
        try:
            whole = None
            records = await state.records(floor)
            if feed.cleared(records) or time.monotonic() - pruned_at >= FEED_PRUNE_S:
                # The whole journal, to tell what it no longer holds; the same snapshot gives the new
                # records, so none is sent and then forgotten.
                pruned_at = time.monotonic()
                whole = await state.records()
                records = [record for record in whole if record.id > floor]
        except RestartedError:
            yield _event("end", {"reason": "the server's journal started afresh; connect again"})
            return
