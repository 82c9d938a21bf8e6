"""Property tests: whatever the input, the parsers and the compiler answer with a result or with their
own clear error, and every valid scenario becomes a sane timeline that every dialect can render."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mock_server import MockServer
from mock_server.dialects import DIALECTS, StreamInfo
from mock_server.errors import OverrideError, RequestBodyError, ScenarioError
from mock_server.http.prompt import parse_json_body, prompt_from_body, prompt_from_query
from mock_server.http.request_body import decode_json
from mock_server.scenarios import steps
from mock_server.scenarios.faults import FaultKind, parse_fault_list
from mock_server.scenarios.loading import Document, parse_document
from mock_server.scenarios.model import SCENARIO_FIELDS, STEP_KINDS, Scenario, load_scenario
from mock_server.timeline.compile import RequestContext, Timeline, compile_timeline
from mock_server.timeline.overrides import Overrides, parse_overrides
from mock_server.wire import rendering
from mock_server.wire.actions import Write
from tests.model_requests import ENDPOINTS, Endpoint

pytestmark = pytest.mark.slow

T = TypeVar("T")
E = TypeVar("E", bound=Exception)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def result_or(error: type[E], call: Callable[[], T]) -> T | E:
    """What `call` returns, or the `error` it raises (any other exception fails the test)."""
    try:
        return call()
    except error as exc:
        return exc


short_text = st.text(max_size=30)
delays = st.floats(min_value=0, max_value=50, allow_nan=False, allow_infinity=False)
header_names = st.from_regex(r"\AX-[A-Za-z0-9-]{1,10}\Z")


@st.composite
def faults(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(list(FaultKind)))
    fault: dict[str, Any] = {"kind": kind.value}
    if kind is not FaultKind.STATUS and kind is not FaultKind.NO_DONE:
        fault["at"] = draw(st.integers(0, 12))
    if kind in (FaultKind.DELAY, FaultKind.SPLIT) or (kind is FaultKind.STALL and draw(st.booleans())):
        fault["ms"] = draw(delays)
    if kind is FaultKind.SPLIT:
        fault["pieces"] = draw(st.integers(2, 64))
    if kind is FaultKind.STATUS:
        fault["status"] = draw(st.integers(400, 599))
    if kind in (FaultKind.CLOSE, FaultKind.MALFORMED):
        fault["data"] = draw(st.none() | short_text)
    if kind is FaultKind.ERROR:
        fault.update(message=draw(st.none() | short_text), type=draw(st.none() | short_text))
    fault.update(
        once=draw(st.booleans()),
        times=draw(st.none() | st.integers(1, 3)),
        probability=draw(st.floats(0, 1)),
    )
    return fault


def step_entries() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda text: {"text": text}, short_text),
        st.builds(lambda text: {"reasoning": text}, short_text),
        st.builds(lambda name, args: {"tool_call": {"name": name, "arguments": args}}, st.text(min_size=1), short_text),
        st.builds(lambda ms: {"sleep_ms": ms}, delays),
        st.builds(lambda event, data: {"event": {"event": event, "data": data}}, st.none() | short_text, short_text),
        st.builds(lambda text: {"comment": text}, short_text),
        st.builds(lambda text: {"raw": text}, short_text),
        st.builds(lambda pieces: {"split": {"pieces": pieces}}, st.integers(2, 8)),
        st.builds(lambda ms: {"stall": {"ms": ms}}, delays),
        st.builds(lambda reason: {"finish": {"reason": reason}}, st.sampled_from(["stop", "length", "tool_calls"])),
    )


ENDINGS = [{"drop": True}, {"reset": True}, {"stall": None}, {"error": {"message": "boom"}}]


tool_calls = st.builds(lambda name: {"name": name, "arguments": {"q": name}}, st.text(min_size=1))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    fields: dict[str, Any] = {
        "name": "fuzzed",
        "reply": draw(st.text(max_size=80)),
        "chunk": draw(st.sampled_from(["word", "char"]) | st.integers(1, 20)),
        "chunk_ms": draw(delays),
        "first_chunk_ms": draw(delays),
        "jitter_ms": draw(delays),
        "seed": draw(st.integers(-(2**31), 2**31)),
        "done": draw(st.booleans()),
        "ids": draw(st.booleans()),
        "retry_ms": draw(st.none() | st.integers(0, 5000)),
        "keepalive_ms": draw(st.none() | st.floats(1, 100)),
        "status": draw(st.just(200) | st.integers(400, 599)),
        "headers": draw(st.dictionaries(header_names, st.from_regex(r"\A[ -~]{0,20}\Z"), max_size=3)),
        "tool_calls": draw(st.lists(tool_calls, max_size=2)),
        "reasoning": draw(st.none() | short_text),
        "faults": draw(st.lists(faults(), max_size=4)),
    }  # fmt: skip
    if draw(st.booleans()):
        script = draw(st.lists(step_entries(), max_size=8))
        fields["steps"] = script + draw(st.sampled_from([[], *([ending] for ending in ENDINGS)]))
    return Scenario.model_validate(fields)


@st.composite
def overrides(draw: st.DrawFn) -> Overrides:
    listed = draw(st.lists(faults(), max_size=3))
    return Overrides(
        faults=tuple(Scenario.model_validate({"name": "x", "faults": listed}).faults),
        chunk_ms=draw(st.none() | delays),
        first_chunk_ms=draw(st.none() | delays),
        jitter_ms=draw(st.none() | delays),
        seed=draw(st.none() | st.integers()),
    )


contexts = st.builds(
    RequestContext,
    prompt=st.text(max_size=40),
    model=st.none() | short_text,
    resumed=st.booleans(),
    selection=st.integers(1, 5),
)


def assert_sane(timeline: Timeline) -> None:
    if timeline.status != 200:
        assert 400 <= timeline.status <= 599
        assert timeline.steps == ()
        return
    for index, step in enumerate(timeline.steps):
        if isinstance(step, steps.Sleep | steps.Split):
            assert math.isfinite(step.ms)
            assert step.ms >= 0
        if isinstance(step, steps.Stall) and step.ms is not None:
            assert math.isfinite(step.ms)
            assert step.ms >= 0
        if steps.ends_stream(step):
            assert index == len(timeline.steps) - 1, "nothing follows a step that ends the stream"


@FUZZ
@given(scenarios(), overrides(), contexts)
def test_every_valid_scenario_compiles_to_a_sane_timeline_every_dialect_renders(
    scenario: Scenario, override: Overrides, context: RequestContext
) -> None:
    timeline = compile_timeline(scenario, override, context)
    assert compile_timeline(scenario, override, context) == timeline  # deterministic
    assert_sane(timeline)
    if timeline.status != 200:
        return
    info = StreamInfo(key="0" * 64, created=0, model="m", usage=timeline.usage, include_usage=True)
    for dialect in DIALECTS.values():
        actions = rendering.render_stream(timeline, dialect.stream(info)).actions
        assert all(isinstance(action.data, bytes) for action in actions if isinstance(action, Write))
        rendering.render_whole(timeline, functools.partial(dialect.whole_body, info, timeline.steps))


odd_text = st.text(max_size=20) | st.lists(st.characters(categories=["Cs"]) | st.characters(), max_size=20).map("".join)
"""Any text, lone surrogates (valid in JSON as `\\ud800`, in no UTF-8 text) included."""
json_values = st.recursive(  # JSON's own values: NaN and Infinity are not JSON (tests/test_bad_input.py)
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | odd_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(odd_text, children, max_size=4),
    max_leaves=20,
)
scenario_like = st.dictionaries(
    st.sampled_from([*SCENARIO_FIELDS, *STEP_KINDS, "replly"]) | st.text(max_size=8), json_values, max_size=8
)


@FUZZ
@given(st.one_of(scenario_like, json_values))
def test_any_data_is_a_scenario_or_a_scenario_error_listing_problems(data: Any) -> None:
    scenario = result_or(ScenarioError, lambda: load_scenario(Document("fuzz.yaml", data), default_name="fuzzed"))
    if isinstance(scenario, ScenarioError):
        assert scenario.problems
        assert all(str(problem).startswith("fuzz.yaml") for problem in scenario.problems)
        paths = [problem.path for problem in scenario.problems]
        assert len(set(paths)) == len(paths), "one problem per place, however many union branches failed there"
        assert json.dumps([(p.message, p.path) for p in scenario.problems], ensure_ascii=False).encode()
    else:
        json.dumps(scenario.model_dump(mode="json"), ensure_ascii=False).encode()  # no lone surrogate in it
        compile_timeline(scenario, Overrides(), RequestContext())


@FUZZ
@given(st.text(max_size=200), st.booleans())
def test_any_text_is_a_document_or_a_scenario_error(text: str, is_json: bool) -> None:
    document = result_or(ScenarioError, lambda: parse_document(text, "fuzz", is_json=is_json))
    if isinstance(document, ScenarioError):
        assert document.problems
        return
    scenario = result_or(ScenarioError, lambda: load_scenario(document, default_name="fuzzed"))
    assert isinstance(scenario, Scenario) or scenario.problems


fault_text = st.text(
    alphabet=st.sampled_from(list("dropresetclosestallmalformedsplitdelaynoerror_@:,0123456789.-e²x "))
)


@FUZZ
@given(st.one_of(fault_text, st.text()))
def test_any_fault_text_parses_or_says_what_is_wrong(text: str) -> None:
    parsed = result_or(OverrideError, lambda: parse_fault_list(text))
    if isinstance(parsed, OverrideError):
        # it quotes the part that is wrong, or names the cap it crossed
        assert " in " in str(parsed) or "needs" in str(parsed) or "more than the" in str(parsed)
    else:
        assert all(fault.kind in FaultKind for fault in parsed)


override_names = st.sampled_from(["fault", "chunk_ms", "first_chunk_ms", "jitter_ms", "seed", "other"])


@FUZZ
@given(
    st.dictionaries(override_names, st.one_of(fault_text, st.text(max_size=20))),
    st.dictionaries(override_names.map(lambda name: "x-mock-" + name.replace("_", "-")), st.text(max_size=20)),
)
def test_any_query_and_headers_are_overrides_or_an_override_error(
    query: dict[str, str], headers: dict[str, str]
) -> None:
    parsed = result_or(OverrideError, lambda: parse_overrides(query, headers))
    if isinstance(parsed, OverrideError):
        assert str(parsed)
    else:
        for ms in (parsed.chunk_ms, parsed.first_chunk_ms, parsed.jitter_ms):
            assert ms is None or (math.isfinite(ms) and ms >= 0)


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda value: json.dumps(value).encode())))
def test_any_body_is_a_prompt_or_a_request_body_error_naming_the_problem(raw: bytes) -> None:
    prompt = result_or(RequestBodyError, lambda: prompt_from_body(parse_json_body(raw)))
    assert not isinstance(prompt, RequestBodyError) or str(prompt)


@FUZZ
@given(json_values)
def test_any_json_value_in_any_prompt_field_is_read_or_named(value: Any) -> None:
    raw = json.dumps({"messages": value, "request": value, "model": value}).encode()
    body = result_or(RequestBodyError, lambda: prompt_from_body(decode_json(raw)))
    assert not isinstance(body, RequestBodyError) or str(body)
    json.dumps(decode_json(raw), ensure_ascii=False).encode()  # lone surrogates were replaced
    query = result_or(RequestBodyError, lambda: prompt_from_query({"messages": json.dumps(value)}))
    assert not isinstance(query, RequestBodyError) or "messages" in str(query)


ON_THE_WIRE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@ON_THE_WIRE
@given(st.sampled_from(ENDPOINTS), odd_text, st.none() | odd_text, st.booleans(), json_values)
def test_any_text_in_any_model_request_is_answered_and_journaled_without_a_500(
    server: MockServer, endpoint: Endpoint, prompt: str, model: str | None, stream: bool, extra: Any
) -> None:
    body = {**endpoint.body("m", stream=stream, prompt=prompt), "model": model, prompt: extra}
    response = httpx.post(
        server.url + endpoint.path,
        content=json.dumps(body).encode(),  # ASCII: a lone surrogate goes as its escape, \ud800
        headers={"Content-Type": "application/json", "X-Mock-Chunk-Ms": "0"},
        timeout=10,
    )
    assert response.status_code < 500, response.text
    journal = httpx.get(server.url + "/_mock/requests", params={"settle_ms": 0}, timeout=10)
    assert journal.status_code == 200
    assert isinstance(journal.json(), list)


@ON_THE_WIRE
@given(odd_text, odd_text, st.booleans())
def test_a_scenario_with_any_text_plays_or_is_refused_saying_where(
    server: MockServer, reply: str, key: str, through_http: bool
) -> None:
    fields = {"reply": reply, "tool_calls": [{"name": "f", "arguments": {key: reply}}]}
    if through_http:
        response = httpx.put(server.url + "/_mock/scenarios/odd", content=json.dumps(fields).encode(), timeout=10)
        assert response.status_code in (200, 201, 422)
        problems = response.json()["error"]["problems"] if response.status_code == 422 else []
        paths = [problem["path"] for problem in problems]
    else:
        try:
            server.add_scenario("odd", **fields)
            paths = []
        except ScenarioError as exc:
            paths = [".".join(map(str, problem.path)) for problem in exc.problems]
    # JSON joins two surrogates that make a pair into the character they encode: only lone ones stay.
    received = "".join(json.loads(json.dumps([reply, key]))) if through_http else reply + key
    assert bool(paths) is any(0xD800 <= ord(c) <= 0xDFFF for c in received)
    assert all(path == "reply" or path.startswith("tool_calls.0.arguments.") for path in paths)
    if not paths:
        assert httpx.get(server.url + "/completions", params={"scenario": "odd"}, timeout=10).status_code == 200
        assert httpx.get(server.url + "/_mock/scenarios/odd", timeout=10).status_code == 200
