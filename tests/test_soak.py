"""A short soak (the full one is `python -m bench.soak`): a thousand random requests with faults and
clients hanging up anywhere leave no task, descriptor or thread behind, keep memory and the journal
bounded, and every journal record tells how its response really ended."""

from __future__ import annotations

import pytest

from bench.memory import run as run_memory_soak
from bench.soak import run_soak


@pytest.mark.slow
def test_a_thousand_faulty_requests_leave_nothing_behind() -> None:
    report = run_soak(1_000, concurrency=16, seed=8)
    assert report.problems == [], report.table()
    assert report.plans.keys() == {"read", "after_events", "after_head", "early", "mid_request"}
    assert report.outcomes.keys() == {
        "completed",
        "dropped",
        "reset",
        "stalled",
        "error_status",
        "client_disconnected",
    }


@pytest.mark.slow
def test_distinct_large_prompts_and_status_errors_leave_memory_flat() -> None:
    # The full one is `python -m bench.memory`; before the caches were bounded in bytes, this grew 1.7x.
    # Two quiet pauses in each batch: what the server froze in them is freed once evicted.
    assert run_memory_soak(large=150, short=5_000, max_growth=1.3, rounds=2) == 0
