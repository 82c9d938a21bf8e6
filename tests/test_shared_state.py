"""Servers sharing one state (`--state sqlite:PATH`, `--state redis://...`) act as one: a request
to any of them is in every journal, counters count across them, a run-time scenario added through
one answers on all, a reset through one resets all, and a stream in flight on a server that dies
reads as `server_lost`."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from mock_server.http.server import MockServer
from tests.conftest import cli_server, wait_until
from tests.stores import state_of_kind
from tests.test_workers import serving

UNPACED = {"X-Mock-Chunk-Ms": "0"}
FOLLOW_BOUND_S = 1.0
"""A scenario added through one server answers on the others within this (they look every 50 ms)."""


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return state_of_kind(request.param, tmp_path, request)


@pytest.fixture
def pair(make_server: Callable[..., MockServer], shared: str) -> tuple[MockServer, MockServer]:
    """Two servers, as two workers or two replicas are: apps of their own, one state."""
    return make_server(state=shared), make_server(state=shared)


def chat(server: MockServer, prompt: str = "hello", **headers: str) -> httpx.Response:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}
    return httpx.post(server.url + "/v1/chat/completions", json=body, headers={**UNPACED, **headers}, timeout=10)


def journal(server: MockServer) -> list[dict[str, Any]]:
    response = httpx.get(server.url + "/_mock/requests", timeout=10)
    assert response.status_code == 200
    records: list[dict[str, Any]] = response.json()
    return records


def test_every_server_sees_every_request_under_one_id_sequence(pair: tuple[MockServer, MockServer]) -> None:
    second = pair[1]
    ids = [int(chat(server, f"question {n}").headers["x-mock-request-id"]) for n, server in enumerate(pair * 3)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    for server in pair:
        records = journal(server)
        assert [r["id"] for r in records] == ids
        assert [r["prompt"] for r in records] == [f"question {n}" for n in range(6)]
        assert {r["outcome"] for r in records} == {"completed"}
    health = [httpx.get(s.url + "/_mock/health").json()["instance"] for s in pair]
    assert health[0] == health[1], "servers sharing a state are one instance: since=INSTANCE:ID works on each"
    since = f"{health[0]}:{ids[3]}"
    assert [r["id"] for r in httpx.get(second.url + "/_mock/requests", params={"since": since}).json()] == ids[4:]


def test_a_scenario_put_through_one_answers_on_the_other(pair: tuple[MockServer, MockServer]) -> None:
    first, second = pair
    put = httpx.put(first.url + "/_mock/scenarios/shared-hello", json={"reply": "Hello from the shared state"})
    assert put.status_code == 201
    began = time.monotonic()

    def answered() -> bool:
        response = chat(second, **{"X-Mock-Scenario": "shared-hello"})
        return response.status_code == 200 and "Hello from the shared state" in response.text

    wait_until(answered, "the scenario answering on the other server", timeout_s=FOLLOW_BOUND_S)
    assert time.monotonic() - began < FOLLOW_BOUND_S
    assert "shared-hello" in [s["name"] for s in httpx.get(second.url + "/_mock/scenarios").json()]
    assert httpx.delete(second.url + "/_mock/scenarios/shared-hello").json() == {"deleted": "shared-hello"}
    wait_until(
        lambda: chat(first, **{"X-Mock-Scenario": "shared-hello"}).status_code == 404,
        "the scenario removed through the other server to be gone here too",
        timeout_s=FOLLOW_BOUND_S,
    )


def test_fault_times_count_across_servers(pair: tuple[MockServer, MockServer]) -> None:
    first, second = pair
    fault = {"X-Mock-Fault": "status:503!times=2"}
    statuses = [chat(server, **fault).status_code for server in (first, second, first, second)]
    assert statuses == [503, 503, 200, 200]


def test_replies_go_on_across_servers(pair: tuple[MockServer, MockServer]) -> None:
    first, second = pair
    httpx.put(first.url + "/_mock/scenarios/steps", json={"replies": ["one", "two", "three"]})
    wait_until(lambda: chat(second, **{"X-Mock-Scenario": "steps"}).status_code == 200, "the scenario on both")
    httpx.post(first.url + "/_mock/reset")
    httpx.put(first.url + "/_mock/scenarios/steps", json={"replies": ["one", "two", "three"]})
    wait_until(lambda: "steps" in [s["name"] for s in httpx.get(second.url + "/_mock/scenarios").json()], "follow")
    conversation = {"X-Mock-Scenario": "steps", "X-Mock-Conversation": "alice"}
    replies = [chat(server, **conversation).headers["x-mock-reply"] for server in (first, second, first)]
    assert replies == ["1", "2", "3"]


def test_rate_limits_count_every_server_s_requests(make_server: Callable[..., MockServer], shared: str) -> None:
    first, second = make_server(state=shared, rpm=2), make_server(state=shared, rpm=2)
    key = {"Authorization": "Bearer sk-shared-limit"}
    statuses = [chat(server, **key).status_code for server in (first, second, first)]
    assert statuses == [200, 200, 429]
    assert chat(second, Authorization="Bearer sk-another-client").status_code == 200


def test_a_response_stored_through_one_is_read_through_the_other(pair: tuple[MockServer, MockServer]) -> None:
    first, second = pair
    with OpenAI(base_url=first.openai_base_url, api_key="x", max_retries=0, default_headers=UNPACED) as one:
        created = one.responses.create(model="gpt-4o", input="remember me")
    with OpenAI(base_url=second.openai_base_url, api_key="x", max_retries=0, default_headers=UNPACED) as other:
        assert other.responses.retrieve(created.id).output_text == created.output_text
        follow = other.responses.create(model="gpt-4o", input="and then?", previous_response_id=created.id)
        assert follow.status == "completed"


def test_a_reset_through_one_resets_every_server(pair: tuple[MockServer, MockServer]) -> None:
    first, second = pair
    httpx.put(first.url + "/_mock/scenarios/gone-after-reset", json={"reply": "soon gone"})
    chat(first, **{"X-Mock-Fault": "status:503!times=1"})
    chat(second)
    assert httpx.post(second.url + "/_mock/reset").json() == {"reset": True, "cleared": 2}
    assert journal(first) == []
    wait_until(
        lambda: "gone-after-reset" not in [s["name"] for s in httpx.get(first.url + "/_mock/scenarios").json()],
        "the run-time scenario gone on the other server",
        timeout_s=FOLLOW_BOUND_S,
    )
    assert chat(second, **{"X-Mock-Fault": "status:503!times=1"}).status_code == 503, "times counted afresh"


@pytest.mark.slow
def test_a_stream_in_flight_on_a_server_that_dies_reads_as_server_lost(
    make_server: Callable[..., MockServer], shared: str
) -> None:
    survivor = make_server(state=shared)
    with cli_server("--state", shared) as (process, url):
        port = int(url.rsplit(":", 1)[1])
        request = b"GET /completions?messages=hi&fault=stall@1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(request)
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
            (in_flight,) = wait_until(lambda: journal(survivor), "the record of the stream in flight")
            assert in_flight["outcome"] is None
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
            (lost,) = wait_until(
                lambda: [r for r in journal(survivor) if r["outcome"] == "server_lost"],
                "the record to read as server_lost",
                timeout_s=10,
            )
    assert lost["id"] == in_flight["id"]
    done = chat(survivor)
    assert done.status_code == 200
    assert [r["outcome"] for r in journal(survivor)] == ["server_lost", "completed"]


def test_a_state_the_server_cannot_use_is_refused_saying_why(tmp_path: Path) -> None:
    from mock_server.errors import StateStoreError
    from mock_server.store import open_store

    with pytest.raises(StateStoreError, match="cannot use the file"):
        open_store(f"sqlite:{tmp_path / 'no-such-dir' / 'state.sqlite3'}", 10, 1000)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(StateStoreError, match=r"Connection refused\. Check that redis-server runs"):
        open_store(f"redis://127.0.0.1:{port}/0", 10, 1000)
    with pytest.raises(ValueError, match="accepted: memory"):
        open_store("postgres://x", 10, 1000)


def _get(url: str, path: str, **headers: str) -> httpx.Response:
    """A request on a new connection (so that each may land on another worker)."""
    return httpx.get(url + path, headers={**UNPACED, **headers}, timeout=10)


@pytest.mark.slow
def test_two_workers_and_another_server_on_one_redis_agree(redis_db: str) -> None:
    with serving("--workers", "2", "--state", redis_db) as workers, serving("--state", redis_db) as single:
        workers.pids_by_worker(2)  # both workers are up
        ids = []
        for n in range(8):
            served = workers if n % 2 else single
            answer = _get(served.url, f"/completions?messages=question+{n}&fault=status:503!times=3")
            ids.append((answer.status_code, int(answer.headers["x-mock-request-id"])))
        assert [status for status, _ in ids] == [503, 503, 503, 200, 200, 200, 200, 200], "times counted across"
        for served in (workers, single):
            records = httpx.get(served.url + "/_mock/requests", timeout=10).json()
            assert [r["id"] for r in records if "question" in (r["prompt"] or "")] == [i for _, i in ids]
        put = httpx.put(single.url + "/_mock/scenarios/everywhere", json={"reply": "Shared by all"}, timeout=10)
        assert put.status_code == 201

        def answered_by_every_worker() -> bool:
            answers = [_get(workers.url, "/completions?messages=x&scenario=everywhere") for _ in range(6)]
            return all(answer.headers.get("x-mock-scenario") == "everywhere" for answer in answers)

        wait_until(answered_by_every_worker, "the scenario on every worker", timeout_s=FOLLOW_BOUND_S * 5)


@pytest.mark.slow
def test_a_worker_killed_mid_stream_loses_only_its_own_streams(tmp_path: Path) -> None:
    state = f"sqlite:{tmp_path / 'state.sqlite3'}"
    with serving("--workers", "2", "--state", state) as served:
        pids = served.pids_by_worker(2)
        paced = b"GET /completions?messages=" + b"+w" * 40 + b"&chunk_ms=100 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        streams: list[socket.socket] = []
        while len({r["worker"] for r in journal_at(served.url)}) < 2:  # until both workers hold streams
            assert len(streams) < 40, "every connection went to one worker"
            client = socket.create_connection(("127.0.0.1", served.port), timeout=30)
            client.sendall(paced)
            streams.append(client)
            wait_until(lambda: len(journal_at(served.url)) == len(streams), "the stream's record")
        on_the_killed_one = sum(1 for r in journal_at(served.url) if r["worker"] == 1)
        os.kill(pids[1], signal.SIGKILL)
        broken = sum(1 for client in streams if not _reads_to_the_end(client))
        records = wait_until(lambda: _all_ended(served.url), "every record ended or lost", timeout_s=15)
        for client in streams:
            client.close()
    assert broken == on_the_killed_one
    assert {(r["worker"], r["outcome"]) for r in records} == {(1, "server_lost"), (2, "completed")}


def _all_ended(url: str) -> list[dict[str, Any]] | None:
    records = journal_at(url)
    return records if all(record["outcome"] is not None for record in records) else None


def journal_at(url: str) -> list[dict[str, Any]]:
    answer = httpx.get(url + "/_mock/requests", params={"settle_ms": 0}, timeout=10)
    records: list[dict[str, Any]] = answer.json()
    return records


def _reads_to_the_end(client: socket.socket) -> bool:
    """Whether the stream ended as a chunked body ends (the terminating chunk), not cut."""
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received.endswith(b"0\r\n\r\n")


def test_the_dashboard_of_one_server_shows_the_requests_another_answered(pair: tuple[MockServer, MockServer]) -> None:
    first, second = pair
    with httpx.stream("GET", f"{second.url}/_mock/ui/feed", params={"max_s": 3}, timeout=10) as feed:
        lines = feed.iter_lines()
        assert next(lines) == "event: hello"
        chat(first, "seen from the other server")
        records = [json.loads(line[6:]) for line in lines if line.startswith('data: {"id"')]
    assert "seen from the other server" in [record["prompt"] for record in records]
