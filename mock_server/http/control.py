"""The /_mock/ routes: health, scenarios (also added and removed at run time), the journal, reset,
and the verdict on the clients' behaviour.

Reads are open but the journal's; with `--admin-token` every write, and reading the journal (which
holds what clients sent), needs `Authorization: Bearer <token>`. Health and journal answers carry
the server's `instance` (new at every start) and `started_at`, so a look across a restart is told
apart. A mistake raises the `MockLLMError` that says what to fix; `errors.py` answers it with its
status in the control API's shape, `{"error": {"type", "message", ...}}`.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mock_server.errors import (
    AdminTokenError,
    NotRuntimeScenarioError,
    Problem,
    QueryParameterError,
    RequestBodyError,
    RestartedError,
    ScenarioError,
)
from mock_server.http import openapi
from mock_server.http.errors import answer_error, error_answer
from mock_server.http.health import health_body, instance_headers
from mock_server.http.request_body import read_body
from mock_server.http.state import state_of
from mock_server.journal.journal import Journal, Since
from mock_server.journal.metrics import PROMETHEUS_TEXT, Now, exposition
from mock_server.scenarios.catalog import RUNTIME_SOURCE, Entry, load_runtime_scenario
from mock_server.scenarios.loading import Document, parse_document
from mock_server.scenarios.model import Scenario

router = APIRouter(prefix="/_mock", tags=["control"])

SETTLE_MS = 1000
MAX_WAIT_MS = 600_000
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def _require_admin(request: Request) -> None:
    """Pass when the request may write (or read the journal); else raise AdminTokenError saying which
    header to send."""
    token = state_of(request).settings.admin_token
    if token is None:
        return
    header = request.headers.get("authorization")
    scheme, _, given = (header or "").partition(" ")
    is_bearer = scheme.lower() == "bearer"
    if is_bearer and hmac.compare_digest(given.strip().encode(), token.encode()):
        return
    problem = "it is missing" if header is None else "the token is wrong" if is_bearer else "it is not a Bearer token"
    raise AdminTokenError(
        "This server protects /_mock/ writes and the journal with --admin-token: send the header "
        f"`Authorization: Bearer <admin token>` ({problem})."
    )


def _describe(entry: Entry) -> dict[str, str]:
    return {"name": entry.scenario.name, "description": entry.scenario.description, "source": entry.source}


def _problem_json(problem: Problem) -> dict[str, Any]:
    path = ".".join(str(part) for part in problem.path)
    return {"path": path, "line": problem.line, "message": problem.message.removeprefix(f"{path}: ")}


def _since(text: str | None) -> Since | None:
    """`since=` read as a `Since`; raises QueryParameterError saying what it should be."""
    if text is None:
        return None
    try:
        return Since.parse(text)
    except ValueError as exc:
        raise QueryParameterError("since", f"{exc}.") from None


def _restarted(exc: RestartedError, journal: Journal) -> JSONResponse:
    return answer_error(exc, None, headers=instance_headers(journal), instance=journal.instance)


@router.get("/health", summary="Ready check for Docker and test harnesses")
async def health(request: Request) -> JSONResponse:
    """Declared for the schema: `MockApp` answers the ready check first, the same bytes (`health.answer`)."""
    state = state_of(request)
    body = health_body(state.settings, len(state.catalog), state.journal)
    return JSONResponse(body, headers=instance_headers(state.journal))


@router.get("/scenarios", summary="Every scenario the server knows")
async def list_scenarios(request: Request) -> list[dict[str, str]]:
    return [_describe(entry) for entry in state_of(request).catalog.entries()]


@router.get("/scenarios/{name}", summary="One scenario, as an object PUT accepts")
async def get_scenario(name: str, request: Request) -> JSONResponse:
    entry = state_of(request).catalog.entry(name)
    body = {**_describe(entry), "scenario": entry.scenario.model_dump(mode="json", exclude_defaults=True)}
    return JSONResponse(body)


@router.put(
    "/scenarios/{name}",
    summary="Register or replace a run-time scenario (JSON, or YAML by Content-Type)",
    openapi_extra=openapi.SCENARIO,
)
async def put_scenario(name: str, request: Request) -> JSONResponse:
    _require_admin(request)
    source = f"PUT /_mock/scenarios/{name}"
    raw = await read_body(request, state_of(request).settings.max_body_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestBodyError("The body is not UTF-8 text; send the scenario as JSON or YAML.") from None
    is_yaml = request.headers.get("content-type", "").split(";")[0].strip().lower() in YAML_TYPES
    state = state_of(request)
    catalog = state.catalog
    try:
        # A large body takes seconds to parse and validate: in a worker thread, streams keep their timing.
        scenario = await run_in_threadpool(_load_runtime, text, source, name, is_yaml=is_yaml)
    except ScenarioError as exc:
        message = f"Scenario {name!r} was not added: {len(exc.problems)} problem(s), listed in `problems`."
        problems = [_problem_json(p) for p in exc.problems]
        return error_answer(exc.status, exc.code, message, None, problems=problems)
    replaced = name in catalog
    await state.put_scenario(scenario)
    return JSONResponse(_describe(catalog.entry(name)), status_code=200 if replaced else 201)


def _load_runtime(text: str, source: str, name: str, *, is_yaml: bool) -> Scenario:
    """The scenario a PUT body holds; raises ScenarioError listing every problem."""
    document = parse_document(text, source, is_json=not is_yaml) if text.strip() else Document(source, None)
    return load_runtime_scenario(document, name)


@router.delete("/scenarios/{name}", summary="Remove a run-time scenario")
async def delete_scenario(name: str, request: Request) -> JSONResponse:
    _require_admin(request)
    state = state_of(request)
    if await state.remove_scenario(name):
        return JSONResponse({"deleted": name})
    entry = state.catalog.entry(name)
    raise NotRuntimeScenarioError(
        f"Scenario {name!r} comes from {entry.source}; only scenarios added at run time (source "
        f"{RUNTIME_SOURCE!r}) can be removed. A PUT of the same name replaces it until /_mock/reset."
    )


SINCE_HELP = "only records with an id above this one: ID, or INSTANCE:ID to refuse (409) one from before a restart"


@router.get("/requests", summary="The request journal, oldest first")
async def list_requests(
    request: Request,
    since: str | None = Query(None, description=SINCE_HELP),
    settle_ms: int = Query(SETTLE_MS, ge=0, le=60_000, description="wait up to this long for responses in flight"),
) -> JSONResponse:
    _require_admin(request)
    journal = state_of(request).journal
    try:
        records = await journal.settled(_since(since), settle_ms / 1000)
    except RestartedError as exc:
        return _restarted(exc, journal)
    return JSONResponse([record.to_json() for record in records], headers=instance_headers(journal))


@router.get("/metrics", summary="Prometheus metrics: requests, faults, events, lateness, journal, findings")
async def metrics(request: Request) -> Response:
    _require_admin(request)
    state = state_of(request)
    journal = state.journal
    records = await journal.records()
    _, journal_bytes = await journal.log.stats()
    findings = (await state.verdict()).findings  # linear in the journal: a scrape's cost, not a stream's
    now = Now(
        open_streams=sum(1 for record in records if record.outcome is None),
        journal_records=len(records),
        journal_bytes=journal_bytes,
        findings=[(finding.code, finding.severity.value) for finding in findings],
    )
    return Response(exposition(journal.tally, now), media_type=PROMETHEUS_TEXT)


@router.get("/verdict", summary="Findings on the clients' behaviour, judged from the journal")
async def verdict(
    request: Request,
    since: str | None = Query(None, description=SINCE_HELP),
    settle_ms: int = Query(SETTLE_MS, ge=0, le=60_000, description="wait up to this long for responses in flight"),
    wait_ms: int = Query(
        0, ge=0, le=MAX_WAIT_MS, description="wait up to this long for pending checks (they wait for time to pass)"
    ),
) -> JSONResponse:
    state = state_of(request)
    try:
        judged = await state.verdict(_since(since), settle_ms / 1000, wait_ms / 1000)
    except RestartedError as exc:
        return _restarted(exc, state.journal)
    return JSONResponse(judged.to_json(), headers=instance_headers(state.journal))


@router.delete("/requests", summary="Clear the journal")
async def clear_requests(request: Request) -> JSONResponse:
    _require_admin(request)
    return JSONResponse({"cleared": await state_of(request).journal.clear()})


@router.post(
    "/reset", summary="Clear the journal, run-time scenarios, the `times` counters and the rate limits' counts"
)
async def reset(request: Request) -> JSONResponse:
    _require_admin(request)
    return JSONResponse({"reset": True, "cleared": await state_of(request).reset()})
