"""Keeping CPython's cyclic garbage collector out of the streams' way, in the process `serve` owns.

A full pass of the collector walks every tracked object that is alive and pauses every stream while
it does: with the caches, the journal, FastAPI's part of the app and 500 open streams, 20-60 ms, to
find nothing, since streams leave no reference cycles (tests/test_garbage.py). So what has lived
through serving is moved out of its way (`gc.freeze()`): at start, and again each time the server
has been quiet for a second after serving, once a collection has freed whatever garbage there was.
What is frozen is only walked again when it has grown by half since it last was, so that cycles
that die after being frozen are freed and memory stays bounded.

Only for the process `serve` owns: a `MockServer` shares its process with a test suite, whose
objects are not ours to freeze (frozen cycles would hide from the suite's own `gc.collect()`).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

QUIET_S = 1.0
"""How long the server must have answered nothing before its survivors are frozen: a collection
first walks what is not frozen yet, and a request arriving meanwhile would wait for it."""
FULL_PASSES_EVERY = 100
"""Full passes run after this many collections of the middle generation (CPython's default is 10):
each one walks what is not frozen, the open streams' objects among it."""
REFROZEN_GROWTH = 1.5
"""How much the frozen objects may grow before they are collected again along with the rest."""


class Collector:
    """When the collector's survivors are frozen; `tick()` is called a few times a second."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._requests_seen = 0
        self._requests_frozen = 0
        self._quiet_since = clock()
        self._frozen_after_full = 0

    def start(self) -> None:
        """Freeze what start-up left, without a collection first: it leaves a few dozen garbage objects,
        and a pass over the ~50,000 it keeps would add some 40 ms to start-up (the first quiet second
        after serving walks everything, and frees them)."""
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_PASSES_EVERY)

    def tick(self, requests: int, busy: bool) -> None:
        """`requests`: how many the server has taken since start; `busy`: whether it is answering any."""
        now = self._clock()
        if busy or requests != self._requests_seen:
            self._requests_seen = requests
            self._quiet_since = now
        elif requests != self._requests_frozen and now - self._quiet_since >= QUIET_S:
            self._requests_frozen = requests
            self.freeze_survivors()

    def freeze_survivors(self) -> None:
        """Free the garbage there is and freeze the rest; with the frozen objects as well when they have
        grown by half since they were last collected."""
        with_frozen = gc.get_freeze_count() > self._frozen_after_full * REFROZEN_GROWTH
        if with_frozen:
            gc.unfreeze()
        gc.collect()
        gc.freeze()
        if with_frozen:
            self._frozen_after_full = gc.get_freeze_count()
