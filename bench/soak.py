"""Soak: `python -m bench.soak [--requests 10000] [--concurrency 32] [--seed 1]`.

Thousands of requests to one in-process MockServer: random endpoints (streamed or whole), random
scenarios, random faults, and clients that hang up at random points (mid-request, after the head,
after a few events, or when a stall tries their patience). Afterwards it checks that nothing was
left behind (asyncio tasks on the server's loop, file descriptors, threads), that memory did not
grow after the warm-up, that the journal stayed bounded, and that every journal record tells how
its response really ended. Exits 1 when a check fails; `tests/test_soak.py` runs a smaller round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mock_server.dialects import Dialect, StreamInfo
from mock_server.errors import MockLLMError
from mock_server.http.routes import MODEL_ROUTES
from mock_server.http.server import MockServer
from mock_server.http.state import MockState
from mock_server.scenarios import steps
from mock_server.scenarios.catalog import Catalog, bundled_scenarios_dir, load_paths
from mock_server.scenarios.steps import Ending
from mock_server.settings import Settings
from mock_server.timeline.compile import RequestContext, Timeline, compile_timeline
from mock_server.timeline.overrides import parse_overrides
from mock_server.wire import eventstream, rendering
from mock_server.wire.actions import Write

CHUNK_MS = "3"
TOO_LONG = {"long-reply"}
"""Bundled scenarios left out: hundreds of chunks would make one request last seconds."""
FAULTS = [
    "",
    "",
    "drop@{n}",
    "reset@{n}",
    "close@{n}",
    "error@{n}",
    "stall@{n}:20",
    "stall@{n}",
    "malformed@{n}",
    "split@{n}",
    "delay@{n}:10",
    "status:429",
    "status:503",
    "no_done",
    "dorp@{n}",  # malformed: a 400
]
PLANS = ["read", "read", "read", "after_events", "after_head", "early", "mid_request"]
PATIENCE_S = 0.25
"""How long a client waits on a stream that stalls forever before it gives up."""
DEADLINE_S = 10.0


ENDPOINTS = [route for route in MODEL_ROUTES if route.reads_body]
"""Every model endpoint with a body; half the requests to POST /completions go as GET instead."""


@dataclass
class Planned:
    """One request: what is sent, how the client behaves, and what the server should end with."""

    id: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    plan: str
    natural: str | None
    """The outcome the response reaches when the client reads it all; None when it stalls forever."""
    stalls: bool
    events: int
    hang_up_after: int = 0


@dataclass
class Seen:
    """What the client observed."""

    status: int | None = None
    ending: str = "none"  # complete | eof | reset | left
    events: int = 0


@dataclass
class Report:
    requests: int = 0
    seconds: float = 0.0
    plans: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    tasks: tuple[int, int] = (0, 0)
    fds: tuple[int, int] = (0, 0)
    threads: tuple[int, int] = (0, 0)
    rss_mb: tuple[float, float] = (0.0, 0.0)
    journal: tuple[int, int] = (0, 0)
    errors_logged: list[str] = field(default_factory=list)

    @property
    def rss_growth(self) -> float:
        return (self.rss_mb[1] - self.rss_mb[0]) / self.rss_mb[0]

    @property
    def problems(self) -> list[str]:
        found = list(self.mismatches[:20])
        found.extend(f"the server logged an error: {error}" for error in self.errors_logged[:5])
        if self.tasks[1] > self.tasks[0]:
            found.append(
                f"asyncio tasks on the server's loop: {self.tasks[0]} after warm-up, {self.tasks[1]} at the end"
            )
        if self.fds[1] > self.fds[0]:
            found.append(f"open file descriptors: {self.fds[0]} after warm-up, {self.fds[1]} at the end")
        if self.threads[1] > self.threads[0]:
            found.append(f"threads: {self.threads[0]} after warm-up, {self.threads[1]} at the end")
        if self.rss_growth >= 0.10:
            found.append(
                f"RSS grew {self.rss_growth:.1%} after warm-up ({self.rss_mb[0]:.0f} -> {self.rss_mb[1]:.0f} MB)"
            )
        if self.journal[0] > self.journal[1]:
            found.append(f"the journal holds {self.journal[0]} records, over its size {self.journal[1]}")
        return found

    def table(self) -> str:
        rows = [
            ("requests", f"{self.requests} in {self.seconds:.1f} s ({self.requests / self.seconds:.0f}/s)"),
            ("client plans", ", ".join(f"{k} {v}" for k, v in sorted(self.plans.items()))),
            ("journal outcomes", ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))),
            ("outcome mismatches", str(len(self.mismatches))),
            ("server-loop tasks", f"{self.tasks[0]} -> {self.tasks[1]}"),
            ("file descriptors", f"{self.fds[0]} -> {self.fds[1]}"),
            ("threads", f"{self.threads[0]} -> {self.threads[1]}"),
            ("RSS after warm-up", f"{self.rss_mb[0]:.1f} -> {self.rss_mb[1]:.1f} MB ({self.rss_growth:+.1%})"),
            ("journal", f"{self.journal[0]} records kept, size {self.journal[1]}"),
            ("errors logged", str(len(self.errors_logged))),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _predict(catalog: Catalog, headers: dict[str, str], prompt: str, items: int | None = None) -> Timeline:
    overrides = parse_overrides({}, {k.lower(): v for k, v in headers.items()})
    scenario = catalog.get(headers["X-Mock-Scenario"])
    return compile_timeline(scenario, overrides, RequestContext(prompt=prompt, model="soak", items=items))


def _natural(timeline: Timeline, stream: bool) -> tuple[str | None, bool]:
    """The outcome when read to the end (None: it stalls forever), and whether it stalls at all."""
    stalls = any(isinstance(s, steps.Stall) for s in timeline.steps)
    if timeline.status != 200:
        return "error_status", False
    match timeline.ending:
        case Ending.DROP:
            return "dropped", stalls
        case Ending.RESET:
            return "reset", stalls
        case Ending.STALL:
            return None, True
        case Ending.ERROR if not stream:
            return "error_status", stalls
    return "completed", stalls


def _events(timeline: Timeline, dialect: Dialect) -> int:
    info = StreamInfo(key="0" * 64, created=0, model="soak", usage=timeline.usage)
    actions = rendering.render_stream(timeline, dialect.stream(info)).actions
    return sum(action.events for action in actions if isinstance(action, Write))


def plan_requests(count: int, seed: int, catalog: Catalog, first_id: int = 0) -> list[Planned]:
    rng = random.Random(seed)
    names = [name for name in catalog.names if name not in TOO_LONG] + ["no-such-scenario"]
    planned = []
    for number in range(first_id, first_id + count):
        endpoint = rng.choice(ENDPOINTS)
        stream = endpoint.path == "/completions" or rng.random() < 0.7
        if endpoint.streams is not None:  # Gemini's methods say it in the path
            stream = endpoint.streams
        prompt = f"soak request {number}"
        headers = {"X-Mock-Scenario": rng.choice(names), "X-Mock-Chunk-Ms": CHUNK_MS, "X-Mock-First-Chunk-Ms": "0"}
        fault = rng.choice(FAULTS).format(n=rng.randint(0, 6))
        if fault:
            headers["X-Mock-Fault"] = fault
        query = {"soak": str(number)}
        method, body = "POST", json.dumps(endpoint.example("soak", stream, prompt)).encode()
        if endpoint.path == "/completions" and rng.random() < 0.5:
            method, body, query = "GET", b"", {**query, "messages": prompt}
        path = endpoint.example_target("soak", stream)
        target = f"{path}{'&' if '?' in path else '?'}{urlencode(query)}"
        natural: str | None
        try:
            timeline = _predict(catalog, headers, prompt, items=None if endpoint.streams else 1)
        except MockLLMError:  # an unknown scenario (404) or a malformed override (400)
            natural, stalls, events = "error_status", False, 0
        else:
            natural, stalls = _natural(timeline, stream)
            events = _events(timeline, endpoint.dialect) if stream and timeline.status == 200 else 0
        plan = rng.choice(PLANS)
        if plan == "after_events" and events < 5:
            plan = "read"
        hang_up_after = rng.randint(1, events - 3) if plan == "after_events" else 0
        planned.append(Planned(number, method, target, headers, body, plan, natural, stalls, events, hang_up_after))
    return planned


def _request_bytes(request: Planned) -> bytes:
    headers = {"Host": "127.0.0.1", "Connection": "close", **request.headers}
    if request.method == "POST":
        headers |= {"Content-Type": "application/json", "Content-Length": str(len(request.body))}
    head = f"{request.method} {request.target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + request.body


async def _read(reader: asyncio.StreamReader, request: Planned, seen: Seen) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    seen.status = int(head.split(b" ", 2)[1])
    lines = head.decode("latin-1").lower().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if request.plan == "after_head":
        seen.ending = "left"
        return
    if headers.get("transfer-encoding") != "chunked":
        await reader.readexactly(int(headers.get("content-length", "0")))
        seen.ending = "complete"
        return
    body = b""
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        size = int(line.split(b";")[0], 16)
        if size == 0:
            await reader.readexactly(2)
            seen.ending = "complete"
            return
        body += (await reader.readexactly(size + 2))[:-2]
        seen.events = _events_in(body, headers.get("content-type", ""))
        if request.plan == "after_events" and seen.events >= request.hang_up_after:
            seen.ending = "left"
            return


def _events_in(body: bytes, content_type: str) -> int:
    """The whole events of a stream's body so far: Bedrock's frames, Ollama's lines (NDJSON ends each
    with a line end), or SSE's blocks (each ends with a blank line)."""
    if content_type == eventstream.CONTENT_TYPE:
        return len(eventstream.FrameSplitter().feed(body))
    return body.count(b"\n" if content_type == "application/x-ndjson" else b"\n\n")


