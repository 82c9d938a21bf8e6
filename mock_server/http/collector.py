"""Keeping CPython's cyclic garbage collector out of the streams' way, in the process `serve` owns.

A collection pauses every stream while it walks its generations. Streams leave no reference cycles
(tests/test_garbage.py): what a stream made is freed by its last reference going, and a walk over
what lives finds nothing to free. So what lives is moved out of the walks' way (`gc.freeze()`):
- at start, what start-up made;
- after each collection of the young generation, what it found alive: the middle and old
  generations then stay empty, and their collections (1-2 ms each, and 27-53 ms for a full one,
  measured at 1,000 streams) walk nothing;
- while the server answers anything, the young generation is collected every `YOUNG_EVERY_S`.
  CPython starts one when allocations outnumber frees by 700, and while streams end, their frees
  hold that count down as the next streams' objects pile up: the young generation was found at
  6,000-15,000 objects, and walking it paused every stream for 2-9 ms.

What is frozen is walked again, with a full collection, when it has grown by half since it last
was: once the server has been quiet for a second, or when it has been busy without a quiet second
for `BUSY_FULL_PASS_S`. So cycles that die after being frozen are freed, and memory stays bounded.

Only for the process `serve` owns: a `MockServer` shares its process with a test suite, whose
objects are not ours to freeze (frozen cycles would hide from the suite's own `gc.collect()`).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any, Protocol

QUIET_S = 1.0
"""How long the server must have answered nothing before a full collection may run: a request
arriving meanwhile would wait for it."""
BUSY_FULL_PASS_S = 300.0
"""How long the server may be busy without a quiet second before a full collection runs anyway (when
what is frozen has grown by half): the memory that cycles freed after freezing hold is bounded."""
YOUNG_EVERY_S = 0.010
"""How often the young generation is collected while the server answers anything."""
FULL_PASSES_EVERY = 100
"""Full passes run after this many collections of the middle generation (CPython's default is 10)."""
REFROZEN_GROWTH = 1.5
"""How much the frozen objects may grow before they are collected again along with the rest."""


class Timer(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Timer]


def _on_running_loop(delay: float, callback: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay, callback)


class Collector:
    """When the young generation is collected and its survivors frozen; `tick()` is called a few times
    a second with whether the server is busy."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, call_later: CallLater = _on_running_loop) -> None:
        self._clock = clock
        self._call_later = call_later
        self._requests_seen = 0
        self._requests_collected = 0
        self._quiet_since = clock()
        self._full_pass_at = clock()
        self._frozen_after_full = 0
        self._busy = False
        self._young_timer: Timer | None = None

    def start(self) -> None:
        """Freeze what start-up left, without a collection first: it leaves a few dozen garbage objects,
        and a pass over the ~50,000 it keeps would add some 40 ms to start-up (the first quiet second
        after serving walks everything, and frees them). From now on, what each collection of the
        young generation finds alive is frozen too."""
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_PASSES_EVERY)
        gc.callbacks.append(_freeze_young_survivors)

    def stop(self) -> None:
        """Collect as CPython does again (the process goes on after `serve`, in a test)."""
        if _freeze_young_survivors in gc.callbacks:
            gc.callbacks.remove(_freeze_young_survivors)
        if self._young_timer is not None:
            self._young_timer.cancel()
            self._young_timer = None

    def tick(self, requests: int, busy: bool) -> None:
        """`requests`: how many the server has taken since start; `busy`: whether it is answering any."""
        now = self._clock()
        self._busy = busy or requests != self._requests_seen
        if self._busy:
            self._requests_seen = requests
            self._quiet_since = now
            if self._young_timer is None:
                self._young_timer = self._call_later(YOUNG_EVERY_S, self._collect_young)
            if now - self._full_pass_at >= BUSY_FULL_PASS_S:
                self.full_pass(only_when_grown=True)
        elif requests != self._requests_collected and now - self._quiet_since >= QUIET_S:
            self._requests_collected = requests
            self.full_pass(only_when_grown=False)

    def _collect_young(self) -> None:
        if not self._busy:
            self._young_timer = None
            return
        gc.collect(0)
        self._young_timer = self._call_later(YOUNG_EVERY_S, self._collect_young)

    def full_pass(self, *, only_when_grown: bool) -> None:
        """Free the garbage there is and freeze the rest; with the frozen objects as well when they
        have grown by half since they were last collected (and only then, with `only_when_grown`)."""
        self._full_pass_at = self._clock()
        with_frozen = gc.get_freeze_count() > self._frozen_after_full * REFROZEN_GROWTH
        if only_when_grown and not with_frozen:
            return
        global _full_pass_running
        _full_pass_running = True  # another thread's young collection would freeze it all again
        try:
            if with_frozen:
                gc.unfreeze()
            gc.collect()
            gc.freeze()
        finally:
            _full_pass_running = False
        if with_frozen:
            self._frozen_after_full = gc.get_freeze_count()


_full_pass_running = False
"""While a full pass runs: what is unfrozen for it stays so until it has been walked."""


def _freeze_young_survivors(phase: str, info: dict[str, Any]) -> None:
    """A `gc.callbacks` entry: after a collection of the young generation, freeze what it found alive."""
    if phase == "stop" and info["generation"] == 0 and not _full_pass_running:
        gc.freeze()
