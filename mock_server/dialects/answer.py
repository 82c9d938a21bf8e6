"""A timeline's content steps gathered into one answer, for responses that are not streamed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mock_server.scenarios import steps


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str

    @property
    def input(self) -> Any:
        """The arguments as the JSON document they hold (Anthropic's `input`, Converse's); arguments a
        scenario made invalid on purpose stay the string they are."""
        try:
            return json.loads(self.arguments)
        except json.JSONDecodeError:
            return self.arguments


@dataclass(frozen=True, slots=True)
class Answer:
    """Everything the content steps said, joined: what a non-streaming response carries."""

    text: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    """None when the timeline was cut before its finish."""
    error: steps.ErrorEvent | None = None


def collect_answer(timeline_steps: Iterable[steps.Step]) -> Answer:
    """Join the content steps of a timeline (wire steps are ignored); the first error wins."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, tuple[str, str]] = {}
    arguments: dict[int, list[str]] = {}
    finish_reason = None
    # Told apart by their exact class (steps are final): a `match` of class patterns tried each in
    # turn, and this runs over every step of each Responses request (it stores its answer) before
    # the first byte.
    for step in timeline_steps:
        if type(step) is steps.Text:
            text.append(step.text)
        elif type(step) is steps.Reasoning:
            reasoning.append(step.text)
        elif type(step) is steps.ToolCallStart:
            calls[step.index] = (step.call_id, step.name)
            arguments.setdefault(step.index, [])
        elif type(step) is steps.ToolCallArguments:
            arguments.setdefault(step.index, []).append(step.arguments)
        elif type(step) is steps.Finish:
            finish_reason = step.reason
        elif type(step) is steps.ErrorEvent:
            return Answer(error=step)
    tool_calls = tuple(
        ToolCall(call_id, name, "".join(arguments.get(index, []))) for index, (call_id, name) in sorted(calls.items())
    )
    return Answer("".join(text), "".join(reasoning), tool_calls, finish_reason)
