"""The bench's view of each streaming endpoint: it counts every event a client reads, whatever the
framing, and sees a paced stream's writes where the server makes them, so its per-endpoint figures
compare like with like."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import load
from bench.endpoints import ENDPOINTS, BenchEndpoint
from bench.measures import CHUNK_MS, CHUNKS, fidelity, schedule_of, slowest_against_fastest, write_scenarios
from bench.pauses import pauses_between, pauses_within
from bench.procs import ROOT
from mock_server.http.routes import MODEL_ROUTES
from mock_server.http.server import MockServer
from mock_server.settings import Settings


@pytest.fixture(scope="module")
def bench_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    folder = tmp_path_factory.mktemp("bench-scenarios")
    write_scenarios(folder)
    with MockServer(settings=Settings(port=0, scenario_dirs=(folder,), access_log=False)) as running:
        yield running


def test_every_streaming_dialect_is_benched() -> None:
    streaming = {route.dialect.name for route in MODEL_ROUTES if route.streams is not False}
    assert {endpoint.route.dialect.name for endpoint in ENDPOINTS} == streaming
    assert {"gemini", "azure-openai"} <= streaming


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.route.name)
def test_the_load_client_counts_every_event_of_a_stream(bench_server: MockServer, endpoint: BenchEndpoint) -> None:
    groups = endpoint.capture_groups(bench_server.url, "bench-burst")
    assert groups is not None
    assert endpoint.events is not None
    events = len(endpoint.events.split("".join(groups).encode("latin-1")))
    assert events > CHUNKS

    schedule = asyncio.run(schedule_of(bench_server.port, endpoint.request("bench-stream")))

    # bench-stream writes its words 20 ms apart: one write each (the first with the opening), and
    # the counts read on the wire are the events of the body. On a busy machine a late write may
    # arrive with the next one, and the two read as one: the bounds allow a few of those.
    assert len(schedule.ends) >= CHUNKS // 2
    assert schedule.ends == sorted(schedule.ends)
    assert schedule.ends[-1] == events
    assert schedule.due_ms[0] == 0
    assert all(due % CHUNK_MS == 0 for due in schedule.due_ms)
    assert schedule.due_ms == sorted(schedule.due_ms)


def test_a_paced_streams_writes_become_the_baselines_groups(bench_server: MockServer) -> None:
    (endpoint,) = [e for e in ENDPOINTS if e.route.name == "messages"]
    schedule = asyncio.run(schedule_of(bench_server.port, endpoint.request("bench-stream")))
    groups = endpoint.capture_groups(bench_server.url, "bench-stream", schedule.ends)
    assert groups is not None
    assert len(groups) == len(schedule.ends)
    assert endpoint.events is not None
    counts = [len(endpoint.events.split(group.encode("latin-1"))) for group in groups[:2]]
    assert counts == [schedule.ends[0], schedule.ends[1] - schedule.ends[0]]
    assert "message_start" in groups[0]
    assert "message_stop" in groups[-1]


def test_the_bench_sees_a_servers_full_collections(tmp_path: Path) -> None:
    script = tmp_path / "collects.py"
    script.write_text("import gc, time\ntime.sleep(0.01)\ngc.collect()\n")
    pauses = tmp_path / "pauses.txt"
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", "bench.pauses", str(pauses), "-m", "collects"],
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
    )
    assert pauses_between(pauses, started, time.time()).full >= 1
    assert pauses_between(pauses, 0, started).full == 0


def test_the_rounds_of_an_endpoint_count_each_of_their_collections(tmp_path: Path) -> None:
    pauses = tmp_path / "pauses.txt"
    pauses.write_text("10.0 2 30.000 29.000\n15.0 0 4.000 1.000\n20.0 2 12.000 11.000\n30.0 2 50.000 49.000\n")
    rounds = pauses_within(pauses, [(9.0, 16.0), (19.0, 21.0)])
    assert (rounds.full, rounds.longest_ms, rounds.longest_cpu_ms) == (2, 30.0, 29.0)
    assert pauses_within(pauses, []).full == 0


def test_the_endpoints_are_compared_slowest_against_fastest() -> None:
    figure = slowest_against_fastest("500 streams lateness p99", "ms", {"A": 2.0, "B": 1.0, "C": 3.0}, "<= 1.5x")
    assert figure.name == "500 streams lateness p99: C / B"
    assert (figure.mock, figure.baseline, figure.ratio) == (3.0, 1.0, 3.0)
    assert figure.against == "fastest endpoint"


def test_the_load_clients_collector_stays_out_of_a_paced_measurement(bench_server: MockServer) -> None:
    # A full pass in the client held its reads back, and an event read with the next one was stamped
    # a chunk late: the server was blamed for the client's pause.
    collections: list[float] = []

    def noted(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collections.append(time.time())

    request = load.http_request("/completions?scenario=bench-stream&messages=x")
    gc.callbacks.append(noted)
    try:
        schedule = asyncio.run(schedule_of(bench_server.port, request))
        measured = asyncio.run(fidelity(bench_server.port, request, 20, schedule, warm_up=False))
    finally:
        gc.callbacks.remove(noted)
    assert measured.completed == 20
    start, end = measured.window
    assert collections  # the schedule's stream ran with the collector on
    assert not [at for at in collections if start <= at <= end]
    assert gc.isenabled()
