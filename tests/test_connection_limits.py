"""Connections that would exhaust the server are stopped at the protocol, before the app sees them:
heads past the caps get 431 at once, requests that do not arrive in time are closed (408 when part
of one came), and past --max-connections new clients get 503 with Retry-After; real clients never
notice."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO

import httpx
import pytest
from click.testing import CliRunner
from openai import OpenAI

from mock_server.cli import main
from mock_server.http import server as server_module
from mock_server.http.limits import MAX_HEADER_BYTES, MAX_HEADERS, RateLimitedWarning
from mock_server.http.server import MockServer, connection_limits
from mock_server.http.state import MockState
from mock_server.settings import Settings
from tests.conftest import cli_server, wait_until
from tests.wire import Ending, WireResponse, connect, fetch, read_to_end, receive, request_head

TIMEOUT_S = 0.3
"""The request timeout of the timeout tests."""
JOURNALED = "/completions?messages=hi"
"""A target the journal records, to show that a refused request never reached the app."""
HALF_A_HEAD = b"GET /completions?messages=hi HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
HALF_A_BODY = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"messages": '
)


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def server_warnings() -> Iterator[list[str]]:
    """Warnings the servers log, whatever logging configuration an earlier test left behind."""
    handler = _Collected()
    logger = logging.getLogger("uvicorn.error")
    level = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def longest_gap(stream: WireResponse) -> float:
    """The longest time between two chunks of a stream."""
    return max(later - earlier for (earlier, _), (later, _) in itertools.pairwise(stream.chunks))


def assert_refused(response: WireResponse, status: int, error_type: str, says: str) -> None:
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    error = json.loads(response.body)["error"]
    assert error["type"] == error_type
    assert says in error["message"]


# Head caps


FILLER = [(f"X-Filler-{i:03}", "v") for i in range(MAX_HEADERS - 1)]  # with Host: exactly the cap
HOST_BYTES = len("host127.0.0.1")


def big_headers(total: int) -> list[tuple[str, str]]:
    """Two header fields whose names and values, with Host's, come to `total` bytes."""
    values = total - HOST_BYTES - 2 * len("X-Big-1")
    return [("X-Big-1", "v" * (values // 2)), ("X-Big-2", "v" * (values - values // 2))]


@pytest.mark.parametrize(
    ("at_cap", "past_cap", "says"),
    [
        (FILLER, [*FILLER, ("X-One-Too-Many", "v")], f"more than {MAX_HEADERS} header fields"),
        (big_headers(MAX_HEADER_BYTES), big_headers(MAX_HEADER_BYTES + 1), "over 64 KiB"),
    ],
    ids=["count", "bytes"],
)
def test_a_head_at_a_cap_is_served_and_one_past_it_is_answered_431(
    make_server: Callable[..., MockServer], at_cap: list[tuple[str, str]], past_cap: list[tuple[str, str]], says: str
) -> None:
    server = make_server()
    with connect(server.url) as sock:
        sock.sendall(request_head("/_mock/health", at_cap))
        assert receive(sock).status == 200
        sock.sendall(request_head(JOURNALED, past_cap))
        response = receive(sock, timeout=5)
        assert read_to_end(sock, timeout=5) == (b"", Ending.EOF)
    assert_refused(response, 431, "headers_too_large", says)
    assert server.records(settle_s=0) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "head",
    [
        request_head(JOURNALED, [(f"X-Big-{i}", "v" * 7 * 1024) for i in range(10)]),
        HALF_A_HEAD + b"v" * 70 * 1024,
        b"GET /completions?messages=" + b"a" * 70 * 1024,
    ],
    ids=["70 KiB of headers", "a header line that never ends", "a request line that never ends"],
)
def test_a_head_over_64_kib_is_answered_431_at_once(make_server: Callable[..., MockServer], head: bytes) -> None:
    server = make_server()
    with connect(server.url, timeout=5) as sock:
        sock.sendall(head)
        response = receive(sock, timeout=5)
        assert read_to_end(sock, timeout=5) == (b"", Ending.EOF)
    assert_refused(response, 431, "headers_too_large", "over 64 KiB")
    assert server.records(settle_s=0) == []


def test_80000_headers_are_refused_in_milliseconds_while_a_stream_keeps_its_timing(
    make_server: Callable[..., MockServer],
) -> None:
    server = make_server()
    head = request_head(JOURNALED, [(f"X-H{i:06}", "v") for i in range(80_000)])
    assert len(head) > 1 << 20
    with ThreadPoolExecutor(1) as pool:
        paced = pool.submit(fetch, server.url + "/completions?messages=hi&scenario=paced&chunk_ms=50", timeout=30)
        wait_until(lambda: [r for r in server.records(settle_s=0) if r.ending is not None], "the stream to start")
        start = time.monotonic()
        with connect(server.url, timeout=5) as sock:
            sock.sendall(head)
            response = receive(sock, timeout=5)
            answered_s = time.monotonic() - start
            assert read_to_end(sock, timeout=5) == (b"", Ending.EOF)
        stream = paced.result()
    assert_refused(response, 431, "headers_too_large", f"more than {MAX_HEADERS} header fields")
    assert answered_s < 2.0
    assert stream.ending is Ending.COMPLETE
    assert longest_gap(stream) < 0.5


@pytest.mark.slow
def test_sdk_and_httpx_clients_do_not_notice_tight_limits(make_server: Callable[..., MockServer]) -> None:
    server = make_server(request_timeout_s=TIMEOUT_S, max_connections=4)
    with OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        for pause_s in (1.5 * TIMEOUT_S, 0):  # the second on the kept-alive connection, after it idled
            stream = client.chat.completions.create(
                model="paced",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                extra_headers={"X-Mock-Chunk-Ms": "40"},
            )  # a stream longer than the request timeout
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            assert text == "one two three four five six seven eight nine ten"
            time.sleep(pause_s)
    with httpx.Client(base_url=server.url) as http:
        whole = http.post("/v1/chat/completions", json={"model": "default", "messages": "hi", "stream": False})
        assert whole.status_code == 200
        assert http.get("/_mock/health").status_code == 200


# Request read timeout


def test_a_connection_that_sends_nothing_is_closed_without_a_byte(make_server: Callable[..., MockServer]) -> None:
    server = make_server(request_timeout_s=TIMEOUT_S)
    with connect(server.url) as sock:
        start = time.monotonic()
        assert read_to_end(sock, timeout=5) == (b"", Ending.EOF)
        assert TIMEOUT_S - 0.05 < time.monotonic() - start < 2.5


@pytest.mark.parametrize("partial", [HALF_A_HEAD, HALF_A_BODY], ids=["half a head", "half a body"])
def test_a_request_that_stops_halfway_is_answered_408_then_closed(
    make_server: Callable[..., MockServer], partial: bytes
) -> None:
    server = make_server(request_timeout_s=TIMEOUT_S)
    with connect(server.url) as sock:
        sock.sendall(partial)
        response = receive(sock, timeout=5)
        assert read_to_end(sock, timeout=5) == (b"", Ending.EOF)
    assert_refused(response, 408, "request_timeout", f"within {TIMEOUT_S:g} s")
    assert server.records(settle_s=0) == []


def test_each_request_on_a_kept_alive_connection_has_the_whole_timeout(make_server: Callable[..., MockServer]) -> None:
    server = make_server(request_timeout_s=TIMEOUT_S)
    with connect(server.url) as sock:
        sock.sendall(request_head("/_mock/health"))
        assert receive(sock).status == 200
        time.sleep(1.5 * TIMEOUT_S)  # idle: uvicorn's keep-alive timeout is the one that applies
        head = request_head("/_mock/health")
        sock.sendall(head[:20])
        time.sleep(TIMEOUT_S / 3)  # the rest of the head comes later, well within the timeout
        sock.sendall(head[20:])
        assert receive(sock).status == 200


def _server_tasks(server: MockServer) -> int:
    async def count(state: MockState) -> int:
        return len(asyncio.all_tasks())

    return server._on_loop(count)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settles(probe: Callable[[], int], target: int) -> int:
    deadline = time.monotonic() + 3.0
    while (value := probe()) > target and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def test_timed_out_connections_leave_no_task_descriptor_or_thread(make_server: Callable[..., MockServer]) -> None:
    server = make_server(request_timeout_s=TIMEOUT_S)
    fetch(server.url + "/_mock/health")
    tasks, descriptors, threads = _server_tasks(server), _open_descriptors(), threading.active_count()
    sockets = [connect(server.url) for _ in range(30)]
    for index, sock in enumerate(sockets):
        sock.sendall([b"", HALF_A_HEAD, HALF_A_BODY][index % 3])
    deadline = time.monotonic() + 5
    for sock in sockets:
        _, ending = read_to_end(sock, timeout=max(0.0, deadline - time.monotonic()))
        assert ending is Ending.EOF
        sock.close()
    assert _settles(lambda: _server_tasks(server), tasks) <= tasks
    assert _settles(_open_descriptors, descriptors) <= descriptors
    assert _settles(threading.active_count, threads) <= threads


@pytest.mark.slow
def test_2000_slowloris_connections_are_reaped_while_a_stream_keeps_its_timing(
    make_server: Callable[..., MockServer],
) -> None:
    server = make_server(request_timeout_s=1.0)
    descriptors = _open_descriptors()
    sockets = [connect(server.url) for _ in range(2000)]
    for sock in sockets:
        sock.sendall(HALF_A_HEAD)
    with ThreadPoolExecutor(1) as pool:
        paced = pool.submit(fetch, server.url + "/completions?messages=hi&scenario=paced&chunk_ms=250", timeout=30)
        trickling = list(sockets)
        until = time.monotonic() + 2.5
        while trickling and time.monotonic() < until:  # a header byte per connection every 100 ms
            for sock in list(trickling):
                try:
                    sock.send(b"v")
                except OSError:  # closed by the server
                    trickling.remove(sock)
            time.sleep(0.1)
        stream = paced.result()
    answers = [read_to_end(sock, timeout=5)[0] for sock in sockets]
    for sock in sockets:
        sock.close()
    assert sum(answer.startswith(b"HTTP/1.1 408 ") for answer in answers) == len(sockets)
    assert stream.ending is Ending.COMPLETE
    assert longest_gap(stream) < 0.5
    assert _settles(_open_descriptors, descriptors) <= descriptors


# Connection limit


def _hold_connections(url: str, count: int) -> list[socket.socket]:
    """`count` kept-alive connections the server has certainly accepted (each has had an answer)."""
    held = []
    for _ in range(count):
        sock = connect(url)
        sock.sendall(request_head("/_mock/health"))
        assert receive(sock).status == 200
        held.append(sock)
    return held


def test_past_max_connections_a_client_gets_503_at_once_and_the_log_says_why_once(
    make_server: Callable[..., MockServer], server_warnings: list[str]
) -> None:
    server = make_server(max_connections=20)
    held = _hold_connections(server.url, 20)
    for _ in range(2):
        with connect(server.url) as extra:  # sends nothing
            response = receive(extra, timeout=5)
            assert read_to_end(extra, timeout=5) == (b"", Ending.EOF)
        assert_refused(response, 503, "too_many_connections", "--max-connections limit of 20 open connections")
        assert response.headers["retry-after"] == "1"
    assert [line for line in server_warnings if "refused" in line] == [
        "refused 1 connection(s) in the last 10 s: 20 are open, the --max-connections limit; "
        "clients were answered 503 with Retry-After"
    ]
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 5
    while (status := fetch(server.url + "/_mock/health").status) == 503 and time.monotonic() < deadline:
        time.sleep(0.02)  # until the server has seen the connections close
    assert status == 200


@pytest.mark.slow
def test_serve_refuses_past_max_connections_and_logs_it() -> None:
    with cli_server("--max-connections", "2") as (process, url):
        held = _hold_connections(url, 2)
        with connect(url) as extra:
            assert receive(extra, timeout=5).status == 503
        assert process.stdout is not None
        assert "refused 1 connection(s) in the last 10 s: 2 are open" in _read_until(process.stdout, "refused", 5)
        for sock in held:
            sock.close()


def _read_until(stream: IO[str], needle: str, timeout_s: float) -> str:
    """The output of a subprocess until a line holding `needle`, or whatever came in `timeout_s`."""
    seen = ""
    deadline = time.monotonic() + timeout_s
    while needle not in seen and select.select([stream], [], [], max(0.0, deadline - time.monotonic()))[0]:
        output = os.read(stream.fileno(), 65536)  # unbuffered: select() cannot see what a reader has buffered
        if not output:
            break
        seen += output.decode(errors="replace")
    return seen


def test_a_rate_limited_warning_logs_the_first_at_once_and_sums_up_the_rest(server_warnings: list[str]) -> None:
    async def flood() -> None:
        warning = RateLimitedWarning(lambda count: f"{count} happened", interval_s=0.05)
        for _ in range(5):
            warning.note()
        await asyncio.sleep(0.2)  # the four after the first are summed up at 0.05 s; this one is the next interval's
        warning.note()

    asyncio.run(flood())
    assert server_warnings == ["1 happened", "4 happened", "1 happened"]


def test_max_connections_is_lowered_to_what_the_open_file_limit_leaves_room_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 1024))
    limits = connection_limits(Settings(max_connections=10_000))
    assert 0 < limits.max_connections < 1024 - server_module.DESCRIPTOR_RESERVE
    assert "open-file limit (ulimit -n)" in limits.refused_connections.describe(1)
    assert "--max-connections is 10,000" in limits.refused_connections.describe(1)


