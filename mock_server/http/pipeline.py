"""The request path every model endpoint shares: read the request, select and compile a scenario,
render, play, record. A user's mistake is answered in the endpoint's own error shape; the journal
records every request either way."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from mock_server.conversations.thread import store_response, thread_of
from mock_server.counters import Plan
from mock_server.dialects import Dialect, StreamInfo
from mock_server.errors import (
    BodyTooLargeError,
    MockLLMError,
    NoRecordingError,
    PreviousResponseNotFoundError,
    RequestBodyError,
    UpstreamError,
)
from mock_server.http.auth import api_key_of, authorize
from mock_server.http.errors import answer_error, unexpected
from mock_server.http.model_request import ItemAnswer, ModelRequest
from mock_server.http.prompt import json_object
from mock_server.http.quotas import Admission, OverQuotaError, client_of, limits_of
from mock_server.http.request_body import Body, read_body
from mock_server.http.routes import ModelRoute
from mock_server.http.state import MockState, query_of, state_of
from mock_server.journal.journal import Entry
from mock_server.journal.trail import calls_of, trail_of
from mock_server.scenarios import steps
from mock_server.scenarios.conversation import Conversation
from mock_server.scenarios.model import Scenario
from mock_server.scenarios.steps import Ending
from mock_server.timeline import tokens
from mock_server.timeline.compile import FaultCursor, RequestContext, Timeline
from mock_server.timeline.overrides import overrides_of
from mock_server.upstream.forwarding import forwarded
from mock_server.upstream.live import LiveActions
from mock_server.upstream.recorder import Capture
from mock_server.wire import rendering
from mock_server.wire.actions import Action, Drop, Hang, Reset, Wait, Write, schedule_of
from mock_server.wire.frames import event_number, to_json
from mock_server.wire.framing import Framing
from mock_server.wire.item_body import render_items
from mock_server.wire.outcome import Outcome, PlayResult
from mock_server.wire.transport import StreamResponse


async def answer(scope: Scope, receive: Receive, send: Send, route: ModelRoute) -> None:
    """The ASGI side of `respond`: a bug is answered as FastAPI's handler answers it, then re-raised
    so that the log has the traceback."""
    request = Request(scope, receive, send)
    try:
        response = await respond(request, route)
    except ClientDisconnect:
        return  # gone before its body arrived: nobody is there to answer
    except Exception as exc:
        await (await unexpected(request, exc))(scope, receive, send)
        raise
    await response(scope, receive, send)


async def respond(request: Request, route: ModelRoute) -> Response:
    """Answer a model request on `route`: a stream when it asks for one, else the whole response."""
    state = state_of(request)
    query = query_of(request)
    raw: bytes | None = None
    body: Body | None = None
    if route.reads_body:
        try:
            raw = await read_body(request, state.settings.max_body_bytes)
        except BodyTooLargeError as exc:
            return _refuse(route.dialect, exc, await state.open_entry(request, None))
        body = Body.read(raw)
    entry = state.new_entry(request, raw, body)  # kept with the request's counters, in one write (`_prepare`)
    try:
        if route.check_query is not None:
            route.check_query(query)
        authorize(
            state.settings.require_auth,
            request.headers,
            query,
            api_key_header=route.api_key_header,
            query_param=not route.reads_body,  # EventSource cannot send headers
            google_key=route.google_api_key,
            aws_signature=route.aws_signature,
        )
        if route.forwarded:
            asked = route.read(_forwarded_body(body), request.path_params)
        else:
            asked = route.read(json_object(body) if body is not None else query, request.path_params)
        await tokens.ready(asked.prompt.model)  # usage and pacing count tokens; built in the background
        prepared = await _prepare(request, state, entry, route, asked)
    except MockLLMError as exc:
        await state.journal.keep(entry)
        return _refuse(route.dialect, exc, entry)
    except OverQuotaError as exc:
        return _over_quota(route.dialect, exc, entry)
    if prepared.timeline.head_cut is not None:
        return _cut_before_head(prepared, entry)
    if prepared.timeline.live:
        return await _proxy(request, state, entry, route, prepared, asked, raw)
    if prepared.timeline.from_upstream:
        return _replay(state, entry, route.dialect, prepared)
    if prepared.timeline.status != 200:
        return _scripted_error(route.dialect, prepared, entry)
    if asked.answer is not None:
        return await _itemized(entry, route.dialect, prepared, asked.answer)
    if asked.stream:
        return _stream(state, entry, route.dialect, prepared, route.framing_for(query))
    return _whole(entry, route.dialect, prepared)


class _Prepared:
    """A request's compiled timeline, what its dialect puts in every event, the event it resumes
    after, and the headers every answer to it carries."""

    __slots__ = ("_describe", "_info", "head_wait", "mock_headers", "resume_after", "seed", "timeline")

    def __init__(
        self,
        timeline: Timeline,
        info: StreamInfo | None,
        describe: Callable[[], StreamInfo],
        resume_after: int | None,
        mock_headers: list[tuple[str, str]],
        seed: int = 0,
    ) -> None:
        self.timeline = timeline
        self._info = info
        self._describe = describe
        """How `info` is made when it was not given."""
        self.resume_after = resume_after
        self.mock_headers = mock_headers
        self.seed = seed
        """The seed the scenario or the request's override gives, for answers made from the request."""
        waits = (step.ms for step in timeline.head if isinstance(step, steps.Stall) and step.ms is not None)
        self.head_wait = Wait(sum(waits) / 1000) if timeline.head else None
        """How long the status line waits (`stall@head:ms`), when it does."""

    @property
    def info(self) -> StreamInfo:
        """What the dialect puts in every event; when not given, made when first asked for: an
        upstream's stream asks only for an event a fault writes into it."""
        if self._info is None:
            self._info = self._describe()
        return self._info

    def raw_headers(self, *fields: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        """`fields`, then ours and the scenario's, as ASGI wants them."""
        ours = ((name.lower().encode(), value.encode()) for name, value in (*self.mock_headers, *self.timeline.headers))
        return [*fields, *ours]

    def after_head_wait(self, actions: tuple[Action, ...]) -> tuple[Action, ...]:
        return (self.head_wait, *actions) if self.head_wait is not None else actions


async def _prepare(
    request: Request, state: MockState, entry: Entry, route: ModelRoute, asked: ModelRequest
) -> _Prepared:
    """Select and compile the scenario for a request."""
    query = query_of(request)
    raw_headers = request.scope["headers"]
    overrides = overrides_of(query, request.headers, raw_headers)
    own = _own_headers(raw_headers)
    prompt = asked.prompt
    named = own.get(b"x-mock-scenario") or query.get("scenario") or asked.scenario
    conversation_key = own.get(b"x-mock-conversation") or asked.conversation_key
    thread = await thread_of(state.responses, asked.conversation, conversation_key, asked.previous_response_id)
    scenario = _choose(state, request, named, asked, thread.conversation)
    if thread.missing is not None and not (scenario.proxy or scenario.recording):
        raise PreviousResponseNotFoundError(thread.missing)
    dialect = route.dialect
    entry.note_selection(
        prompt=prompt.text,
        scenario=scenario.name,
        dialect=dialect.name,
        thresholds=scenario.thresholds,
        endpoint=route.path,
    )
    entry.note_conversation(thread.key, trail_of(thread.conversation))
    carried = (*scenario.faults, *overrides.faults) if overrides.faults else scenario.faults
    if carried:
        entry.note_faults(fault.kind.value for fault in carried)
    last_event_id = own.get(b"last-event-id")
    resumed = bool((last_event_id or "").strip())
    plan = Plan()  # what the request counts, applied with its record in one write: all, or none when refused
    admitted = _admit(request, state, entry, route, scenario, prompt.model, plan)
    replies = thread.count(plan, state.sequences, scenario, resumed=resumed)
    faults = state.count_faults(plan, scenario.name, carried, overrides.faults) if carried else None
    results = await state.begin(entry, plan)
    admission = admitted(results) if admitted is not None else None  # raises OverQuotaError when refused
    count = results[replies] if replies is not None else 1
    selection, fault_counts = results[faults] if faults is not None else (1, ())
    context = RequestContext(
        prompt=prompt.text,
        model=prompt.model,
        resumed=resumed,
        selection=selection,
        fault_counts=fault_counts,
        close_events=route.close_events,
        items=asked.answer.items if asked.answer is not None else None,
        reply=scenario.reply_index(count),
        output=asked.output,
        conversation=thread.conversation,
    )
    seed = overrides.seed if overrides.seed is not None else scenario.seed
    conversation = thread.conversation
    created = int(state.settings.wall_clock()) if dialect.dated else 0

    def stream_key() -> str:
        # The one hash of the prompt per request: the stream's ids derive from it, and the timeline cache
        # keeps it instead of the prompt. A conversation's place goes in too (not for a lone prompt, whose
        # ids stay as they were), so that each stored response of a conversation has an id of its own;
        # and the JSON a request asks for, which makes another answer.
        hashed = f"{scenario.name}\0{prompt.text}\0{prompt.model}\0{seed}"
        place = (context.reply, thread.key, asked.previous_response_id, conversation.turn)
        if place != (0, None, None, 1):
            hashed += f"\0{place!r}"
        if asked.output is not None:
            hashed += f"\0{asked.output.key}"
        if scenario.tool_mode == "auto" or conversation.tool_results:  # a reply may quote the results
            hashed += f"\0{conversation.offer!r}\0{conversation.tool_results!r}"
        return hashlib.sha256(hashed.encode()).hexdigest()

    def describe(key: str) -> StreamInfo:
        return StreamInfo(
            key=key,
            created=created,
            model=prompt.model or timeline.scenario,
            usage=timeline.usage,
            include_usage=asked.include_usage,
            reasoning=asked.reasoning,
            previous_response_id=asked.previous_response_id,
            store=asked.store,
        )

    info: StreamInfo | None = None
    if scenario.proxy:
        # An upstream's timeline is the same whatever the prompt (its faults, its head): it is cached
        # without the prompt's hash, which is made only if a fault writes an event of ours.
        timeline = state.caches.timelines.compile(scenario, overrides, context, UPSTREAM_STREAM_KEY)
    else:
        key = stream_key()
        timeline = state.caches.timelines.compile(scenario, overrides, context, key)
        info = describe(key)
    entry.note_tool_calls(calls_of(timeline.tool_calls))
    if asked.store:
        info = info or describe(stream_key())
        await store_response(
            state.responses, state.caches.completed, dialect, info, timeline, thread, scenario.name, count
        )
    request_id = str(entry.id)
    mock_headers = [
        ("X-Mock-Scenario", timeline.scenario),
        ("X-Mock-Request-Id", request_id),
        (dialect.request_id_header, request_id),
        *dialect.response_headers(request_id),
    ]
    if scenario.replies:
        mock_headers.append(("X-Mock-Reply", str(context.reply + 1)))
    if admission is not None:
        quotas = await admission.count_tokens(timeline.usage.total_tokens)
        if not timeline.from_upstream:  # an upstream's response (or a recording) carries its own
            mock_headers += dialect.quota_headers(quotas)
    return _Prepared(timeline, info, lambda: describe(stream_key()), event_number(last_event_id), mock_headers, seed)


UPSTREAM_STREAM_KEY = "upstream"
"""What stands for the prompt's hash where an upstream's timeline is cached (`_prepare`)."""
_OWN_HEADERS = (b"x-mock-scenario", b"x-mock-conversation", b"last-event-id")
"""The request headers `_prepare` reads."""


def _own_headers(raw: list[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The first value of each of `_OWN_HEADERS` the request has, found in one pass over its raw
    headers (lower-case names, as ASGI has them): Starlette's `Headers.get` scans them all again for
    each name, and most requests have none of these."""
    found: dict[bytes, str] = {}
    for name, value in raw:
        if name in _OWN_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _admit(
    request: Request,
    state: MockState,
    entry: Entry,
    route: ModelRoute,
    scenario: Scenario,
    model: str | None,
    plan: Plan,
) -> Callable[[list[Any]], Admission] | None:
    """Add to `plan` counting a request against the server's rate limits and the scenario's, for the
    key it carries (else its address), and journal whom they counted; returns what reads the
    Admission from the plan's results (it raises OverQuotaError when a limit had nothing left), None
    when no limit applies."""
    own = scenario.limits
    limits = (
        limits_of(own.rpm, own.tpm, own.rpd, lambda name: f"`limits.{name}` of scenario {scenario.name!r}")
        if own
        else ()
    )
    if not limits and not state.quotas.server:
        return None
    key = api_key_of(
        request.headers,
        query_of(request),
        api_key_header=route.api_key_header,
        query_param=not route.reads_body,
        google_key=route.google_api_key,
    )
    address = request.client.host if request.client is not None else None
    entry.note_rate_limit(state.journal.client_label(key, address))
    return state.quotas.count(plan, client_of(key, address), scenario.name, limits, model or scenario.name)


def _forwarded_body(body: Body | None) -> dict[str, Any]:
    """A forwarded request's body as JSON, when it is a JSON object ({} otherwise: it is sent on as it is)."""
    try:
        return json_object(body or Body(b""))
    except RequestBodyError:
        return {}


PROXIED = Scenario(name="upstream", description="Forwarded to the upstream (--upstream).", proxy=True)
"""What answers a request that goes to the upstream because no scenario does."""


def _choose(
    state: MockState, request: Request, named: str | None, asked: ModelRequest, conversation: Conversation
) -> Scenario:
    """The scenario a request names or matches; failing that, the upstream when there is one, an error
    when only recordings may answer (`--record-mode none`), else the default."""
    settings = state.settings
    replay_only = settings.record_mode == "none" and (settings.record_dir is not None or state.upstream is not None)
    if state.upstream is not None and not replay_only and (settings.upstream_only or settings.record_mode == "all"):
        return PROXIED
    catalog = state.catalog
    path, prompt = request.scope["path"], asked.prompt
    if "?" in path or "#" in path or "\\" in path:  # request.url escapes them; built only then (it costs 3 us)
        path = request.url.path
    found = catalog.find(
        named=named,
        model=prompt.model,
        prompt=prompt.text,
        headers=request.headers,
        path=path,
        conversation=conversation,
    )
    if found is not None:
        return found
    if replay_only:
        model = f" model={prompt.model!r}" if prompt.model else ""
        asked_for = f"{request.method} {path}{model} prompt={prompt.text[:80]!r}"
        raise NoRecordingError(asked_for, [e.scenario.name for e in catalog.entries() if e.scenario.recording])
    if state.upstream is not None:
        return PROXIED
    return catalog.get(catalog.default)


async def _proxy(
    request: Request,
    state: MockState,
    entry: Entry,
    route: ModelRoute,
    prepared: _Prepared,
    asked: ModelRequest,
    body: bytes | None,
) -> Response:
    """The upstream's response, passed on as it arrives, with the request's faults between its events;
    recorded when a recorder is on and the upstream's body arrives whole."""
    upstream = state.upstream
    assert upstream is not None  # only a server with an upstream compiles live timelines
    scope = request.scope
    path = scope["path"]  # not request.url: building a URL to read its path back costs 3 us
    sent = forwarded(scope["method"], path, scope.get("raw_path"), scope["query_string"], scope["headers"], body or b"")
    started = time.perf_counter()
    try:
        response = await upstream.open(sent)
    except UpstreamError as exc:
        entry.note_upstream(None, round((time.perf_counter() - started) * 1000, 3))
        return _refuse(route.dialect, exc, entry)
    entry.note_upstream(response.status, round((time.perf_counter() - started) * 1000, 3))
    timeline = prepared.timeline
    capture = None
    if state.recorder is not None:
        capture = Capture(
            method=request.method,
            url=upstream.base_url + path,
            path=path,
            model=asked.prompt.model,
            prompt=asked.prompt.text,
            body=sent.body,
            status=response.status,
            headers=response.headers,
            content_type=response.content_type,
        )
    live = LiveActions(
        response,
        FaultCursor(timeline.live_faults, close_events=route.close_events),
        # The faults' own events take the dialect's framing (Google's bare error), the upstream's pass as they came.
        rendering.LiveRenderer(timeline, lambda: route.dialect.stream(prepared.info), route.dialect.framing),
        capture,
        end_marker=timeline.end_marker,
    )
    retry_after = response.header(b"retry-after")
    entry.note_headers((("retry-after", retry_after),) if retry_after is not None else ())
    entry.note_stream(ids=False, retry_ms=None, ending=timeline.ending)
    played = entry.on_play_end(response.status)
    recorder = state.recorder

    def on_end(result: PlayResult) -> None:
        played(result)
        if recorder is not None and capture is not None:
            _keep(asyncio.ensure_future(recorder.save(capture)))

    ours = [(b"x-mock-scenario", timeline.scenario.encode()), (b"x-mock-request-id", b"%d" % entry.id)]
    return StreamResponse(
        prepared.after_head_wait(()),
        status=response.status,
        headers=[*response.raw_headers, *ours],
        on_end=on_end,
        defer_head=prepared.head_wait is not None,
        live=live,
    )


_SAVING: set[asyncio.Future[object]] = set()
"""Recordings being written: held until done, so none is collected half-way."""


def _keep(task: asyncio.Future[object]) -> None:
    _SAVING.add(task)
    task.add_done_callback(_SAVING.discard)


def _stream(state: MockState, entry: Entry, dialect: Dialect, prepared: _Prepared, framing: Framing) -> Response:
    """The streaming response: render the timeline (or take it from the cache) and play it."""
    timeline = prepared.timeline
    ids = timeline.ids and framing.sse
    resume_after = prepared.resume_after if ids else None
    info = prepared.info
    stream = state.caches.streams.stream(
        timeline, lambda: dialect.stream(info), resume_after, key=(dialect.name, info), framing=framing
    )
    if resume_after is not None and stream.nothing_left:
        # The client has every event: 204 is what tells EventSource to stop reconnecting.
        entry.finish(204, Outcome.COMPLETED)
        return Response(status_code=204, headers=dict(prepared.mock_headers))
    entry.note_stream(ids=ids, retry_ms=timeline.retry_ms if framing.sse else None, ending=timeline.ending)
    actions = prepared.after_head_wait(stream.actions)
    entry.note_schedule(stream.schedule if actions is stream.actions else schedule_of(actions))
    return StreamResponse(
        actions,
        headers=prepared.raw_headers(
            (b"content-type", (timeline.content_type or framing.content_type).encode()),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ),
        keepalive_s=timeline.keepalive_ms / 1000 if timeline.keepalive_ms and framing.sse else None,
        on_end=entry.on_play_end(200),
        defer_head=prepared.head_wait is not None,
    )


def _replay(state: MockState, entry: Entry, dialect: Dialect, prepared: _Prepared) -> Response:
    """A recorded response: the upstream's status, headers and events, at their recorded moments,
    with the request's faults among them (streamed or not, as it was recorded)."""
    timeline = prepared.timeline
    info = prepared.info
    stream = state.caches.streams.stream(
        timeline, lambda: dialect.stream(info), None, key=(dialect.name, info), framing=dialect.framing
    )
    entry.note_headers(timeline.headers)
    entry.note_stream(ids=False, retry_ms=timeline.retry_ms, ending=timeline.ending)
    actions = prepared.after_head_wait(stream.actions)
    entry.note_schedule(stream.schedule if actions is stream.actions else schedule_of(actions))
    return StreamResponse(
        actions,
        status=timeline.status,
        headers=prepared.raw_headers(
            (b"content-type", (timeline.content_type or dialect.framing.content_type).encode()),
            (b"cache-control", b"no-cache"),
        ),
        on_end=entry.on_play_end(timeline.status),
        defer_head=prepared.head_wait is not None,
    )


def _whole(entry: Entry, dialect: Dialect, prepared: _Prepared) -> Response:
    """The whole (non-streaming) response: one JSON body after the timeline's waits, or the
    connection cut where the timeline cuts it."""
    timeline = prepared.timeline
    whole = rendering.render_whole(timeline, lambda: dialect.whole_body(prepared.info, timeline.steps))
    extra: tuple[tuple[str, str], ...] = ()
    if whole.status >= 400:
        kind = next((step.type for step in timeline.steps if isinstance(step, steps.ErrorEvent)), None)
        extra = dialect.error_headers(whole.status, kind, timeline.headers)
    return _json_answer(entry, prepared, whole.status, len(whole.body), whole.actions, extra)


def _json_answer(
    entry: Entry,
    prepared: _Prepared,
    status: int,
    length: int,
    actions: tuple[Action, ...],
    extra: tuple[tuple[str, str], ...] = (),
) -> StreamResponse:
    """A JSON body of `length` bytes that `actions` play with `status` (and the `extra` headers), the
    head held back until its first byte (a cut before it leaves the client with no response)."""
    played = prepared.after_head_wait(actions)
    entry.note_schedule(schedule_of(played))
    fields = ((name.lower().encode(), value.encode()) for name, value in extra)
    return StreamResponse(
        played,
        status=status,
        headers=prepared.raw_headers(
            (b"content-type", b"application/json"), (b"content-length", str(length).encode()), *fields
        ),
        on_end=entry.on_play_end(status),
        defer_head=True,
    )


OFF_LOOP_WORK = 10_000_000
"""An answer made from the request that costs more (`ItemAnswer.work`: about 10 ms) is made in a
worker thread, so that other streams keep their timing meanwhile."""


async def _itemized(entry: Entry, dialect: Dialect, prepared: _Prepared, answer: ItemAnswer) -> Response:
    """An answer the route makes from the request (embeddings): one JSON body, played item by item
    with the timeline's waits and cuts between items."""
    timeline = prepared.timeline
    if answer.work > OFF_LOOP_WORK:
        body = await asyncio.to_thread(answer.body, prepared.seed)
    else:
        body = answer.body(prepared.seed)

    def error(event: steps.ErrorEvent) -> tuple[int, bytes]:
        status = dialect.error_status(event)
        return status, to_json(dialect.error_body(status, event)).encode()

    rendered = render_items(timeline, body, error)
    return _json_answer(entry, prepared, rendered.status, rendered.length, rendered.actions)


def _cut_before_head(prepared: _Prepared, entry: Entry) -> Response:
    """A connection that ends (or falls silent for good) before the status line: no response at all."""
    cuts: dict[Ending | None, Action] = {Ending.DROP: Drop(), Ending.RESET: Reset(), Ending.STALL: Hang()}
    cut = cuts[prepared.timeline.head_cut]
    actions = prepared.after_head_wait((cut,))
    entry.note_schedule(schedule_of(actions))
    return StreamResponse(actions, headers=[], on_end=entry.on_play_end(200), defer_head=True)


def _scripted_error(dialect: Dialect, prepared: _Prepared, entry: Entry) -> Response:
    """The HTTP error a scenario (or a `status` fault) answers with, before any stream byte (after the
    wait of a `stall@head:ms`, when there is one)."""
    timeline = prepared.timeline
    kind = timeline.error.type if timeline.error is not None else None
    errors_own = dialect.error_headers(timeline.status, kind, timeline.headers)
    body = dialect.error_body(timeline.status, timeline.error)
    if prepared.head_wait is None:
        return _error_status(entry, timeline.status, body, [*timeline.headers, *prepared.mock_headers, *errors_own])
    entry.note_headers(timeline.headers)
    data = to_json(body).encode()

    def on_end(result: PlayResult) -> None:
        entry.finish(
            timeline.status if result.head_sent else None, Outcome.ERROR_STATUS if result.head_sent else result.outcome
        )

    return StreamResponse(
        (prepared.head_wait, Write(data, 1)),
        status=timeline.status,
        headers=prepared.raw_headers(
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in errors_own),
        ),
        on_end=on_end,
        defer_head=True,
    )


def _error_status(entry: Entry, status: int, body: dict[str, Any], headers: list[tuple[str, str]]) -> Response:
    """An HTTP error answered at once, journaled with the headers the verdict judges by (`Retry-After`)."""
    entry.note_headers(headers)
    entry.finish(status, Outcome.ERROR_STATUS)
    return JSONResponse(body, status_code=status, headers=dict(headers))


def _over_quota(dialect: Dialect, over: OverQuotaError, entry: Entry) -> Response:
    """A request over a rate limit: the dialect's 429, with its `Retry-After` and rate-limit headers."""
    entry.note_rate_limited("server" if over.server_wide else "scenario")
    body, headers = dialect.over_quota(over.exceeded)
    ours = [("X-Mock-Scenario", over.scenario), *_id_headers(dialect, entry)]
    return _error_status(entry, 429, body, [*ours, *headers, *dialect.error_headers(429, None, headers)])


def _id_headers(dialect: Dialect, entry: Entry) -> list[tuple[str, str]]:
    """The request id in ours and the provider's headers, as every answer has them."""
    request_id = str(entry.id)
    ids = [("X-Mock-Request-Id", request_id), (dialect.request_id_header, request_id)]
    return [*ids, *dialect.response_headers(request_id)]


def _refuse(dialect: Dialect, exc: MockLLMError, entry: Entry) -> JSONResponse:
    """A user's mistake, answered in the dialect's own error shape, with the provider's request id
    headers as every answer has them, and journaled."""
    entry.finish(exc.status, Outcome.ERROR_STATUS)
    return answer_error(exc, dialect, headers=dict(_id_headers(dialect, entry)))
