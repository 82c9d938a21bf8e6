"""What lives through serving is frozen out of the cyclic collector's way: what each collection of the
young generation finds alive, and what lives once the server is quiet, so that no collection walks
much; the young generation is collected often while the server is busy; garbage is freed first,
frozen cycles that die are freed later, and a `MockServer` never freezes its test suite's objects."""

from __future__ import annotations

import gc
import json
import socket
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator

import pytest

from mock_server.http.collector import BUSY_FULL_PASS_S, QUIET_S, REFROZEN_GROWTH, YOUNG_EVERY_S, Collector
from mock_server.http.server import MockServer
from tests.wire import fetch

SLACK = 0.1
"""How much more the tests grow the frozen objects than the collector's threshold: frozen objects of
the test process's other threads (a `MockServer`'s) may die meanwhile, and the count with them."""


class Node:
    """An object that can sit in a reference cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.other: object = self


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Timers:
    """Timers that fire when the test says (`fire()`): those due on the clock, in the order set."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.due: list[tuple[float, Callable[[], None], Handle]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        handle = Handle()
        self.due.append((self.clock.now + delay, callback, handle))
        return handle

    def fire(self) -> None:
        ready = [t for t in self.due if t[0] <= self.clock.now and not t[2].cancelled]
        self.due = [t for t in self.due if t[0] > self.clock.now and not t[2].cancelled]
        for _, callback, _ in ready:
            callback()

    @property
    def pending(self) -> int:
        return sum(not handle.cancelled for _, _, handle in self.due)


class Handle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def collector() -> Iterator[tuple[Collector, Clock, Timers]]:
    """A collector on a clock and timers the test moves; the process's collector as it was afterwards."""
    threshold = gc.get_threshold()
    clock = Clock()
    timers = Timers(clock)
    watch = Collector(clock, timers.call_later)
    try:
        yield watch, clock, timers
    finally:
        watch.stop()
        gc.unfreeze()
        gc.set_threshold(*threshold)


def quiet_after_serving(collector: Collector, clock: Clock, requests: int) -> None:
    collector.tick(requests, busy=True)
    collector.tick(requests, busy=False)
    clock.now += QUIET_S
    collector.tick(requests, busy=False)


def objects_to_grow_the_frozen_ones_by_half() -> list[list[int]]:
    """New objects enough to take the frozen ones past the collector's REFROZEN_GROWTH, with SLACK
    to spare, once they are frozen too."""
    return [[] for _ in range(int(gc.get_freeze_count() * (REFROZEN_GROWTH - 1 + SLACK)) + 1)]