def test_a_mock_server_never_changes_the_open_file_limit(make_server: Callable[..., MockServer]) -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    server = make_server(max_connections=10**9)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before
    assert fetch(server.url + "/_mock/health").status == 200


@pytest.mark.slow
def test_serve_raises_its_soft_open_file_limit_to_fit_max_connections() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard open-file limit ({hard}) leaves no room to raise the soft one")
    script = (
        "import resource; from mock_server.http.server import fit_open_file_limit; fit_open_file_limit(1500); "
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
        check=True,
    )
    assert int(result.stdout) >= 1500 + server_module.DESCRIPTOR_RESERVE


# Command line


def test_serve_maps_the_connection_flags_and_environment_to_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: list[Settings] = []

    def fake_run(app: object, settings: Settings, sock: socket.socket, on_ready: object) -> None:
        captured.append(settings)
        sock.close()

    monkeypatch.setattr("mock_server.cli.run_foreground", fake_run)
    runner = CliRunner()
    env = {"MOCK_LLM_REQUEST_TIMEOUT": "2.5", "MOCK_LLM_MAX_CONNECTIONS": "50"}
    assert runner.invoke(main, ["serve", "--port", "0"], env=env).exit_code == 0
    flags = ["serve", "--port", "0", "--request-timeout", "0.75", "--max-connections", "7"]
    assert runner.invoke(main, flags).exit_code == 0
    assert runner.invoke(main, ["serve", "--port", "0"]).exit_code == 0
    assert [(s.request_timeout_s, s.max_connections) for s in captured] == [(2.5, 50), (0.75, 7), (30.0, 10_000)]
    for bad in (["--request-timeout", "0"], ["--max-connections", "0"]):
        result = runner.invoke(main, ["serve", "--port", "0", *bad])
        assert result.exit_code == 2
        assert bad[0] in result.output


def test_serve_help_explains_the_connection_flags() -> None:
    output = re.sub(r"\s+", " ", CliRunner().invoke(main, ["serve", "--help"]).output)
    for text in (
        "--request-timeout SECONDS",
        "MOCK_LLM_REQUEST_TIMEOUT",
        "--max-connections N",
        "MOCK_LLM_MAX_CONNECTIONS",
    ):
        assert text in output
