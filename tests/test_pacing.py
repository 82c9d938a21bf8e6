"""Exact timing: waits are scheduled against one deadline per stream, so lateness does not accumulate.

Both ways a stream is played are driven in fake time: the timer callbacks that serve every chunked
stream on uvicorn (`play_on_timers`, through its `Timers` seam) and the coroutine of the ASGI
fallback (through its `clock` and `sleep`).
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
import weakref
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from bench.chunk_path import FakeTime, FakeTimer
from mock_server.http.server import MockServer
from mock_server.settings import Settings
from mock_server.wire.actions import Action, Wait, Write
from mock_server.wire.pacing import Booking, PacingWheel, wheel_of
from mock_server.wire.player import KEEPALIVE, TIMER_SLACK_S, Player, Stop
from mock_server.wire.transport import StreamResponse, play_on_timers
from tests.conftest import TEST_SCENARIOS
from tests.wire import connect, fetch, request_head

LATE_S = 0.002
"""How late a wake-up may be: the fake clocks here are late by this much (or up to it)."""
EPSILON = 1e-9
KEEPALIVE_S = 0.1
LAG_S = 0.050
ROUNDED_S = 0.0005
"""How far from its moment the `PacingWheel` may set a wake-up: to the nearest millisecond, as uvloop does."""


class LateTimers(FakeTime):
    """An event loop's clock and timers in fake time (a `transport.Timers`): a timer fires only when
    `fire_next` says so, late by a random amount up to `LATE_S`, as on a busy loop."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self._random = random.Random(seed)

    @property
    def pending(self) -> bool:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return bool(self._timers)

    def fire_next(self) -> None:
        timer = heapq.heappop(self._timers)
        self.now = max(self.now, timer.when + self._random.uniform(0, LATE_S))
        timer.callback()


class LaggingClient(FlowControl):
    """uvicorn's flow control over a client whose buffer fills every `every` writes: writing pauses,
    and the play must wait in `drain` until the client has read, `LAG_S` later in fake time."""

    def __init__(self, timers: LateTimers, every: int) -> None:
        super().__init__(asyncio.Transport())
        self.timers = timers
        self.every = every
        self.writes = 0
        self.waiting = False
        self.read_at: list[float] = []

    def wrote(self) -> None:
        assert not self.write_paused, "written while the client's buffer was full"
        self.writes += 1
        if self.writes % self.every == 0:
            self.pause_writing()

    async def drain(self) -> None:
        self.waiting = self.write_paused
        await super().drain()

    def read(self) -> None:
        self.timers.now += LAG_S
        self.read_at.append(self.timers.now)
        self.waiting = False
        self.resume_writing()


@dataclass
class Sent:
    at: float
    data: bytes


def play_on_late_timers(
    actions: tuple[Action, ...],
    timers: LateTimers,
    keepalive_s: float | None = None,
    client: LaggingClient | None = None,
) -> list[Sent]:
    """Every write of `actions` played by `play_on_timers` on `timers`, with its moment in fake time."""
    sent: list[Sent] = []

    def write(data: bytes) -> bool:
        if client is not None:
            client.wrote()
        sent.append(Sent(timers.now, data))
        return True

    async def play() -> Stop:
        player = Player(actions, write=write, clock=timers.time, keepalive_s=keepalive_s)
        playing = asyncio.ensure_future(play_on_timers(player, client, timers))
        while True:
            for _ in range(100):  # let the play run on until it ends or waits for a timer or the client
                if playing.done() or timers.pending or (client is not None and client.waiting):
                    break
                await asyncio.sleep(0)
            else:
                raise AssertionError("the play neither ended nor waited for anything")
            if playing.done():
                return playing.result()
            if timers.pending:
                timers.fire_next()
            else:
                assert client is not None
                client.read()

    assert asyncio.run(play()) is Stop.END
    return sent


def deadlines(actions: tuple[Action, ...]) -> list[float]:
    """When each write is due: the sum of the waits before it."""
    due, moment = [], 0.0
    for action in actions:
        if isinstance(action, Wait):
            moment += action.seconds
        elif isinstance(action, Write):
            due.append(moment)
    return due


def random_waits(seed: int, count: int = 1000) -> tuple[Action, ...]:
    """`count` waits of 0 to 20 ms (some in a row, half of no time at all), most followed by an event."""
    rng = random.Random(seed)
    actions: list[Action] = []
    for index in range(count):
        actions.append(Wait(rng.choice((0.0, rng.uniform(0, 0.020)))))
        if rng.random() < 0.8:
            actions.append(Write(b"data: %d\n\n" % index, 1))
    actions.append(Write(b"data: [DONE]\n\n", 1))
    return tuple(actions)


