"""Compiling scenarios into timelines: chunking, pacing, jitter and fault placement, without a server."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc
import weakref
from typing import Any

import pytest

from mock_server.errors import ReplyTooLongError
from mock_server.scenarios import steps
from mock_server.scenarios.faults import parse_fault, parse_fault_list
from mock_server.scenarios.model import Scenario
from mock_server.timeline.chunking import split_reply
from mock_server.timeline.compile import MAX_CHUNKS, RequestContext, Timeline, TimelineCache, compile_timeline
from mock_server.timeline.overrides import Overrides


def compile_(fields: dict[str, Any], faults: str = "", **context: Any) -> Timeline:
    scenario = Scenario.model_validate({"name": "t", **fields})
    overrides = Overrides(faults=tuple(parse_fault_list(faults)))
    return compile_timeline(scenario, overrides, RequestContext(**context))


def texts(timeline: Timeline) -> list[str]:
    return [s.text for s in timeline.steps if isinstance(s, steps.Text)]


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        ("word", ["The", " quick", " brown", " fox."]),
        ("char", list("The quick brown fox.")),
        (6, ["The qu", "ick br", "own fo", "x."]),
    ],
)
def test_reply_is_chunked_by_word_char_or_n(chunk: Any, expected: list[str]) -> None:
    assert texts(compile_({"reply": "The quick brown fox.", "chunk": chunk})) == expected


def test_cjk_reply_split_by_word_streams_in_small_pieces() -> None:
    pieces = split_reply("你好，世界！こんにちは 안녕하세요 and English", "word")
    assert pieces[:6] == ["你", "好", "，", "世", "界", "！"]
    assert max(len(p.strip()) for p in pieces) <= len("English")
    assert "".join(pieces) == "你好，世界！こんにちは 안녕하세요 and English"


def test_prompt_and_model_are_substituted() -> None:
    timeline = compile_({"reply": "{model} heard {prompt}"}, prompt="hi there", model="gpt-4o")
    assert "".join(texts(timeline)) == "gpt-4o heard hi there"


def test_pacing_puts_first_chunk_ms_first_and_chunk_ms_between() -> None:
    timeline = compile_({"reply": "a b c", "first_chunk_ms": 500, "chunk_ms": 20})
    shape = [type(s).__name__ if not isinstance(s, steps.Sleep) else s.ms for s in timeline.steps]
    assert shape == [500, "Text", 20, "Text", 20, "Text", 20, "Finish"]


def test_jitter_is_seeded_and_reproducible() -> None:
    fields = {"reply": "a b c d e f g h", "chunk_ms": 100, "jitter_ms": 50}
    first = [s.ms for s in compile_({**fields, "seed": 7}).steps if isinstance(s, steps.Sleep)]
    again = [s.ms for s in compile_({**fields, "seed": 7}).steps if isinstance(s, steps.Sleep)]
    other = [s.ms for s in compile_({**fields, "seed": 8}).steps if isinstance(s, steps.Sleep)]
    assert first == again
    assert first != other
    assert all(50 <= ms <= 150 for ms in first)
    assert len(set(first)) > 1


def test_fault_sits_where_chunk_n_is_due() -> None:
    timeline = compile_({"reply": "a b c d", "chunk_ms": 10}, "drop@2")
    shape = [type(s).__name__ for s in timeline.steps]
    assert shape == ["Text", "Sleep", "Text", "Sleep", "Drop"]  # first_chunk_ms is 0
    assert not timeline.end_marker


def test_fault_past_the_last_chunk_comes_before_the_finish() -> None:
    timeline = compile_({"reply": "a b"}, "close@99")
    assert [type(s).__name__ for s in timeline.steps] == ["Text", "Text", "RawEvent"]


def test_stall_with_ms_does_not_end_the_stream() -> None:
    timeline = compile_({"reply": "a b"}, "stall@1:300")
    assert [type(s).__name__ for s in timeline.steps] == ["Text", "Stall", "Text", "Finish"]
    assert timeline.end_marker


def test_once_faults_do_not_fire_on_a_resumed_request() -> None:
    fields = {"reply": "a b c", "faults": [{"kind": "drop", "at": 1, "once": True}]}
    assert any(isinstance(s, steps.Drop) for s in compile_(fields).steps)
    assert not any(isinstance(s, steps.Drop) for s in compile_(fields, resumed=True).steps)


def test_times_limits_a_fault_to_the_first_n_selections() -> None:
    fields = {"reply": "a", "faults": [{"kind": "status", "status": 503, "times": 2}]}
    assert [compile_(fields, selection=n).status for n in (1, 2, 3, 4)] == [503, 503, 200, 200]


def test_probability_is_drawn_from_the_seed() -> None:
    fields = {"reply": "a", "seed": 3, "faults": [{"kind": "status", "status": 500, "probability": 0.5}]}
    runs = [compile_(fields, selection=n).status for n in range(1, 41)]
    assert runs == [compile_(fields, selection=n).status for n in range(1, 41)]  # reproducible
    assert 5 < runs.count(500) < 35  # and actually random


def test_status_skips_the_stream_and_adds_retry_after_to_429() -> None:
    timeline = compile_({"reply": "a"}, "status:429")
    assert timeline.status == 429
    assert timeline.steps == ()
    assert ("Retry-After", "1") in timeline.headers


def test_scenario_retry_after_is_kept() -> None:
    timeline = compile_({"status": 429, "headers": {"Retry-After": "7"}})
    assert timeline.headers == (("Retry-After", "7"),)


def test_no_done_and_done_false_drop_the_end_marker() -> None:
    assert compile_({"reply": "a"}).end_marker
    assert not compile_({"reply": "a"}, "no_done").end_marker
    assert not compile_({"reply": "a", "done": False}).end_marker


def test_retry_ms_sends_retry_first() -> None:
    assert compile_({"reply": "a", "retry_ms": 2500}).steps[0] == steps.RawEvent(retry=2500)


def test_tool_calls_stream_start_then_argument_pieces_and_finish_with_tool_calls() -> None:
    timeline = compile_({"reply": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]})
    start, *arguments, finish = timeline.steps
    assert isinstance(start, steps.ToolCallStart)
    assert start.name == "get_weather"
    assert start.call_id.startswith("call_")
    assert "".join(a.arguments for a in arguments if isinstance(a, steps.ToolCallArguments)) == '{"city": "Paris"}'
    assert len(arguments) > 1
    assert finish == steps.Finish("tool_calls")


def test_reasoning_comes_before_the_answer() -> None:
    timeline = compile_({"reply": "yes", "reasoning": "think hard"})
    assert [type(s).__name__ for s in timeline.steps] == ["Reasoning", "Reasoning", "Text", "Finish"]


def test_scripted_steps_play_as_written_and_faults_still_apply() -> None:
    fields = {"steps": [{"text": "Hel"}, {"sleep_ms": 50}, {"text": "lo"}, {"finish": {"reason": "length"}}]}
    assert compile_(fields).steps == (
        steps.Text("Hel"),
        steps.Sleep(50),
        steps.Text("lo"),
        steps.Finish("length"),
    )
    assert compile_(fields, "reset@1").steps == (steps.Text("Hel"), steps.Sleep(50), steps.Reset())


def test_same_inputs_give_the_same_timeline() -> None:
    fields = {"reply": "a b c d", "chunk_ms": 30, "jitter_ms": 10, "faults": [{"kind": "split", "at": 1}]}
    assert compile_(fields, prompt="p") == compile_(fields, prompt="p")


NO_OVERRIDES = Overrides()


def cached(
    cache: TimelineCache, scenario: Scenario, context: RequestContext, overrides: Overrides = NO_OVERRIDES
) -> Timeline:
    """As the endpoints compile: with a digest of the prompt (theirs also covers name, model and seed)."""
    return cache.compile(scenario, overrides, context, hashlib.sha256(context.prompt.encode()).hexdigest())


def test_timeline_cache_hands_out_one_object_per_distinct_timeline() -> None:
    cache = TimelineCache()
    scenario = Scenario.model_validate({"name": "t", "reply": "a b"})
    first = cached(cache, scenario, RequestContext(prompt="p", selection=1))
    assert cached(cache, scenario, RequestContext(prompt="p", selection=2)) is first
    assert cached(cache, scenario, RequestContext(prompt="q")) is not first
    replaced = Scenario.model_validate({"name": "t", "reply": "c d"})
    assert texts(cached(cache, replaced, RequestContext(prompt="p"))) == ["c", " d"]


def test_timeline_cache_keeps_selection_counted_faults_apart() -> None:
    cache = TimelineCache()
    scenario = Scenario.model_validate({"name": "t", "faults": [{"kind": "status", "status": 503, "times": 1}]})
    statuses = [cached(cache, scenario, RequestContext(selection=n)).status for n in (1, 2, 1)]
    assert statuses == [503, 200, 503]


def test_timeline_cache_keeps_each_reply_of_a_sequence_apart() -> None:
    cache = TimelineCache()
    scenario = Scenario.model_validate({"name": "t", "replies": ["first", "second"]})
    answers = [texts(cached(cache, scenario, RequestContext(prompt="p", reply=n))) for n in (0, 1, 0)]
    assert answers == [["first"], ["second"], ["first"]]


def test_timeline_cache_is_bounded_in_bytes_even_by_timelines_of_no_steps() -> None:
    cache = TimelineCache(max_bytes=1 << 20)
    scenario = Scenario.model_validate({"name": "t", "status": 500})
    for n in range(10_000):
        cached(cache, scenario, RequestContext(prompt=f"prompt {n}"), Overrides(faults=(parse_fault("status:503"),)))
    assert 1 << 19 < cache.bytes <= 1 << 20  # full, each entry counted at 1 KiB or more


def test_timeline_cache_keeps_no_prompt_and_no_replaced_scenario_alive() -> None:
    cache = TimelineCache()
    scenario = Scenario.model_validate({"name": "t", "reply": "ok"})
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20):
            cached(cache, scenario, RequestContext(prompt=f"{n} " + "x" * (1 << 20)))
        assert tracemalloc.get_traced_memory()[0] - before < 1 << 20  # not the 20 MiB of prompts
    finally:
        tracemalloc.stop()
    gone = weakref.ref(scenario)
    del scenario
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize(
    ("ending", "last"),
    [
        ({"drop": True}, steps.Drop),
        ({"reset": True}, steps.Reset),
        ({"stall": None}, steps.Stall),
        ({"error": None}, steps.ErrorEvent),
    ],
)
def test_nothing_follows_a_scripted_step_that_ends_the_stream(ending: dict[str, Any], last: type) -> None:
    timeline = compile_({"steps": [{"text": "a"}, ending]}, "drop@5,close@9")
    assert [type(step) for step in timeline.steps if steps.ends_stream(step)] == [last]
    assert isinstance(timeline.steps[-1], last)


def test_a_reply_of_too_many_chunks_is_refused_before_it_is_built() -> None:
    with pytest.raises(ReplyTooLongError, match=r"would have more than 50,000 chunks"):
        compile_({"reply": "{prompt}"}, prompt=" ".join(["w"] * (MAX_CHUNKS + 1)))
    assert len(texts(compile_({"reply": "{prompt}"}, prompt=" ".join(["w"] * MAX_CHUNKS)))) == MAX_CHUNKS


def test_a_reply_that_would_not_fit_in_memory_is_refused_before_it_is_substituted() -> None:
    with pytest.raises(ReplyTooLongError, match=r"would have 1,073,\d+,\d+ characters"):
        compile_({"reply": "{prompt}" * 1024, "chunk": 1_000_000}, prompt="x" * 2**20)