async def play(port: int, request: Planned) -> Seen:
    """Send one request and behave as its plan says."""
    seen = Seen()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = _request_bytes(request)
        if request.plan == "mid_request":
            writer.write(data[: len(data) - max(1, len(request.body) // 2)] if request.body else data[: len(data) // 2])
            await writer.drain()
            seen.ending = "left"
            return seen
        writer.write(data)
        await writer.drain()
        if request.plan == "early":
            seen.ending = "left"
            return seen
        patience = PATIENCE_S if request.natural is None else DEADLINE_S
        try:
            await asyncio.wait_for(_read(reader, request, seen), patience)
        except TimeoutError:
            seen.ending = "left"
        except asyncio.IncompleteReadError:
            seen.ending = "eof"
        except ConnectionResetError:
            seen.ending = "reset"
        return seen
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def check(request: Planned, seen: Seen, record: Any | None) -> str | None:
    """Why the journal's record does not fit what happened, or None when it does."""
    label = f"#{request.id} {request.method} {request.target} {request.headers} plan={request.plan}"
    if request.plan == "mid_request":
        return None if record is None else f"{label}: a request that never fully arrived was recorded: {record}"
    if record is None:
        return f"{label}: no journal record (client saw {seen})"
    outcome = record.outcome
    if outcome is None:
        return f"{label}: still in flight after the settle time"
    if seen.ending == "left":
        allowed = {"client_disconnected", request.natural}
        if request.stalls:
            allowed.add("stalled")
        if outcome not in allowed:
            names = sorted(map(str, allowed))
            return f"{label}: the client left ({seen}); journal says {outcome!r}, expected one of {names}"
        return None
    expected = request.natural
    observed = {"complete": None, "eof": "dropped", "reset": "reset"}[seen.ending]
    if outcome != expected or (observed is not None and observed != outcome):
        return f"{label}: the client saw {seen}; journal says {outcome!r}, expected {expected!r}"
    if seen.status is not None and record.status != seen.status:
        return f"{label}: the client saw status {seen.status}; journal says {record.status}"
    return None


class _ErrorLog(logging.Handler):
    """Every error any logger reports (uvicorn logs an exception in the app as one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        cause = f" ({record.exc_info[1]!r})" if record.exc_info else ""
        self.lines.append(f"{record.name}: {record.getMessage().strip()}{cause}")


def _server_tasks(server: MockServer) -> int:
    async def count(state: MockState) -> int:
        return len(asyncio.all_tasks())

    return server._on_loop(count)  # the server's own loop: tasks are only safe to count there


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _settled(probe: Callable[[], int], target: int, timeout_s: float = 3.0) -> int:
    """`probe()` once it is at most `target`, or its last value after `timeout_s` (closing takes a moment)."""
    deadline = time.monotonic() + timeout_s
    value = probe()
    while value > target and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value


async def _play_batch(port: int, batch: list[Planned], concurrency: int) -> list[Seen]:
    gate = asyncio.Semaphore(concurrency)

    async def one(request: Planned) -> Seen:
        async with gate:
            return await play(port, request)

    return await asyncio.gather(*(one(request) for request in batch))


def _run_batch(server: MockServer, batch: list[Planned], concurrency: int, report: Report, since: int) -> int:
    """Play a batch, then check its journal records (newer than `since`); returns the newest id."""
    seen = asyncio.run(_play_batch(server.port, batch, concurrency))
    records = server.records(since=since, settle_s=DEADLINE_S)
    by_request = {r.query.get("soak"): r for r in records}
    for request, observed in zip(batch, seen, strict=True):
        record = by_request.get(str(request.id))
        report.plans[request.plan] += 1
        if record is not None and record.outcome is not None:
            report.outcomes[record.outcome] += 1
        if (problem := check(request, observed, record)) is not None:
            report.mismatches.append(problem)
    return max((r.id for r in records), default=since)


def run_soak(requests: int = 10_000, *, concurrency: int = 32, seed: int = 1, journal_size: int = 500) -> Report:
    """Play `requests` requests (after a warm-up of a fifth as many, at least twice the journal) and
    report what was left behind."""
    report = Report(requests=requests)
    with tempfile.TemporaryDirectory() as folder:
        words = " ".join(f"word{i}" for i in range(16))
        (Path(folder) / "soak-words.yaml").write_text(f'reply: "{words}"\nids: true\n')
        catalog = Catalog(load_paths([bundled_scenarios_dir(), Path(folder)]))
        settings = Settings(port=0, scenario_dirs=(Path(folder),), journal_size=journal_size, access_log=False)
        batch_size = journal_size // 2
        # Long enough for the journal to fill twice and the allocator to reach its working size.
        warm_up = plan_requests(max(2 * journal_size, requests // 5), seed + 1, catalog, first_id=-(10**6))
        planned = plan_requests(requests, seed, catalog)
        errors = _ErrorLog()
        logging.getLogger().addHandler(errors)
        with contextlib.ExitStack() as cleanup, MockServer(settings=settings) as server:
            cleanup.callback(logging.getLogger().removeHandler, errors)
            newest = 0
            for start in range(0, len(warm_up), batch_size):
                newest = _run_batch(server, warm_up[start : start + batch_size], concurrency, Report(), newest)
            tasks, fds, threads = _server_tasks(server), _fds(), threading.active_count()
            rss = _rss_mb()
            began = time.monotonic()
            for start in range(0, requests, batch_size):
                newest = _run_batch(server, planned[start : start + batch_size], concurrency, report, newest)
            report.seconds = time.monotonic() - began
            report.journal = (len(server.records(settle_s=0)), journal_size)
            report.tasks = (tasks, _settled(lambda: _server_tasks(server), tasks))
            report.fds = (fds, _settled(_fds, fds))
            report.threads = (threads, _settled(threading.active_count, threads))
            report.rss_mb = (rss, _rss_mb())
        report.errors_logged = errors.lines
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = run_soak(args.requests, concurrency=args.concurrency, seed=args.seed)
    print(report.table())
    for problem in report.problems:
        print("PROBLEM:", problem)
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