@pytest.mark.parametrize("seed", range(3))
def test_timers_firing_late_delay_no_write_by_more_than_one_wake_up(seed: int) -> None:
    actions = random_waits(seed)
    sent = play_on_late_timers(actions, LateTimers(seed))
    assert [s.data for s in sent] == [a.data for a in actions if isinstance(a, Write)]
    for write, due in zip(sent, deadlines(actions), strict=True):
        # Never early (but for the slack that keeps a timer firing a hair early from spinning), and
        # late by one wake-up at most, however many late wake-ups came before: no error accumulates.
        assert due - TIMER_SLACK_S <= write.at <= due + LATE_S + EPSILON


@pytest.mark.parametrize("seed", range(3))
def test_timers_ping_only_when_the_line_has_been_quiet_for_the_keepalive_interval(seed: int) -> None:
    rng = random.Random(seed)
    pings_in = {  # a wait of 103 ms may ping just before its deadline, or not, as the wake-ups fall
        Wait(0.010): {0},
        Wait(0.090): {0},
        Wait(0.103): {0, 1},
        Wait(0.350): {3},
        Wait(0.350, keepalive=False): {0},
    }
    waits = [rng.choice(list(pings_in)) for _ in range(400)]
    actions = tuple(action for index, wait in enumerate(waits) for action in (wait, Write(b"data: %d\n\n" % index, 1)))
    sent = play_on_late_timers(actions, LateTimers(seed), keepalive_s=KEEPALIVE_S)
    events = [s for s in sent if s.data != KEEPALIVE]
    for write, due in zip(events, deadlines(actions), strict=True):
        assert due - TIMER_SLACK_S <= write.at <= due + LATE_S + EPSILON  # pings never hold an event back
    pings_per_wait: list[int] = []
    pings, quiet_since = 0, 0.0
    for write in sent:
        quiet_for = write.at - quiet_since
        if write.data == KEEPALIVE:
            assert KEEPALIVE_S <= quiet_for <= KEEPALIVE_S + LATE_S + EPSILON
            pings += 1
        else:
            pings_per_wait.append(pings)
            pings = 0
        quiet_since = write.at
    counted = list(zip(waits, pings_per_wait, strict=True))
    assert [(index, wait, pings) for index, (wait, pings) in enumerate(counted) if pings not in pings_in[wait]] == []
    assert {pings for wait, pings in counted if wait == Wait(0.103)} == {0, 1}


@pytest.mark.parametrize("seed", range(3))
def test_timers_stop_while_the_client_lags_and_the_schedule_resumes_unshifted(seed: int) -> None:
    actions = random_waits(seed)
    timers = LateTimers(seed)
    client = LaggingClient(timers, every=50)
    sent = play_on_late_timers(actions, timers, client=client)  # a write while paused fails in `wrote`
    assert [s.data for s in sent] == [a.data for a in actions if isinstance(a, Write)]
    assert len(client.read_at) == (len(sent) - 1) // client.every  # waited each time, but after the last write
    for write, due in zip(sent, deadlines(actions), strict=True):
        read_before = max((at for at in client.read_at if at <= write.at), default=0.0)
        # What fell due while the client lagged goes out as soon as it has read; the rest on time.
        assert due - TIMER_SLACK_S <= write.at <= max(due, read_before) + LATE_S + EPSILON
    assert any(write.at > due + LATE_S for write, due in zip(sent, deadlines(actions), strict=True))  # it did lag