def walked_by_a_full_pass(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_what_serving_left_is_frozen_once_the_server_is_quiet(collector: tuple[Collector, Clock, Timers]) -> None:
    watch, clock, _ = collector
    watch.start()
    gc.disable()  # no young collection (which would freeze them) before the quiet second
    try:
        cached: list[list[int]] = [[] for _ in range(1000)]  # what a request leaves in the caches and the journal
        assert walked_by_a_full_pass(cached)
        quiet_after_serving(watch, clock, requests=1)
    finally:
        gc.enable()
    assert not walked_by_a_full_pass(cached)
    assert gc.get_freeze_count() > len(cached)


def test_what_a_young_collection_finds_alive_is_frozen(collector: tuple[Collector, Clock, Timers]) -> None:
    watch, _, _ = collector
    watch.start()
    playing: list[list[int]] = [[] for _ in range(10)]  # an open stream's objects
    gc.collect(0)
    assert not walked_by_a_full_pass(playing)
    watch.stop()
    later: list[list[int]] = [[] for _ in range(10)]
    gc.collect(0)
    assert walked_by_a_full_pass(later), "stopped: collections are CPython's own again"


def test_the_young_generation_is_collected_often_while_busy_and_not_when_idle(
    collector: tuple[Collector, Clock, Timers],
) -> None:
    watch, clock, timers = collector
    watch.start()
    young_collections = gc.get_stats()[0]["collections"]
    watch.tick(1, busy=True)
    for _ in range(5):
        clock.now += YOUNG_EVERY_S
        timers.fire()
    assert gc.get_stats()[0]["collections"] - young_collections >= 5
    watch.tick(1, busy=False)
    clock.now += YOUNG_EVERY_S
    timers.fire()
    assert timers.pending == 0, "idle: no timer wakes the loop"


def test_no_full_collection_runs_while_streams_play_or_requests_keep_coming(
    collector: tuple[Collector, Clock, Timers],
) -> None:
    watch, clock, _ = collector
    watch.start()
    cycle = weakref.ref(Node())
    gc.freeze()  # as a young collection would have frozen it, before it died
    for second in range(10):
        clock.now += QUIET_S
        watch.tick(1, busy=True)  # a long stream
        watch.tick(2 + second, busy=False)  # a request a second
    assert cycle() is not None


def test_a_server_busy_for_long_frees_its_frozen_cycles_once_they_have_grown_by_half(
    collector: tuple[Collector, Clock, Timers],
) -> None:
    watch, clock, _ = collector
    watch.start()
    quiet_after_serving(watch, clock, requests=1)  # the first quiet second walks everything
    cycle = weakref.ref(Node())
    gc.freeze()
    clock.now += BUSY_FULL_PASS_S
    watch.tick(2, busy=True)
    assert cycle() is not None, "frozen, and the frozen objects have not grown"
    grown = objects_to_grow_the_frozen_ones_by_half()
    gc.freeze()
    clock.now += BUSY_FULL_PASS_S / 2
    watch.tick(3, busy=True)
    assert cycle() is not None, "not busy for long enough since the last look"
    clock.now += BUSY_FULL_PASS_S / 2
    watch.tick(4, busy=True)
    assert cycle() is None
    del grown


def test_a_young_collection_in_another_thread_during_a_full_pass_freezes_nothing_of_it(
    collector: tuple[Collector, Clock, Timers], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch, clock, _ = collector
    watch.start()
    cycle = weakref.ref(Node())
    gc.freeze()
    unfreeze = gc.unfreeze

    def unfreeze_then_a_young_collection() -> None:
        unfreeze()
        gc.collect(0)  # as another thread's allocations (the store's, a MockServer's) would start one

    monkeypatch.setattr(gc, "unfreeze", unfreeze_then_a_young_collection)
    quiet_after_serving(watch, clock, requests=1)
    assert cycle() is None


def test_garbage_is_freed_not_frozen(collector: tuple[Collector, Clock, Timers]) -> None:
    watch, clock, _ = collector
    watch.start()
    cycle = weakref.ref(Node())
    assert cycle() is not None
    quiet_after_serving(watch, clock, requests=1)
    assert cycle() is None


def test_frozen_cycles_that_die_are_freed_once_the_frozen_objects_grow_by_half(
    collector: tuple[Collector, Clock, Timers],
) -> None:
    watch, clock, _ = collector
    watch.start()
    quiet_after_serving(watch, clock, requests=1)  # the first quiet second walks everything
    kept = Node()
    cycle = weakref.ref(kept)
    quiet_after_serving(watch, clock, requests=2)
    del kept
    quiet_after_serving(watch, clock, requests=3)
    assert cycle() is not None, "frozen, and the frozen objects have not grown"
    grown = objects_to_grow_the_frozen_ones_by_half()
    quiet_after_serving(watch, clock, requests=4)  # frozen: now they have grown
    quiet_after_serving(watch, clock, requests=5)
    assert cycle() is None
    del grown


def test_a_mock_server_freezes_none_of_its_test_suites_objects(server: MockServer) -> None:
    for _ in range(3):
        assert fetch(server.url + "/completions?messages=hi").status == 200
    assert gc.get_freeze_count() == 0


SERVE_AND_LOOK = """
import gc, os, signal, sys, threading, time, urllib.request, json
from mock_server.cli import main

def client(url):
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/_mock/health").read()
            break
        except OSError:
            time.sleep(0.05)
    for _ in range(20):
        urllib.request.urlopen(url + "/completions?messages=hi").read()
    records = json.loads(urllib.request.urlopen(url + "/_mock/requests").read())
    deadline = time.monotonic() + 30
    walked = sum(type(o).__name__ == "RequestRecord" for o in gc.get_objects())
    while walked and time.monotonic() < deadline:
        time.sleep(0.2)
        walked = sum(type(o).__name__ == "RequestRecord" for o in gc.get_objects())
    print(json.dumps({"records": len(records), "walked": walked, "frozen": gc.get_freeze_count()}))
    os.kill(os.getpid(), signal.SIGINT)

port = sys.argv[1]
threading.Thread(target=client, args=(f"http://127.0.0.1:{port}",), daemon=True).start()
main(["serve", "--port", port, "--log-level", "warning"], prog_name="mock-llm-sse")
"""


def test_serve_freezes_the_journals_records_once_quiet() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-c", SERVE_AND_LOOK, str(port)], capture_output=True, text=True, timeout=60
    )
    look = json.loads(result.stdout.splitlines()[-1])
    assert look["records"] >= 20
    assert look["walked"] == 0, "a full collection would still walk the journal's records"
    assert look["frozen"] > 0
