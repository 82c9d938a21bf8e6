"""No request costs more than linear time: inputs that used to take the server seconds to minutes
(while every other stream waited) are answered at once, or refused with the bound they crossed.

Timings have generous bounds: the machine running the suite may be busy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mock_server import MockServer, steps
from mock_server.faults import parse_fault
from mock_server.overrides import Overrides
from mock_server.scenario import Scenario
from mock_server.timeline import RequestContext, compile_timeline


def chat(prompt: str) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}


def test_placing_thousands_of_faults_takes_linear_time() -> None:
    # Placing them pairwise took 16 s for these 5,000 (55 s for 10,000); requests are capped at 100.
    faults = tuple(parse_fault(f"delay@{n}:1") for n in range(5000))
    scenario = Scenario.model_validate({"name": "t", "reply": " ".join(["w"] * 5000)})
    start = time.perf_counter()
    timeline = compile_timeline(scenario, Overrides(faults=faults), RequestContext())
    assert time.perf_counter() - start < 2
    assert sum(isinstance(step, steps.Sleep) for step in timeline.steps) == 5000


@pytest.mark.parametrize(
    ("pattern", "prompt", "chosen"),
    [
        ("^(a|a)*$", "a" * 30 + "!", False),  # Python's re took 28 s, doubling with each more "a"
        ("^(a|aa)*c$", "a" * 40, False),  # 11 s
        ("(a?){25}a{25}", "a" * 26, True),
        ("^(a|a)*$", "a" * 9_999 + "!" + "a" * 10_000, False),  # a rule reads the first 10,000 characters
    ],
    ids=["a|a", "a|aa", "optional-then-required", "long-prompt"],
)
def test_no_match_pattern_takes_long_on_a_prompt_that_almost_matches(
    make_server: Callable[..., MockServer], pattern: str, prompt: str, chosen: bool
) -> None:
    server = make_server()
    server.add_scenario("hostile", match={"prompt": pattern}, reply="matched")
    start = time.perf_counter()
    response = httpx.post(server.url + "/v1/chat/completions", json=chat(prompt), timeout=10)
    assert time.perf_counter() - start < 2
    assert response.status_code == 200
    assert (response.headers["x-mock-scenario"] == "hostile") is chosen