class SlowClock:
    """A clock whose every sleep wakes `LATE_S` late, as a busy event loop would."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + LATE_S
        await asyncio.sleep(0)


def play_with(clock: SlowClock, ops: tuple[Any, ...], keepalive_s: float | None = None) -> list[tuple[float, bytes]]:
    sent: list[tuple[float, bytes]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        if message.get("body"):
            sent.append((clock(), message["body"]))

    response = StreamResponse(ops, headers=[], keepalive_s=keepalive_s, clock=clock, sleep=clock.sleep)
    asyncio.run(response({"type": "http", "state": {}}, receive, send))
    return sent


def test_lateness_does_not_accumulate_over_a_long_stream() -> None:
    clock = SlowClock()
    ops = tuple(op for i in range(1000) for op in (Wait(0.010), Write(b"x", 1)))
    sent = play_with(clock, ops)
    assert len(sent) == 1000
    for index, (at, _) in enumerate(sent):
        due = (index + 1) * 0.010
        assert due <= at <= due + LATE_S + 1e-9  # late by one wake-up at most, never by the sum


def test_keepalive_pings_fill_a_long_wait() -> None:
    clock = SlowClock()
    sent = play_with(clock, (Wait(1.0), Write(b"data: x\n\n", 1)), keepalive_s=0.3)
    assert [body for _, body in sent] == [b": ping\n\n"] * 3 + [b"data: x\n\n"]
    assert 1.0 <= sent[-1][0] <= 1.0 + LATE_S


@pytest.mark.slow
def test_a_paced_stream_on_the_wire_keeps_its_schedule(server: MockServer) -> None:
    start = time.monotonic()
    response = fetch(server.url + "/completions?messages=x&scenario=long-reply&chunk_ms=2")
    elapsed = time.monotonic() - start
    chunks = len(response.data) - 3  # role chunk, finish chunk, [DONE]
    assert chunks >= 700
    assert elapsed >= chunks * 0.002
    assert elapsed < chunks * 0.002 * 2 + 1  # generous: the schedule does not drift by a wake-up per chunk


class CountingTimers(LateTimers):
    """`LateTimers` that count the timers set on them."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.set = 0

    def call_at(self, when: float, callback: Callable[[], object], /) -> FakeTimer:
        self.set += 1
        return super().call_at(when, callback)


def play_together(streams: int, actions: tuple[Action, ...], timers: LateTimers) -> list[list[Sent]]:
    """Each write of `streams` plays of `actions` started at once on one `PacingWheel` over `timers`."""
    wheel = PacingWheel(timers)
    sent: list[list[Sent]] = [[] for _ in range(streams)]

    def writer(index: int) -> Callable[[bytes], bool]:
        def write(data: bytes) -> bool:
            sent[index].append(Sent(timers.now, data))
            return True

        return write

    async def play() -> None:
        players = [Player(actions, write=writer(i), clock=wheel.time) for i in range(streams)]
        playing = asyncio.gather(*(play_on_timers(player, None, wheel) for player in players))
        while not playing.done():
            await asyncio.sleep(0)
            if timers.pending:
                timers.fire_next()
        assert set(await playing) == {Stop.END}

    asyncio.run(play())
    assert wheel.booked == wheel.ticks == 0
    return sent


def test_streams_due_in_the_same_millisecond_share_one_loop_timer() -> None:
    actions = tuple(a for i in range(50) for a in (Wait(0.020), Write(b"data: %d\n\n" % i, 1)))
    timers = CountingTimers(0)
    sent = play_together(100, actions, timers)
    assert timers.set <= 51  # a timer per chunk's millisecond, not 100 x 50 of them
    for writes in sent:
        assert [s.data for s in writes] == [a.data for a in actions if isinstance(a, Write)]
        for write, due in zip(writes, deadlines(actions), strict=True):
            assert due - TIMER_SLACK_S <= write.at <= due + ROUNDED_S + LATE_S + EPSILON


@pytest.mark.parametrize("seed", range(3))
def test_streams_on_one_wheel_keep_their_own_schedules(seed: int) -> None:
    streams = [random_waits(seed * 10 + i, count=200) for i in range(5)]
    timers = LateTimers(seed)
    wheel = PacingWheel(timers)
    sent: list[list[Sent]] = [[] for _ in streams]

    async def play() -> None:
        def writer(index: int) -> Callable[[bytes], bool]:
            def write(data: bytes) -> bool:
                sent[index].append(Sent(timers.now, data))
                return True

            return write

        players = [Player(a, write=writer(i), clock=wheel.time) for i, a in enumerate(streams)]
        playing = asyncio.gather(*(play_on_timers(player, None, wheel) for player in players))
        while not playing.done():
            await asyncio.sleep(0)
            if timers.pending:
                timers.fire_next()
        await playing

    asyncio.run(play())
    for actions, writes in zip(streams, sent, strict=True):
        assert [s.data for s in writes] == [a.data for a in actions if isinstance(a, Write)]
        for write, due in zip(writes, deadlines(actions), strict=True):
            assert due - TIMER_SLACK_S <= write.at <= due + ROUNDED_S + LATE_S + EPSILON


