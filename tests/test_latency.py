"""`latency:`: time to first token and between tokens drawn from distributions (or a measured
preset), seeded, computed into the timeline before the stream starts."""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import httpx
import pytest
from openai import OpenAI

from mock_server.errors import ScenarioError
from mock_server.http.server import MockServer
from mock_server.scenarios import steps
from mock_server.scenarios.delays import MAX_DELAY_MS
from mock_server.scenarios.latency import PRESETS, Latency
from mock_server.scenarios.loading import parse_document
from mock_server.scenarios.model import Scenario, load_scenario
from mock_server.timeline.compile import RequestContext, Timeline, compile_timeline
from mock_server.timeline.latency import draw, step_tokens
from mock_server.timeline.overrides import Overrides, parse_overrides
from mock_server.timeline.tokens import count_tokens

REPLY = "The quick brown fox jumps over the lazy dog, and then it naps in the warm afternoon sun."
LOGNORMAL = {
    "ttft_ms": {"dist": "lognormal", "median": 800, "p95": 2000},
    "itl_ms": {"dist": "lognormal", "median": 30, "p95": 90},
}


def compile_(fields: dict[str, Any], overrides: Overrides | None = None, **context: Any) -> Timeline:
    scenario = Scenario.model_validate({"name": "t", "reply": REPLY, **fields})
    return compile_timeline(scenario, overrides or Overrides(), RequestContext(prompt="hi", **context))


def sleeps(timeline: Timeline) -> list[float]:
    return [step.ms for step in timeline.steps if isinstance(step, steps.Sleep)]


def test_lognormal_latency_gives_one_schedule_per_seed() -> None:
    first = sleeps(compile_({"latency": LOGNORMAL, "seed": 7}))
    again = sleeps(compile_({"latency": LOGNORMAL, "seed": 7}))
    other = sleeps(compile_({"latency": LOGNORMAL, "seed": 8}))
    chunks = len(REPLY.split())
    assert first == again
    assert first != other
    assert len(first) == chunks + 1  # before each chunk and before the finish
    assert len(set(first)) == len(first)
    assert first[0] > max(first[1:])  # the time to first token dwarfs the waits between tokens


def test_the_requests_seed_override_draws_another_schedule() -> None:
    scenario_seed = sleeps(compile_({"latency": LOGNORMAL, "seed": 7}))
    request_seed = sleeps(compile_({"latency": LOGNORMAL, "seed": 7}, Overrides(seed=8)))
    assert request_seed != scenario_seed
    assert request_seed == sleeps(compile_({"latency": LOGNORMAL, "seed": 8}))


def test_each_wait_has_a_stream_of_its_own_so_other_settings_do_not_shift_it() -> None:
    base = sleeps(compile_({"latency": LOGNORMAL, "seed": 3}))
    other_itl = sleeps(compile_({"latency": {**LOGNORMAL, "itl_ms": {"dist": "fixed", "ms": 5}}, "seed": 3}))
    other_ttft = sleeps(compile_({"latency": {**LOGNORMAL, "ttft_ms": {"dist": "fixed", "ms": 5}}, "seed": 3}))
    faulted = sleeps(
        compile_({"latency": LOGNORMAL, "seed": 3, "faults": [{"kind": "duplicate", "at": 2, "probability": 0.5}]})
    )
    assert other_itl[0] == base[0]
    assert other_ttft[1:] == base[1:]
    assert faulted == base


@pytest.mark.parametrize(
    ("distribution", "check"),
    [
        ({"dist": "fixed", "ms": 42}, lambda d: set(d) == {42}),
        (
            {"dist": "uniform", "min": 10, "max": 30},
            lambda d: 10 <= min(d) < 10.1 and 29.9 < max(d) <= 30 and abs(statistics.fmean(d) - 20) < 0.2,
        ),
        (
            {"dist": "normal", "mean": 100, "sd": 15},
            lambda d: abs(statistics.fmean(d) - 100) < 0.5 and abs(statistics.stdev(d) - 15) < 0.5,
        ),
        (
            {"dist": "lognormal", "median": 800, "p95": 2000},
            lambda d: abs(statistics.median(d) / 800 - 1) < 0.03 and abs(_percentile(d, 95) / 2000 - 1) < 0.04,
        ),
    ],
    ids=["fixed", "uniform", "normal", "lognormal"],
)
def test_draws_match_their_distributions_parameters(distribution: dict[str, Any], check: Any) -> None:
    latency = Latency.model_validate({"ttft_ms": distribution})
    assert latency.ttft_ms is not None
    rng = random.Random(1)
    drawn = [draw(latency.ttft_ms, rng) for _ in range(20_000)]
    assert check(drawn), (statistics.fmean(drawn), statistics.median(drawn), _percentile(drawn, 95))


def test_a_normal_draw_below_zero_waits_zero_and_a_long_tail_stops_at_the_delay_bound() -> None:
    rng = random.Random(2)
    normal = Latency.model_validate({"ttft_ms": {"dist": "normal", "mean": 5, "sd": 20}}).ttft_ms
    tail = Latency.model_validate({"ttft_ms": {"dist": "lognormal", "median": 1_000_000, "p95": 3_000_000}}).ttft_ms
    assert normal is not None
    assert tail is not None
    low = [draw(normal, rng) for _ in range(2000)]
    high = [draw(tail, rng) for _ in range(2000)]
    assert min(low) == 0
    assert low.count(0) > 500
    assert max(high) == MAX_DELAY_MS


def _percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1]


