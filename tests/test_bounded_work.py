"""No request costs more than linear time: inputs that used to take the server seconds to minutes
(while every other stream waited) are answered at once, or refused with the bound they crossed.

Timings have generous bounds: the machine running the suite may be busy."""

from __future__ import annotations

import time

from mock_server import steps
from mock_server.faults import parse_fault
from mock_server.overrides import Overrides
from mock_server.scenario import Scenario
from mock_server.timeline import RequestContext, compile_timeline


def test_placing_thousands_of_faults_takes_linear_time() -> None:
    # Placing them pairwise took 16 s for these 5,000 (55 s for 10,000); requests are capped at 100.
    faults = tuple(parse_fault(f"delay@{n}:1") for n in range(5000))
    scenario = Scenario.model_validate({"name": "t", "reply": " ".join(["w"] * 5000)})
    start = time.perf_counter()
    timeline = compile_timeline(scenario, Overrides(faults=faults), RequestContext())
    assert time.perf_counter() - start < 2
    assert sum(isinstance(step, steps.Sleep) for step in timeline.steps) == 5000
