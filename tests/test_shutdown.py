"""Graceful shutdown: SIGTERM, Ctrl-C (SIGINT) and `MockServer.stop()` end every connection at once,
whatever it is doing (a stall, a paced stream, a whole response waiting, an idle keep-alive, a body
still arriving), and the process exits 0 well within the grace time."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from mock_server.http.app import create_app
from mock_server.http.server import MockServer, uvicorn_config
from mock_server.scenarios.catalog import Catalog
from mock_server.settings import DEFAULT_SHUTDOWN_GRACE_S, Settings
from tests.conftest import cli_server, wait_until
from tests.wire import Ending, WireResponse, fetch

GRACE_S = DEFAULT_SHUTDOWN_GRACE_S
WHOLE_BODY = {"model": "default", "messages": "hi", "stream": False}


@dataclass
class Busy:
    """Connections doing everything a shutdown must end."""

    stalled: Future[WireResponse]
    paced: Future[WireResponse]
    waiting_whole: Future[WireResponse]
    idle: socket.socket
    uploading: socket.socket


def keep_alive_idle(url: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=15)
    sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    response = b""
    while not response.endswith(b"}"):  # the whole JSON answer, so that nothing is left to read
        response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 200")
    return sock


def half_sent_body(url: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=15)
    sock.sendall(b'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"messages": ')
    return sock


def start_busy(pool: ThreadPoolExecutor, url: str) -> Busy:
    busy = Busy(
        stalled=pool.submit(fetch, url + "/completions?messages=hi&fault=stall@1", timeout=30),
        paced=pool.submit(fetch, url + "/completions?messages=a+b+c+d+e+f&chunk_ms=1000", timeout=30),
        waiting_whole=pool.submit(
            fetch,
            url + "/v1/chat/completions",
            method="POST",
            body=WHOLE_BODY,
            headers={"X-Mock-First-Chunk-Ms": "60000"},
            timeout=30,
        ),
        idle=keep_alive_idle(url),
        uploading=half_sent_body(url),
    )
    wait_until(lambda: under_way(url), "the three responses to be in flight, the streams played up to their stall", 10)
    return busy


def under_way(url: str) -> bool:
    """Three responses in flight, and the streams among them playing, each past its stall if it has one."""
    records = httpx.get(url + "/_mock/requests", params={"settle_ms": 0}).json()
    in_flight = [r for r in records if r["outcome"] is None]
    streams = [r for r in in_flight if r["ending"] is not None]
    now = time.time()
    stalled = all(now >= r["received_at"] + r["stall_at_ms"] / 1000 for r in streams if r["stall_at_ms"] is not None)
    return len(in_flight) == 3 and len(streams) == 2 and stalled


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def assert_every_connection_ended(busy: Busy) -> None:
    with busy.idle, busy.uploading:
        assert_connections_ended(busy)


def assert_connections_ended(busy: Busy) -> None:
    stalled, paced = busy.stalled.result(), busy.paced.result()
    assert (stalled.ending, paced.ending) == (Ending.COMPLETE, Ending.COMPLETE)  # a clean end of the body
    assert stalled.data
    assert paced.data
    assert "[DONE]" not in stalled.data + paced.data  # but not the stream's own end
    with pytest.raises(ConnectionError, match="no HTTP response head"):
        busy.waiting_whole.result()  # the whole response never came: closed before its first byte
    assert closed_by_server(busy.idle)
    assert closed_by_server(busy.uploading)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_every_connection_and_exits_0_within_the_grace_time(sig: signal.Signals) -> None:
    with cli_server() as (process, url), ThreadPoolExecutor(3) as pool:
        busy = start_busy(pool, url)
        began = time.monotonic()
        process.send_signal(sig)
        assert process.wait(GRACE_S + 5) == 0
        assert time.monotonic() - began < GRACE_S
        assert_every_connection_ended(busy)


def test_stop_ends_every_connection_within_the_grace_time_and_records_how(
    make_server: Callable[..., MockServer],
) -> None:
    server = make_server()
    with ThreadPoolExecutor(3) as pool:
        busy = start_busy(pool, server.url)
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < GRACE_S
        assert_every_connection_ended(busy)
    assert server.app is not None
    records = asyncio.run(server.app.state.journal.records())  # the server has stopped: its journal in memory stays
    outcomes = {record.query.get("fault", record.path): record.outcome for record in records}
    assert outcomes == {"stall@1": "stalled", "/completions": "dropped", "/v1/chat/completions": "dropped"}


def test_the_grace_time_is_what_uvicorn_waits_for_requests_that_do_not_end() -> None:
    app = create_app(Settings(bundled_scenarios=False, default_scenario="x"), Catalog([]))
    assert uvicorn_config(app, Settings()).timeout_graceful_shutdown == GRACE_S == 5.0
    assert uvicorn_config(app, Settings(shutdown_grace_s=0.3)).timeout_graceful_shutdown == 0.3
