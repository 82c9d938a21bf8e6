"""MockServer: ready when start() returns, gone without a trace after stop(), and the test-facing API."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import mock_server
from mock_server import MockServer, ScenarioError, ServerError
from mock_server.settings import Settings
from tests.conftest import wait_until
from tests.wire import Ending, fetch

START_BOUND_S = 1.0  # generous: a start takes ~10 ms on a quiet machine


def open_fds() -> set[tuple[str, str]]:
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the directory listing's own descriptor, closed already
            fds.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
    return fds


def test_public_api_is_declared_and_importable():
    assert "MockServer" in mock_server.__all__
    assert "RequestRecord" in mock_server.__all__
    for name in mock_server.__all__:
        assert getattr(mock_server, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = mock_server.Nope


def test_server_answers_as_soon_as_start_returns():
    server = MockServer()
    began = time.perf_counter()
    server.start()
    try:
        ready_after = time.perf_counter() - began
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
        assert ready_after < START_BOUND_S
    finally:
        server.stop()


def test_start_and_stop_leave_no_thread_and_no_socket():
    MockServer().start().stop()  # the first server of a process opens libuv's process-wide signal pipe
    for thread in threading.enumerate():  # and starts building the tokenizer, once per process
        if thread.name == "mock-llm-sse:tokenizer":
            thread.join()
    threads, fds = set(threading.enumerate()), open_fds()

    server = MockServer().start()
    with httpx.Client() as client:  # a kept-alive connection, and a stream the client leaves half-read
        assert client.get(server.url + "/_mock/health").status_code == 200
        with client.stream("GET", server.url + "/completions?messages=hi&scenario=slow-chunks") as response:
            next(response.iter_bytes())
            server.stop()

    assert set(threading.enumerate()) == threads
    assert open_fds() == fds


def stalled(server: MockServer) -> bool:
    """Whether one of `server`'s streams has reached its stall."""
    now = time.time()
    return any(
        r.stall_at_ms is not None and now >= r.received_at + r.stall_at_ms / 1000 for r in server.records(settle_s=0)
    )


def test_stop_ends_a_stream_that_stalls_forever():
    server = MockServer().start()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(fetch, server.url + "/completions?messages=hi&fault=stall@1", timeout=30)
        wait_until(lambda: stalled(server), "the stream to reach its stall")
        began = time.monotonic()
        server.stop()
        response = pending.result()
    assert time.monotonic() - began < 5
    assert response.ending is Ending.COMPLETE
    assert not server.running


def test_context_manager_starts_and_stops():
    with MockServer(port=0) as server:
        assert server.running
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.openai_base_url == server.url + "/v1"
        assert httpx.get(server.url + "/_mock/health").json()["status"] == "ok"
    assert not server.running
    with pytest.raises(ServerError, match="not running"):
        _ = server.url


def test_keywords_win_over_settings():
    server = MockServer(port=0, settings=Settings(port=8383, journal_size=7))
    assert server.settings.port == 0
    assert server.settings.journal_size == 7


def test_misuse_is_refused_with_a_clear_error():
    server = MockServer()
    with pytest.raises(ServerError, match="not running"):
        server.stop()
    with pytest.raises(ServerError, match="not running"):
        server.add_scenario(reply="hi")
    with server, pytest.raises(ServerError, match="already running"):
        server.start()


def test_a_busy_port_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerError, match=rf"cannot listen on 127\.0\.0\.1:{port}: .*port=0 picks a free one"):
            MockServer(port=port).start()


def test_invalid_scenario_directory_fails_start_with_every_problem(tmp_path):
    (tmp_path / "a.yaml").write_text("reply: hi\nchunk_ms: -1\n")
    (tmp_path / "b.yaml").write_text("replly: hi\n")
    with pytest.raises(ScenarioError) as caught:
        MockServer(scenarios=[tmp_path]).start()
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'a.yaml'}:2: chunk_ms: -1 is less than 0; use a number of milliseconds (0 or more)",
        f"{tmp_path / 'b.yaml'}:1: unknown field 'replly'; did you mean 'reply'?",
    ]


def test_add_scenario_takes_a_name_a_mapping_or_nothing(server):
    assert server.add_scenario("named-by-argument", reply="one") == "named-by-argument"
    assert server.add_scenario({"name": "named-in-mapping", "reply": "two"}) == "named-in-mapping"
    assert server.add_scenario(name="named-by-keyword", reply="three") == "named-by-keyword"
    generated = server.add_scenario(reply="four")
    assert generated.startswith("scenario-")
    for name, reply in [("named-by-argument", "one"), ("named-in-mapping", "two"), (generated, "four")]:
        assert fetch(f"{server.url}/completions?messages=x&scenario={name}").content() == reply


def test_add_scenario_lists_every_problem(server):
    with pytest.raises(ScenarioError) as caught:
        server.add_scenario("bad", chunk_ms=-1, faults=[{"kind": "dorp"}], name_typo=1)
    assert len(caught.value.problems) == 3
    assert {p.path for p in caught.value.problems} == {("chunk_ms",), ("faults", 0, "kind"), ("name_typo",)}
    assert all(str(p).startswith("add_scenario(): ") for p in caught.value.problems)


def test_add_scenario_refuses_two_different_names(server):
    with pytest.raises(ScenarioError, match="name: 'other' differs from 'first'"):
        server.add_scenario("first", name="other")


def test_last_request_without_requests_says_so(make_server):
    server = make_server()
    with pytest.raises(ServerError, match=r"No request has reached the mock server at http://127\.0\.0\.1:"):
        _ = server.last_request


def test_reset_forgets_records_runtime_scenarios_and_times_counters(make_server):
    server = make_server()
    name = server.add_scenario(reply="ok", faults=[{"kind": "status", "status": 503, "times": 1}])
    url = f"{server.url}/completions?messages=x&scenario={name}"
    assert [fetch(url).status for _ in range(2)] == [503, 200]
    server.reset()
    assert server.requests == []
    assert fetch(url).status == 404
    server.add_scenario(name, reply="ok", faults=[{"kind": "status", "status": 503, "times": 1}])
    assert fetch(url).status == 503