def test_tokens_per_s_gives_each_chunk_the_time_its_tokens_take() -> None:
    timeline = compile_({"latency": {"ttft_ms": {"dist": "fixed", "ms": 100}, "tokens_per_s": 50}})
    chunks = [step for step in timeline.steps if isinstance(step, steps.Text)]
    waits = sleeps(timeline)
    assert waits[0] == 100
    assert waits[1:-1] == [step_tokens(chunk, None) * 20 for chunk in chunks[1:]]
    assert waits[-1] == 20  # the finish: one token, the end of text
    assert step_tokens(steps.Text(" afternoon"), None) == count_tokens(" afternoon")


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_load_by_name_and_pace_the_stream(name: str) -> None:
    scenario = load_scenario(parse_document(f"name: p\nlatency: {name}\nreply: {REPLY}", "p.yaml"))
    assert scenario.latency == PRESETS[name]
    waits = sleeps(compile_timeline(scenario, Overrides(), RequestContext(prompt="hi")))
    assert waits[0] > 100
    assert min(waits[1:]) >= 1
    assert max(waits[1:]) < 200


def test_presets_get_slower_from_fast_to_overloaded() -> None:
    fast, typical, overloaded = (PRESETS[name] for name in ("fast", "typical", "overloaded"))
    assert fast.ttft_ms is not None
    assert typical.ttft_ms is not None
    assert overloaded.ttft_ms is not None
    medians = [getattr(p.ttft_ms, "median", 0) for p in (fast, typical, overloaded)]
    rates = [p.tokens_per_s or 0 for p in (fast, typical, overloaded)]
    assert medians == sorted(medians)
    assert rates == sorted(rates, reverse=True)


def test_a_request_may_ask_for_a_preset_and_replace_one_wait() -> None:
    overrides = parse_overrides({"latency": "overloaded", "first_chunk_ms": "5"}, {})
    assert overrides.latency == PRESETS["overloaded"]
    waits = sleeps(compile_({"chunk_ms": 10}, overrides))
    assert waits[0] == 5
    assert waits[1:] != [10] * (len(waits) - 1)  # paced by the preset's rate, not the scenario's chunk_ms
    chunked = sleeps(compile_({"latency": "typical"}, parse_overrides({"chunk_ms": "3"}, {})))
    assert chunked[0] > 100
    assert chunked[1:] == [3] * (len(chunked) - 1)


def test_items_of_an_answer_wait_only_before_the_answer() -> None:
    waits = sleeps(compile_({"latency": LOGNORMAL}, items=3))
    assert len(waits) == 1


@pytest.mark.parametrize(
    ("latency", "message"),
    [
        ("snail", "unknown latency preset 'snail'; known: fast, typical, overloaded"),
        ("{ttft_ms: {dist: gamma}}", "latency.ttft_ms: unknown dist 'gamma'; known: fixed, uniform, normal, lognormal"),
        ("{itl_ms: {ms: 3}}", "latency.itl_ms: no dist; known: fixed, uniform, normal, lognormal"),
        ("{ttft_ms: {dist: lognormal, median: 800, p95: 800}}", "p95 (800 ms) must be more than the median (800 ms)"),
        ("{ttft_ms: {dist: uniform, min: 9, max: 5}}", "min (9 ms) is more than max (5 ms); give min <= max"),
        ("{ttft_ms: {dist: normal, mean: 9}}", "latency.ttft_ms.sd: required field is missing"),
        ("{ttft_ms: {dist: fixed, ms: 4000000}}", "longer than the 3600000 ms (one hour) any delay may be"),
        ("{itl_ms: {dist: fixed, ms: 9}, tokens_per_s: 40}", "itl_ms and tokens_per_s both say how long"),
        ("{tokens_per_s: 0}", "latency.tokens_per_s: 0 is not more than 0"),
        ("5", "5 is not a latency; give a preset (fast, typical, overloaded) or a mapping"),
    ],
)
def test_a_bad_latency_is_refused_naming_what_is_accepted(latency: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=r"p\.yaml:2: ") as caught:
        load_scenario(parse_document(f"name: p\nlatency: {latency}\n", "p.yaml"))
    assert message in str(caught.value)


@pytest.mark.parametrize("other", ["chunk_ms: 20", "first_chunk_ms: 0", "jitter_ms: 5"])
def test_latency_with_the_plain_pacing_is_refused_naming_both(other: str) -> None:
    key = other.split(":")[0]
    with pytest.raises(ScenarioError, match=f"latency and {key} both pace the stream"):
        load_scenario(parse_document(f"name: p\nlatency: fast\n{other}\n", "p.yaml"))


def test_a_request_for_an_unknown_preset_is_a_400_naming_the_presets(server: MockServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/chat/completions?latency=glacial",
        json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 400
    assert "one of fast, typical, overloaded; got 'glacial'" in response.json()["error"]["message"]


def test_the_first_token_arrives_after_the_drawn_time_to_first_token(server: MockServer) -> None:
    latency = {"ttft_ms": {"dist": "lognormal", "median": 300, "p95": 450}, "itl_ms": {"dist": "fixed", "ms": 1}}
    name = server.add_scenario(reply="Hello there, friend.", latency=latency, seed=11)
    scenario = Scenario.model_validate({"name": name, "reply": "Hello there, friend.", "latency": latency, "seed": 11})
    ttft_ms = sleeps(compile_timeline(scenario, Overrides(), RequestContext(prompt="hi")))[0]
    with OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
        started = time.perf_counter()
        stream = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], stream=True)
        first = next(chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content)
        elapsed_ms = (time.perf_counter() - started) * 1000
        assert first.choices[0].delta.content == "Hello"
        list(stream)
    assert ttft_ms * 0.95 <= elapsed_ms < ttft_ms + 1500
