"""The request path every model endpoint shares: pick and compile a scenario, render, play, record."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from mock_server.dialects import DIALECTS, DialectSpec, StreamInfo
from mock_server.errors import (
    BodyTooLargeError,
    MockLLMError,
    OverrideError,
    RequestBodyError,
    UnauthorizedError,
    UnknownScenarioError,
)
from mock_server.http.prompt import PromptInfo
from mock_server.http.request_body import journal_body
from mock_server.http.state import MockState
from mock_server.journal.journal import Record
from mock_server.timeline.compile import RequestContext, Timeline
from mock_server.timeline.overrides import parse_overrides
from mock_server.wire import rendering
from mock_server.wire.actions import Outcome, PlayResult
from mock_server.wire.transport import StreamResponse

OPENAI_CHAT = DIALECTS["openai-chat"]
MAX_EVENT_ID_DIGITS = 18
"""A longer Last-Event-ID is past any stream's end all the same (and would not convert)."""


def state_of(request: Request) -> MockState:
    state: MockState = request.app.state.mock
    return state


def open_record(request: Request, raw_body: bytes | None) -> Record:
    """Start the journal record of a model request (the body kept as JSON when it parses)."""
    record = state_of(request).journal.open(
        method=request.method,
        path=request.url.path,
        query=request.query_params.multi_items(),
        headers=request.headers.raw,
        body=journal_body(raw_body),
        body_bytes=len(raw_body or b""),
    )
    request.state.journal_record = record  # for the last-resort error handler (error_handlers.py)
    return record


def body_scenario(body: Mapping[str, Any]) -> str | None:
    """The body's `scenario` field, when it names one."""
    value = body.get("scenario")
    if value is not None and not isinstance(value, str):
        raise RequestBodyError("`scenario` must be a scenario name (a string).", param="scenario")
    return value


def prepare(
    request: Request, record: Record, dialect: DialectSpec, prompt: PromptInfo, *, named: str | None
) -> tuple[Timeline, int | None, str]:
    """Select and compile the scenario for a request: its timeline, the event to resume after, and
    the stream key that ids derive from."""
    state = state_of(request)
    headers = request.headers
    overrides = parse_overrides(request.query_params, headers)
    scenario = state.catalog.select(
        named=headers.get("x-mock-scenario") or named, model=prompt.model, prompt=prompt.text, headers=headers
    )
    record.prompt, record.scenario, record.dialect = prompt.text, scenario.name, dialect.name
    record.thresholds = scenario.thresholds
    resume_after = _last_event_id(headers.get("last-event-id"))
    context = RequestContext(
        prompt=prompt.text,
        model=prompt.model,
        resumed=bool(headers.get("last-event-id", "").strip()),
        selection=state.catalog.count_selection(scenario.name),
    )
    seed = overrides.seed if overrides.seed is not None else scenario.seed
    # The one hash of the prompt per request: the stream's ids derive from it, and the timeline cache
    # keeps it instead of the prompt.
    key = hashlib.sha256(f"{scenario.name}\0{prompt.text}\0{prompt.model}\0{seed}".encode()).hexdigest()
    timeline = state.timelines.compile(scenario, overrides, context, key)
    return timeline, resume_after, key


def stream(
    request: Request,
    record: Record,
    dialect: DialectSpec,
    prompt: PromptInfo,
    *,
    named: str | None,
    include_usage: bool = False,
) -> Response:
    """Select, compile, render and play: the streaming response for one request."""
    timeline, resume_after, key = prepare(request, record, dialect, prompt, named=named)
    mock_headers = [("X-Mock-Scenario", timeline.scenario), ("X-Mock-Request-Id", str(record.id))]
    if timeline.status != 200:
        return scripted_error(dialect, timeline, record, mock_headers)
    info = _stream_info(request, timeline, key, prompt, include_usage=include_usage)
    resume_after = resume_after if timeline.ids else None
    ops = state_of(request).renders.render(timeline, dialect, info, resume_after)
    if resume_after is not None and rendering.nothing_left(ops):
        # The client has every event: 204 is what tells EventSource to stop reconnecting.
        record.finish(204, Outcome.COMPLETED)
        return Response(status_code=204, headers=dict(mock_headers))
    response_headers = [
        (b"content-type", timeline.content_type.encode()),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        *((name.lower().encode(), value.encode()) for name, value in (*mock_headers, *timeline.headers)),
    ]
    keepalive = timeline.keepalive_ms / 1000 if timeline.keepalive_ms else None
    record.note_stream(timeline, ops)
    return StreamResponse(ops, headers=response_headers, keepalive_s=keepalive, on_end=record.on_play_end(200, ops))


