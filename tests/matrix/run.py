"""Plays the matrix: a mock server per row (so that `!times=N` counts one client's requests); each
family's cells at once, a few ms apart (the Python clients in a process of their own, the Node
clients in another, the browser clients in one page); then the journal of each server for the
attempts of each cell."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from importlib.metadata import version
from typing import Any

import httpx

from mock_server.http.server import MockServer
from mock_server.journal.journal import RequestRecord
from mock_server.settings import Settings
from tests.matrix.browser_clients import browser_versions, run_browser
from tests.matrix.columns import CHUNK_MS, REPLY, Column
from tests.matrix.node_clients import node_versions, run_node
from tests.matrix.observation import Observation
from tests.matrix.python_clients import MODEL, run_python
from tests.matrix.records import Attempt, CellRecord, Records
from tests.matrix.rows import Family, Row

SCENARIO = {"reply": REPLY, "chunk_ms": CHUNK_MS}
WARM_UP = "warm-up"
"""The probe server's scenario for the warm-up calls: short and unpaced."""
STAGGER_MS = 25
"""The pause between the starts of a family's cells: started all at once, they keep their process and
the servers busy for a second, and the first retries (0.5 s) would wait for them."""
SETTLE_S = 3.0
"""How long the journal is given for responses whose client has just gone."""

PROBED = ("/v1/chat/completions", "/v1/messages")
"""The dialects the rows stream in (GET and POST /completions speak the chat one)."""
NOT_PLAYABLE = {
    "invalid_override": "not known to this server yet",
    "internal_error": "this server answers them with 500 `internal_error`",
}


def prompt_of(column: Column) -> str:
    """The cell's prompt: how the journal of its row's server tells the cells apart."""
    return f"matrix {column.key}"


@contextmanager
def _servers(count: int) -> Iterator[list[MockServer]]:
    with ExitStack() as stack:
        servers = []
        for _ in range(count):
            settings = Settings(port=0, access_log=False, journal_size=10_000)
            server = stack.enter_context(MockServer(settings=settings))
            server.add_scenario(MODEL, **SCENARIO)
            servers.append(server)
        yield servers


def pending_faults(server: MockServer, columns: Sequence[Column]) -> dict[str, str]:
    """The columns whose fault the server cannot play yet, with why: it refuses the fault as an override
    it does not know, or fails on it. Their cells are left for a run on a server that can."""
    pending: dict[str, str] = {}
    for column, path in itertools.product(columns, PROBED):
        body = {"model": MODEL, "stream": True, "max_tokens": 16, "messages": [{"role": "user", "content": "p"}]}
        headers = {"X-Mock-Fault": column.fault}
        try:
            with httpx.stream("POST", f"{server.url}{path}", json=body, headers=headers, timeout=5) as response:
                if response.status_code in (400, 500):
                    response.read()
                    error = response.json().get("error", {})
                    code = error.get("code") or error.get("type")
                    if code in NOT_PLAYABLE:
                        pending.setdefault(column.key, NOT_PLAYABLE[code])
        except httpx.TransportError:
            pass  # a fault before the response head: the server knows it
    return pending


def _attempts(records: Sequence[RequestRecord], prompt: str) -> list[Attempt]:
    """The cell's requests, from its row's journal, timed from the first."""
    mine = [r for r in records if r.prompt == prompt]
    first = mine[0].received_at if mine else 0.0
    return [
        Attempt(
            at_s=round(r.received_at - first, 3),
            ended_at_s=None if r.ended_at is None else round(r.ended_at - first, 3),
            status=r.status,
            outcome=None if r.outcome is None else str(r.outcome),
            events_sent=r.events_sent,
            retry_after=r.retry_after,
        )
        for r in mine
    ]


def _job(row: Row, server: MockServer, column: Column, model: str, prompt: str) -> dict[str, Any]:
    """What a family's runner is given to play one cell."""
    return {
        "key": f"{row.id}|{column.key}",
        "client": row.key,
        "url": server.url,
        "model": model,
        "prompt": prompt,
        "fault": column.fault,
        "timeoutMs": round(column.timeout_s * 1000),
        "deadlineMs": round(column.deadline_s * 1000),
        "alone": column.alone,
    }


def versions(rows: Sequence[Row]) -> dict[str, str]:
    node = node_versions() if any(row.family is Family.NODE for row in rows) else {}
    browser = browser_versions([row.package for row in rows if row.family is Family.BROWSER and row.package])
    found = {Family.PYTHON: {}, Family.NODE: node, Family.BROWSER: browser}
    return {
        row.id: version(row.package) if row.family is Family.PYTHON else found[row.family].get(row.package, "")
        for row in rows
    }


def run_matrix(rows: Sequence[Row], columns: Sequence[Column]) -> Records:
    """Every cell of `rows` x `columns`, played against fresh mock servers."""
    with _servers(len(rows) + 1) as (probe, *servers):
        probe.add_scenario(WARM_UP, reply="ok", chunk_ms=0)
        pending = pending_faults(probe, columns)
        played = [c for c in columns if c.key not in pending]
        jobs: dict[Family, list[dict[str, Any]]] = {family: [] for family in Family}
        warmup: dict[Family, list[dict[str, Any]]] = {family: [] for family in Family}
        for row, server in zip(rows, servers, strict=True):
            warmup[row.family].append(_job(row, probe, Column(""), WARM_UP, WARM_UP))
            jobs[row.family] += [_job(row, server, column, MODEL, prompt_of(column)) for column in played]
        for family_jobs in jobs.values():
            for index, job in enumerate(family_jobs):
                job["startMs"] = index * STAGGER_MS
        longest = max((c.deadline_s for c in played), default=0.0)
        budget = longest * 6 + 60  # the browser plays five cells of a row at a time
        # One family after the other: played together, on two cores, their start-ups and Chromium's
        # delayed the first retries of the others by up to two seconds.
        runners = {Family.PYTHON: run_python, Family.NODE: run_node, Family.BROWSER: run_browser}
        seen: dict[str, Observation] = {}
        for family, run in runners.items():
            seen.update(run(jobs[family], warmup[family], budget))
        cells = []
        for row, server in zip(rows, servers, strict=True):
            journal = server.records(settle_s=SETTLE_S)
            for column in columns:
                cell = CellRecord(row.id, column.key, column.fault, pending.get(column.key), timeout_s=column.timeout_s)
                if cell.pending is None:
                    cell.observation = seen[f"{row.id}|{column.key}"]
                    cell.attempts = _attempts(journal, prompt_of(column))
                cells.append(cell)
    return Records(versions(rows), cells)


def timed(rows: Sequence[Row], columns: Sequence[Column]) -> tuple[Records, float]:
    started = time.monotonic()
    records = run_matrix(rows, columns)
    return records, time.monotonic() - started
