"""The server's own CPU per paced chunk, from its tick to the transport's write:
`python -m bench.chunk_path [--streams N] [--rounds R] [--cold]`.

`--streams` paced streams of the bench's shape (`CHUNKS` chunks `CHUNK_MS` apart) play in this process
on one `PacingWheel`, over timers in fake time that fire one after the other with no wait between,
each stream through a `tcp.Connection` (with uvicorn's flow control) whose transport keeps nothing.
What is timed (this thread's CPU time) is the path each chunk of a paced stream takes in the server:
the wheel, the player, the connection; neither the system call that sends it nor the machine's other
load. With `--cold`, the CPU's caches are emptied between ticks (that work is not counted), as the
20 ms between two chunks of a stream empty them in a server holding a thousand. Prints each round's
CPU per chunk in microseconds, then their least, median and most.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from uvicorn.protocols.http.flow_control import FlowControl

from bench.measures import CHUNK_MS, CHUNKS
from mock_server.wire.actions import Action, Wait, Write
from mock_server.wire.pacing import PacingWheel
from mock_server.wire.player import Player, Stop
from mock_server.wire.tcp import Connection
from mock_server.wire.transport import play_on_timers

EVENT = b"data: " + b"x" * 248 + b"\n\n"
"""About the size of one of the bench's chat completion chunks."""
CACHE_BYTES = 64 << 20
"""What is copied between ticks with `--cold`: more than any CPU cache holds."""


class _Sink(asyncio.Transport):
    """A transport that counts what is written to it and keeps nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False


@dataclass(order=True)
class FakeTimer:
    """A timer of fake time, ordered by when it is due, then by when it was set."""

    when: float
    order: int
    callback: Callable[[], object] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeTime:
    """A loop's clock and timers in fake time: `run` fires each timer, in order, as if it were due now."""

    def __init__(self, between: Callable[[], None] | None = None) -> None:
        self.now = 0.0
        self._timers: list[FakeTimer] = []
        self._order = itertools.count()
        self._between = between

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object], /) -> FakeTimer:
        timer = FakeTimer(when, next(self._order), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def run(self) -> None:
        while self._timers:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.now = max(self.now, timer.when)
            timer.callback()
            if self._between is not None:
                self._between()


@dataclass
class Round:
    """One round's CPU per chunk (us), and the bytes its streams wrote."""

    chunk_us: float
    written: int


async def play_round(streams: int, chunks: int = CHUNKS, *, cold: bool = False, freeze: bool = False) -> Round:
    """`streams` streams of `chunks` paced chunks played at once; the CPU per chunk of their ticks. With
    `freeze`, what lives when they start is frozen meanwhile, out of the young collections' way, as the
    server's collector keeps it (not in a process whose objects are not the bench's own)."""
    big, copy = (bytearray(CACHE_BYTES), bytearray(CACHE_BYTES)) if cold else (bytearray(), bytearray())
    emptying = 0.0

    def empty_caches() -> None:
        nonlocal emptying
        started = time.thread_time()
        copy[:] = big
        emptying += time.thread_time() - started

    fake = FakeTime(empty_caches if cold else None)
    wheel = PacingWheel(fake)
    actions: tuple[Action, ...] = tuple(a for _ in range(chunks) for a in (Wait(CHUNK_MS / 1000), Write(EVENT, 1)))
    sinks = [_Sink() for _ in range(streams)]
    plays = []
    for sink in sinks:
        connection = Connection(sink, FlowControl(sink))
        player = Player(actions, write=connection.write_chunk, write_last=connection.end_chunks, clock=wheel.time)
        plays.append(play_on_timers(player, connection.flow, wheel))
    playing = asyncio.gather(*plays)
    await asyncio.sleep(0)  # each play books its first chunk
    if freeze:
        gc.collect()
        gc.freeze()
    try:
        started = time.thread_time()
        fake.run()
        spent = time.thread_time() - started - emptying
    finally:
        if freeze:
            gc.unfreeze()
    assert set(await playing) == {Stop.END}
    return Round(spent / (streams * chunks) * 1e6, sum(sink.written for sink in sinks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=2000, help="paced streams per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--cold", action="store_true", help="empty the CPU's caches between ticks")
    options = parser.parse_args()
    import uvloop

    per_chunk = []
    for _ in range(options.rounds):
        measured = uvloop.run(play_round(options.streams, cold=options.cold, freeze=True))
        per_chunk.append(measured.chunk_us)
        print(f"{measured.chunk_us:6.3f} us per chunk")
    print(
        f"least {min(per_chunk):.3f}  median {statistics.median(per_chunk):.3f}  most {max(per_chunk):.3f} us per chunk"
    )


if __name__ == "__main__":
    main()
