"""A live stream's arrivals played on a `Player` (`wire/arrivals.py`): bytes passed on as they came are
written in the call that hands them over, or after what waits before them, at the upstream's timing."""

from __future__ import annotations

import asyncio

from mock_server.wire.actions import Wait
from mock_server.wire.arrivals import LivePlay, LiveSink
from mock_server.wire.player import Player, Stop


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A live source the test hands arrivals from."""

    def __init__(self) -> None:
        self.sink: LiveSink | None = None

    def start(self, sink: LiveSink) -> None:
        self.sink = sink

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_bytes_passed_on_after_a_faults_wait_keep_the_upstreams_timing() -> None:
    clock, written = Clock(), list[tuple[float, bytes]]()

    def write(data: bytes) -> bool:
        written.append((clock.now, data))
        return True

    player = Player((Wait(0.5),), write=write, clock=clock)
    assert player.resume() is Stop.SLEEP
    clock.now = 0.5
    assert player.resume() is Stop.END
    # Arrived at 0.2, during the wait: due 0.5 s later, as any event after the wait.
    assert not player.play_now(b"data: 1\n\n", 1, 0.2, None)
    clock.now = 0.7
    assert player.play_now(b"data: 1\n\n", 1, 0.2, None)
    assert (written, player.events_sent) == ([(0.7, b"data: 1\n\n")], 1)


class Writes:
    """What a play wrote: as any write, and as the body's last (`write_last`)."""

    def __init__(self) -> None:
        self.any: list[bytes] = []
        self.last: list[bytes] = []

    def write(self, data: bytes) -> bool:
        self.any.append(data)
        return True

    def write_last(self, data: bytes) -> bool:
        self.last.append(data)
        return True


def test_bytes_passed_on_are_written_at_once_unless_something_waits_before_them() -> None:
    writes = Writes()

    async def play() -> list[bytes]:
        loop = asyncio.get_running_loop()
        player = Player((), write=writes.write, clock=loop.time)
        source = Source()
        playing = asyncio.ensure_future(LivePlay(player, None, loop, writes.write_last).play(source))
        await asyncio.sleep(0)
        assert source.sink is not None
        source.sink.passed(b"data: 1\n\n", 1, loop.time(), False)
        at_once = list(writes.any)
        source.sink.arrived([Wait(0.05)], loop.time())  # a fault's wait
        source.sink.passed(b"data: 2\n\n", 1, loop.time(), False)
        source.sink.passed(b"data: 3\n\n", 1, loop.time(), True)
        at_once += writes.any[len(at_once) :]
        source.sink.ended()
        assert await playing is Stop.END
        assert player.events_sent == 3
        return at_once

    assert asyncio.run(play()) == [b"data: 1\n\n"]
    # What waited behind the fault follows in order; the last is written as the last only when it goes at once.
    assert (writes.any, writes.last) == ([b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"], [])


def test_the_last_bytes_passed_on_at_once_are_written_as_the_last() -> None:
    writes = Writes()

    async def play() -> None:
        loop = asyncio.get_running_loop()
        source = Source()
        player = Player((), write=writes.write, clock=loop.time)
        playing = asyncio.ensure_future(LivePlay(player, None, loop, writes.write_last).play(source))
        await asyncio.sleep(0)
        assert source.sink is not None
        source.sink.passed(b"data: 1\n\n", 1, loop.time(), False)
        source.sink.passed(b"data: 2\n\n", 1, loop.time(), True)
        source.sink.ended()
        assert await playing is Stop.END

    asyncio.run(play())
    assert (writes.any, writes.last) == ([b"data: 1\n\n"], [b"data: 2\n\n"])
