"""New connections wait while the loop is behind (`mock_server/http/admission.py`): on a clock of the
test's own, then through `serve` on real sockets."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from mock_server.http.admission import (
    BEAT_S,
    BEHIND_S,
    IDLE_BEATS,
    LONGEST_WAIT_S,
    ON_TIME_BEATS,
    PER_BEAT,
    STRAIGHT_IN,
    AdmissionGate,
)
from tests.conftest import cli_server


@dataclass
class _Handle:
    callback: Callable[[], object] | None

    def cancel(self) -> None:
        self.callback = None


@dataclass
class FakeLoop:
    """A loop's clock and timers that move only when the test says, each timer as late as it says."""

    now: float = 100.0
    _timers: list[tuple[float, int, _Handle]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object], /) -> _Handle:
        handle = _Handle(callback)
        heapq.heappush(self._timers, (when, next(self._order), handle))
        return handle

    def beat(self, late: float = 0.0) -> None:
        """Run the next timer, `late` seconds after it was due."""
        while self._timers:
            when, _, handle = heapq.heappop(self._timers)
            if handle.callback is not None:
                self.now = when + late
                handle.callback()
                return
        raise AssertionError("no timer is set")

    @property
    def pending(self) -> int:
        return sum(1 for _, _, handle in self._timers if handle.callback is not None)


class FakeTransport:
    def __init__(self) -> None:
        self.reading = True
        self.closing = False
        self.protocol: asyncio.BaseProtocol | None = None

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


