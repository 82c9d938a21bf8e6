"""The bench's load client times each event by when it reached the client's socket, not by when the
client got round to reading it: a client kept from its core must not make the server look late."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time

import pytest
import uvloop

from bench import load

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the kernel's receive stamps are Linux's")

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _serve_two_events(listener: socket.socket, sent: list[float]) -> None:
    """One answer: an event at once, another 100 ms later (its send time kept in `sent`), then the end."""
    connection, _ = listener.accept()
    with connection:
        connection.recv(65536)
        connection.sendall(HEAD + _chunk(b"data: one\n\n"))
        time.sleep(0.1)
        sent.append(time.perf_counter())
        connection.sendall(_chunk(b"data: two\n\n"))
        time.sleep(0.5)
        connection.sendall(b"0\r\n\r\n")


async def _read_while_busy(port: int) -> load.Probe:
    """Read one answer while the client's loop is kept busy from 20 ms to 420 ms."""
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, time.sleep, 0.4)
    (probe,) = await load.run_streams(port, load.http_request("/stream"), 1, timeout=10, stamped=True)
    return probe


def test_an_event_is_timed_when_it_reached_the_socket_though_the_client_read_it_late() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sent: list[float] = []
        server = threading.Thread(target=_serve_two_events, args=(listener, sent))
        server.start()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            probe = runner.run(_read_while_busy(listener.getsockname()[1]))
        server.join()
    assert probe.completed
    assert probe.events == 2
    second = probe.event_time(1)
    assert second is not None
    assert abs(second - sent[0]) < 0.05  # read some 300 ms later: the loop was asleep
    assert max(probe.read_lags) > 0.2


def test_a_probe_to_a_port_nobody_listens_on_is_refused() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner, pytest.raises(ConnectionRefusedError):
            runner.run(load.run_streams(port, load.http_request("/stream"), 3, timeout=10))


def _serve_events(listener: socket.socket, clients: int) -> None:
    """Each of `clients` answers: three events, a read's worth apart, then the end."""
    connections = []
    for _ in range(clients):
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(HEAD)
        connections.append(connection)
    for index in range(3):
        for connection in connections:
            connection.sendall(_chunk(b"data: %d\n\n" % index))
        time.sleep(0.05)
    for connection in connections:
        connection.sendall(b"0\r\n\r\n")
        connection.close()


def test_many_probes_are_read_to_their_end_from_one_loop() -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        server = threading.Thread(target=_serve_events, args=(listener, 40))
        server.start()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            port = listener.getsockname()[1]
            probes = runner.run(load.run_streams(port, load.http_request("/stream"), 40, timeout=10, stamped=True))
        server.join()
    assert [(probe.completed, probe.events) for probe in probes] == [(True, 3)] * 40