def test_a_cancelled_wake_up_leaves_the_wheel_and_the_last_one_takes_the_timer_with_it() -> None:
    timers = LateTimers(0)
    wheel = PacingWheel(timers)
    called: list[str] = []
    first = wheel.call_at(0.0101, lambda: called.append("first"))
    second = wheel.call_at(0.0099, lambda: called.append("second"))  # the same millisecond: one timer
    assert (wheel.booked, wheel.ticks, len(timers._timers)) == (2, 1, 1)
    first.cancel()
    assert (wheel.booked, wheel.ticks, timers.pending) == (1, 1, True)
    second.cancel()
    assert (wheel.booked, wheel.ticks, timers.pending) == (0, 0, False)
    wheel.call_at(0.010, lambda: called.append("third"))
    timers.fire_next()
    assert called == ["third"]
    assert (wheel.booked, wheel.ticks) == (0, 0)


class Noted(Booking):
    """A booking that notes its name in `calls` each time it is called."""

    __slots__ = ("__weakref__", "calls", "name")

    def __init__(self, name: str, calls: list[str]) -> None:
        super().__init__()
        self.name = name
        self.calls = calls

    def __call__(self) -> None:
        self.calls.append(self.name)


def test_a_booking_is_its_own_timer_and_booked_again_moves_to_its_new_tick() -> None:
    timers = LateTimers(0)
    wheel = PacingWheel(timers)
    calls: list[str] = []
    booking = Noted("moved", calls)
    assert wheel.call_at(0.010, booking) is booking
    assert wheel.call_at(0.020, booking) is booking
    assert (wheel.booked, wheel.ticks) == (1, 1)
    while timers.pending:
        timers.fire_next()
    assert calls == ["moved"]
    assert timers.now >= 0.020


def test_a_cancelled_booking_is_let_go_at_once_while_its_tick_waits_for_the_others() -> None:
    timers = LateTimers(0)
    wheel = PacingWheel(timers)
    calls: list[str] = []
    cancelled = Noted("cancelled", calls)
    wheel.call_at(0.010, cancelled)
    wheel.call_at(0.010, Noted("kept", calls))
    let_go = weakref.ref(cancelled)
    cancelled.cancel()
    del cancelled
    assert let_go() is None
    assert (wheel.booked, wheel.ticks) == (1, 1)
    timers.fire_next()
    assert calls == ["kept"]


def test_a_booking_cancelled_by_one_before_it_in_its_tick_is_skipped_and_the_rest_are_called() -> None:
    timers = LateTimers(0)
    wheel = PacingWheel(timers)
    calls: list[str] = []
    later = Noted("later", calls)
    wheel.call_at(0.010, later.cancel)
    wheel.call_at(0.010, later)
    wheel.call_at(0.010, Noted("last", calls))
    timers.fire_next()
    assert calls == ["last"]


def test_a_client_leaving_mid_stream_takes_its_stream_off_the_wheel() -> None:
    settings = Settings(port=0, scenario_dirs=(TEST_SCENARIOS,), access_log=False)
    with MockServer(settings=settings) as server:
        loop = server._server.loop  # type: ignore[union-attr]
        assert loop is not None

        def wheel_counts() -> tuple[int, int]:
            async def read() -> tuple[int, int]:
                wheel = wheel_of(asyncio.get_running_loop())
                return wheel.booked, wheel.ticks

            return asyncio.run_coroutine_threadsafe(read(), loop).result(5)

        target = "/completions?messages=hi&scenario=paced&chunk_ms=30000"
        clients = [connect(server.url) for _ in range(5)]
        for sock in clients:
            sock.sendall(request_head(target))
            received = b""
            while received.count(b"\n\n") < 2:  # the first events: the stream now sleeps 30 s on the wheel
                received += sock.recv(65536)
        assert wheel_counts()[0] == 5
        for sock in clients:
            sock.close()
        deadline = time.monotonic() + 10
        while wheel_counts() != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert wheel_counts() == (0, 0)


def test_a_callback_that_raises_leaves_the_others_of_its_millisecond_on_time() -> None:
    timers = LateTimers(0)
    wheel = PacingWheel(timers)
    called: list[str] = []
    reported: list[BaseException] = []

    def fail() -> None:
        raise RuntimeError("a bug in one stream")

    async def fire() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context["exception"]))
        wheel.call_at(0.010, lambda: called.append("before"))
        wheel.call_at(0.010, fail)
        wheel.call_at(0.010, lambda: called.append("after"))
        timers.fire_next()

    asyncio.run(fire())
    assert called == ["before", "after"]
    assert [str(exc) for exc in reported] == ["a bug in one stream"]