class Inner(asyncio.Protocol):
    """The HTTP protocol's stand-in: what it was told, in order."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.heard: list[object] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.heard.append(("made", transport))

    def data_received(self, data: bytes) -> None:
        self.heard.append(data)

    def eof_received(self) -> None:
        self.heard.append("eof")


class Connections:
    """A gate on a fake loop, and the connections the test opens through it as the loop server would:
    the protocol first, its `connection_made` a moment later."""

    def __init__(self, room: int = 10_000) -> None:
        self.loop = FakeLoop()
        self.numbers = itertools.count()
        self.inner: list[Inner] = []
        self.pacing = True
        self.gate = AdmissionGate(self.loop, self._make, lambda: room - len(self.let_in()), lambda: self.pacing)

    def _make(self) -> Inner:
        inner = Inner(next(self.numbers))
        self.inner.append(inner)
        return inner

    def open(
        self, count: int, data: bytes | None = b"GET / HTTP/1.1\r\n\r\n"
    ) -> list[tuple[asyncio.Protocol, FakeTransport]]:
        opened = []
        for _ in range(count):
            protocol = self.gate.protocol()
            opened.append((protocol, FakeTransport()))
        for protocol, transport in opened:
            transport.protocol = protocol
            protocol.connection_made(transport)  # type: ignore[arg-type]  # a fake transport
            if data is not None and transport.reading:
                protocol.data_received(data)
        return opened

    def let_in(self) -> list[int]:
        """The connections their HTTP protocol has heard of, by number."""
        return [inner.number for inner in self.inner if inner.heard]


def test_a_burst_reads_straight_in_s_worth_at_once_and_then_one_at_each_on_time_beat() -> None:
    connections = Connections()
    opened = connections.open(STRAIGHT_IN + 2)

    assert connections.let_in() == list(range(STRAIGHT_IN))
    assert connections.gate.waiting == 2
    waiting = [transport for protocol, transport in opened if not isinstance(protocol, Inner)]
    assert len(waiting) == 2
    assert not any(transport.reading for transport in waiting)

    connections.loop.beat()  # one request's start in a turn of the loop, not several
    assert connections.let_in() == list(range(STRAIGHT_IN + 1))
    connections.loop.beat()
    assert connections.let_in() == list(range(STRAIGHT_IN + 2))
    assert connections.gate.waiting == 0
    assert connections.gate.held == 2


def test_while_no_paced_stream_plays_no_one_waits_and_no_heartbeat_runs() -> None:
    connections = Connections()
    connections.pacing = False
    connections.open(STRAIGHT_IN * 3)
    assert connections.loop.pending == 0
    connections.open(STRAIGHT_IN)
    assert connections.let_in() == list(range(STRAIGHT_IN * 4))

    connections.pacing = True  # a paced stream has started: the gate holds from the next connection on
    connections.open(STRAIGHT_IN + 1)
    assert connections.loop.pending == 1
    assert connections.gate.waiting == 1


def test_once_no_paced_stream_plays_the_heartbeat_lets_the_waiting_in_then_stops() -> None:
    connections = Connections()
    connections.open(STRAIGHT_IN * 3)
    connections.loop.beat(late=BEHIND_S * 2)
    assert connections.gate.waiting == STRAIGHT_IN * 2

    connections.pacing = False  # the loop's lateness harms no stream now: the late beat does not count
    connections.loop.beat(late=BEHIND_S * 10)
    assert connections.let_in() == list(range(STRAIGHT_IN * 3))
    assert connections.loop.pending == 0
    connections.open(STRAIGHT_IN * 2)
    assert connections.gate.waiting == 0


def test_a_connection_let_in_hears_what_its_client_sent_while_it_waited() -> None:
    connections = Connections()
    connections.open(STRAIGHT_IN)
    ((protocol, transport),) = connections.open(1, data=None)
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    assert not transport.reading  # paused at its first bytes
    protocol.data_received(b"host: x\r\n\r\n")  # what the loop had read already
    protocol.eof_received()

    connections.loop.beat()

    inner = connections.inner[-1]
    assert inner.heard == [("made", transport), b"GET / HTTP/1.1\r\n", b"host: x\r\n\r\n", "eof"]
    assert transport.protocol is inner


def test_a_connection_that_reads_on_resumes_reading_once_let_in() -> None:
    connections = Connections()
    connections.open(STRAIGHT_IN)
    ((_, transport),) = connections.open(1)
    assert not transport.reading
    connections.loop.beat()
    assert transport.reading


def test_after_a_late_beat_no_one_comes_in_until_the_loop_has_kept_time_for_a_while() -> None:
    connections = Connections()
    connections.open(STRAIGHT_IN + 4)
    started = connections.loop.now

    connections.loop.beat(late=BEHIND_S * 1.5)
    assert connections.let_in() == list(range(STRAIGHT_IN))
    connections.open(2)  # no allowance after a late beat: they wait too
    for _ in range(ON_TIME_BEATS):
        connections.loop.beat(late=BEHIND_S / 4)  # on time, within the slack
        assert connections.let_in() == list(range(STRAIGHT_IN))

    connections.loop.beat()
    assert connections.loop.now - started < LONGEST_WAIT_S  # let in for keeping time, not for waiting long
    assert connections.let_in() == list(range(STRAIGHT_IN + PER_BEAT))
    assert connections.gate.waiting == 6 - PER_BEAT


def test_however_late_the_loop_runs_waiting_connections_come_in_every_longest_wait() -> None:
    connections = Connections()
    connections.open(STRAIGHT_IN + PER_BEAT * 2)
    started = connections.loop.now
    let_in_at = []
    while connections.gate.waiting:
        before = len(connections.let_in())
        connections.loop.beat(late=BEHIND_S * 3)
        if len(connections.let_in()) > before:
            let_in_at.append(connections.loop.now - started)
    assert len(let_in_at) == 2
    assert let_in_at[0] == pytest.approx(LONGEST_WAIT_S, abs=BEAT_S + BEHIND_S * 3)
    assert let_in_at[1] - let_in_at[0] == pytest.approx(LONGEST_WAIT_S, abs=BEAT_S + BEHIND_S * 3)


def test_after_an_on_time_beat_new_connections_come_straight_in_while_none_wait() -> None:
    connections = Connections()
    connections.open(STRAIGHT_IN)
    connections.loop.beat()
    connections.open(STRAIGHT_IN)
    assert connections.let_in() == list(range(STRAIGHT_IN * 2))
    assert connections.gate.held == 0


def test_a_client_that_left_while_waiting_is_passed_over_and_uses_no_place() -> None:
    connections = Connections()
    connections.open(STRAIGHT_IN)
    waiting = connections.open(PER_BEAT + 3)
    for protocol, transport in waiting[:3]:
        transport.closing = True
        protocol.connection_lost(None)

    connections.loop.beat()

    heard = connections.let_in()
    assert heard == list(range(STRAIGHT_IN)) + list(range(STRAIGHT_IN + 3, STRAIGHT_IN + 3 + PER_BEAT))


def test_a_connection_let_in_before_the_loop_has_made_it_is_handed_over_when_it_is() -> None:
    connections = Connections()
    connections.open(STRAIGHT_IN)
    protocol = connections.gate.protocol()  # its transport comes after the next beat
    connections.loop.beat()
    inner = connections.inner[-1]
    assert inner.heard == []

    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]  # a fake transport

    assert inner.heard == [("made", transport)]
    assert transport.reading


def test_stop_lets_every_waiting_connection_in_and_stops_the_heartbeat() -> None:
    connections = Connections()
    connections.open(STRAIGHT_IN * 4)
    connections.gate.stop()
    assert connections.let_in() == list(range(STRAIGHT_IN * 4))
    assert connections.loop.pending == 0
    connections.open(1)
    assert connections.let_in() == list(range(STRAIGHT_IN * 4 + 1))


def test_past_the_connection_limit_s_room_a_flood_comes_straight_in_for_the_limit_to_refuse() -> None:
    connections = Connections(room=STRAIGHT_IN + 5)  # the limit counts live connections, not waiting ones
    connections.open(STRAIGHT_IN)
    connections.open(8)
    assert connections.gate.waiting == 5  # with the STRAIGHT_IN live ones, the limit is reached
    assert len(connections.let_in()) == STRAIGHT_IN + 3


def test_the_heartbeat_runs_only_while_connections_come_or_wait() -> None:
    connections = Connections()
    assert connections.loop.pending == 0
    connections.open(1)
    assert connections.loop.pending == 1
    for _ in range(IDLE_BEATS):
        connections.loop.beat()
    assert connections.loop.pending == 0
    connections.open(STRAIGHT_IN + 1)
    assert connections.loop.pending == 1
    assert connections.loop.now == pytest.approx(100.0 + IDLE_BEATS * BEAT_S)


def _ask_all_at_once(port: int, count: int) -> list[bytes]:
    """`count` connections opened before any is read, each asking for the health check."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /_mock/health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")

        def answer(sock: socket.socket) -> bytes:
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(answer, sockets))
    finally:
        for sock in sockets:
            sock.close()


def test_serve_answers_every_connection_of_a_burst_many_times_a_beat_s_worth() -> None:
    with cli_server() as (_, url):
        port = int(url.rsplit(":", 1)[1])
        answers = _ask_all_at_once(port, STRAIGHT_IN * 20)
    assert len(answers) == STRAIGHT_IN * 20
    assert all(answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"}") for answer in answers), {
        answer[:40] for answer in answers
    }
