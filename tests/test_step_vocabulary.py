"""Every step a scenario's `steps:` list can hold is declared once, in `steps.FILE_STEPS`: each one
validates, builds its timeline step, and comes back from the control API as it was written."""

from __future__ import annotations

from typing import NamedTuple

import httpx
import pytest

from mock_server import MockServer
from mock_server.errors import ScenarioError
from mock_server.scenarios import steps
from mock_server.scenarios.loading import Document
from mock_server.scenarios.model import STEP_KINDS, Scenario, ToolCallSpec, load_scenario


class Example(NamedTuple):
    written: object
    """The value after the step's key, as a file writes it."""
    built: steps.Step | ToolCallSpec
    served: object = "as written"
    """The value `GET /_mock/scenarios/{name}` gives back, when it is not the value written."""


EXAMPLES: dict[str, list[Example]] = {
    "text": [Example("Hello, {prompt}", steps.Text("Hello, {prompt}"))],
    "reasoning": [Example("Let me think.", steps.Reasoning("Let me think."))],
    "tool_call": [
        Example(
            {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"},
            ToolCallSpec(name="get_weather", arguments={"city": "Paris"}, id="call_1"),
        ),
        Example({"name": "now"}, ToolCallSpec(name="now")),
    ],
    "sleep_ms": [Example(250, steps.Sleep(250)), Example(0.5, steps.Sleep(0.5))],
    "event": [
        Example({"event": "close", "data": "{}", "id": "7", "retry": 1500}, steps.RawEvent("close", "{}", "7", 1500)),
        Example({}, steps.RawEvent()),
    ],
    "comment": [Example("still here", steps.Comment("still here"))],
    "raw": [Example("data: café\n\n", steps.Raw("data: café\n\n".encode()))],
    "split": [
        Example({"pieces": 4, "ms": 5}, steps.Split(4, 5)),
        Example({}, steps.Split()),
        Example(None, steps.Split()),
    ],
    "duplicate": [Example(True, steps.Duplicate()), Example(None, steps.Duplicate())],
    "malformed": [Example({"data": "{not json"}, steps.Malformed("{not json")), Example(None, steps.Malformed())],
    "unknown_event": [Example(True, steps.UnknownEvent()), Example(None, steps.UnknownEvent())],
    "drop": [Example(True, steps.Drop()), Example(None, steps.Drop())],
    "reset": [Example(True, steps.Reset()), Example(None, steps.Reset())],
    "stall": [Example({"ms": 1500}, steps.Stall(1500)), Example(None, steps.Stall())],
    "error": [
        Example(
            {"message": "boom", "type": "overloaded", "code": "529"}, steps.ErrorEvent("boom", "overloaded", "529")
        ),
        Example({"message": None, "type": ""}, steps.ErrorEvent(), served={}),  # blank means the default
        Example(None, steps.ErrorEvent()),
    ],
    "finish": [Example({"reason": "length"}, steps.Finish("length")), Example(None, steps.Finish())],
}
"""Every declared step, with values as a file writes them and the step each one builds."""

WRITTEN = [
    pytest.param(key, example, id=f"{key}-{index}")
    for key, examples in EXAMPLES.items()
    for index, example in enumerate(examples)
]


def test_every_declared_step_has_examples_here() -> None:
    assert tuple(steps.FILE_STEPS) == STEP_KINDS
    assert set(EXAMPLES) == set(steps.FILE_STEPS), "add an example of the new step to EXAMPLES"


@pytest.mark.parametrize(("key", "example"), WRITTEN)
def test_a_declared_step_builds_its_step(key: str, example: Example) -> None:
    scenario = Scenario.model_validate({"name": "one-step", "steps": [{key: example.written}]})
    (entry,) = scenario.steps or []
    assert entry.key == key
    assert entry.build() == example.built
    assert type(entry.build()) is steps.FILE_STEPS[key].step


@pytest.mark.parametrize(("key", "example"), WRITTEN)
def test_a_declared_step_round_trips_through_the_control_api(server: MockServer, key: str, example: Example) -> None:
    name = f"vocabulary-{key}"
    served_as = example.written if example.served == "as written" else example.served
    with httpx.Client(base_url=server.url + "/_mock") as api:
        try:
            assert api.put(f"/scenarios/{name}", json={"steps": [{key: example.written}]}).status_code in (200, 201)
            served = api.get(f"/scenarios/{name}").json()["scenario"]
            assert served == {"name": name, "steps": [{key: served_as}]}
            assert api.put(f"/scenarios/{name}", json=served).status_code == 200
            (entry,) = Scenario.model_validate(served).steps or []
            assert entry.build() == example.built
        finally:
            api.delete(f"/scenarios/{name}")


@pytest.mark.parametrize(("key", "example"), WRITTEN)
def test_only_a_step_that_ends_the_stream_must_be_last(key: str, example: Example) -> None:
    document = Document("script.yaml", {"steps": [{key: example.written}, {"text": "after"}]})
    ends = not isinstance(example.built, ToolCallSpec) and steps.ends_stream(example.built)
    if not ends:
        assert load_scenario(document, default_name="script").steps
        return
    with pytest.raises(ScenarioError) as caught:
        load_scenario(document, default_name="script")
    (problem,) = caught.value.problems
    assert problem.message.startswith(f"step 0 (`{key}`) ends the stream, so the 1 step(s) after it")


def test_each_file_step_is_written_as_its_step_type_allows() -> None:
    with pytest.raises(TypeError, match="needs one field"):
        steps.FileStep("wait", steps.Split, steps.Written.SCALAR)
    with pytest.raises(TypeError, match="takes no fields"):
        steps.FileStep("pause", steps.Stall, steps.Written.FLAG)