def complete(
    request: Request, record: Record, dialect: DialectSpec, prompt: PromptInfo, *, named: str | None
) -> Response:
    """Select, compile and play the whole (non-streaming) response for one request: one JSON body
    after the timeline's waits, or the connection cut where the timeline cuts it."""
    timeline, _, key = prepare(request, record, dialect, prompt, named=named)
    mock_headers = [("X-Mock-Scenario", timeline.scenario), ("X-Mock-Request-Id", str(record.id))]
    if timeline.status != 200:
        return scripted_error(dialect, timeline, record, mock_headers)
    whole = rendering.render_whole(timeline, dialect, _stream_info(request, timeline, key, prompt))
    response_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(whole.body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in (*mock_headers, *timeline.headers)),
    ]

    def on_end(result: PlayResult) -> None:
        failed = whole.status != 200 and result.outcome is Outcome.COMPLETED
        record.finish(whole.status, Outcome.ERROR_STATUS if failed else result.outcome, result.events_sent)

    record.note_schedule(whole.ops)
    return StreamResponse(whole.ops, status=whole.status, headers=response_headers, on_end=on_end, defer_head=True)


def _stream_info(
    request: Request, timeline: Timeline, key: str, prompt: PromptInfo, *, include_usage: bool = False
) -> StreamInfo:
    return StreamInfo(
        key=key,
        created=int(state_of(request).settings.wall_clock()),
        model=prompt.model or timeline.scenario,
        usage=timeline.usage,
        include_usage=include_usage,
    )


def scripted_error(
    dialect: DialectSpec, timeline: Timeline, record: Record, mock_headers: list[tuple[str, str]]
) -> JSONResponse:
    """The HTTP error a scenario (or a `status` fault) answers with, before any stream byte."""
    record.finish(timeline.status, Outcome.ERROR_STATUS)
    record.note_headers(timeline.headers)
    return JSONResponse(
        dialect.error_body(timeline.status, timeline.error),
        status_code=timeline.status,
        headers=dict([*timeline.headers, *mock_headers]),
    )


def _last_event_id(value: str | None) -> int | None:
    """A resumable Last-Event-ID is the number of an event we sent; anything else starts afresh."""
    if value is None or not (value.strip().isascii() and value.strip().isdigit()):
        return None
    return int(value.strip()[:MAX_EVENT_ID_DIGITS])


def error_response(dialect: DialectSpec, exc: MockLLMError, record: Record | None = None) -> JSONResponse:
    """A user mistake, answered in the dialect's own error shape: its type for the status, our message."""
    status, code, param = 400, None, None
    if isinstance(exc, UnknownScenarioError):
        status, code, param = 404, "scenario_not_found", "scenario"
    elif isinstance(exc, UnauthorizedError):
        status, code = 401, "invalid_api_key"
    elif isinstance(exc, OverrideError):
        code = "invalid_override"
    elif isinstance(exc, BodyTooLargeError):
        status, code = 413, "request_too_large"
    elif isinstance(exc, RequestBodyError):
        param = exc.param
    headers = {}
    if record is not None:
        record.finish(status, Outcome.ERROR_STATUS)
        headers["X-Mock-Request-Id"] = str(record.id)
    return JSONResponse(dialect_error_body(dialect, status, str(exc), code=code, param=param), status, headers)


def dialect_error_body(
    dialect: DialectSpec, status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The dialect's error body for `status`, with our message, and OpenAI's `code` and `param` (Anthropic's
    shape has neither)."""
    body = dialect.error_body(status, None)
    details = body["error"]
    details["message"] = message
    details.update({name: value for name, value in (("code", code), ("param", param)) if name in details})
    return body
