"""A short soak (the full one is `python -m bench.soak`): a thousand random requests with faults and
clients hanging up anywhere leave no task, descriptor or thread behind, keep memory and the journal
bounded, and every journal record tells how its response really ended."""

from __future__ import annotations

import pytest

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
