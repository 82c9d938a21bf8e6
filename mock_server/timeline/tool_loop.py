"""`tool_mode: auto`: a model's side of an agent loop. A request that offers tools is answered with a
call to one of them (or several at once), its arguments made from the tool's JSON Schema and the
seed; the request that brings the results back is answered in text, which may quote them."""

from __future__ import annotations

import json
import random
from typing import Any

from mock_server.scenarios.conversation import Conversation, OfferedTool, ToolResult
from mock_server.scenarios.model import Scenario, ToolCallSpec
from mock_server.timeline.structured import value_for

AUTO_REPLY = "The {tool_name} tool returned: {tool_result}"
"""What `tool_mode: auto` answers once the results are back, unless the scenario gives a `reply`."""


def auto_calls(scenario: Scenario, conversation: Conversation, seed: int) -> list[ToolCallSpec]:
    """The calls `tool_mode: auto` makes for a request; none when it answers in text: the request
    offers no tool, lets the model use none (`tool_choice: none`), or brings results back."""
    offer = conversation.offer
    if scenario.tool_mode != "auto" or not offer.tools or offer.choice == "none" or conversation.tool_results:
        return []
    by_name = {tool.name: tool for tool in offer.tools}
    draw = random.Random(f"tools:{seed}:{conversation.turn}")
    if offer.choice in by_name:  # the request names the tool
        first = by_name[offer.choice]
    elif scenario.call_tool in by_name:
        first = by_name[scenario.call_tool]
    else:
        first = draw.choice(offer.tools)
    count = min(scenario.parallel_tools if offer.parallel else 1, len(by_name))
    chosen = [first, *(tool for name, tool in by_name.items() if name != first.name)][:count]
    return [
        ToolCallSpec(name=tool.name, arguments=arguments(tool, f"{seed}:{conversation.turn}:{index}"))
        for index, tool in enumerate(chosen)
    ]


def arguments(tool: OfferedTool, seed: str) -> Any:
    """Arguments valid against the tool's parameters, the same for the same seed (an object: a
    schema that does not say its type is an object's, as every provider's tool parameters are)."""
    schema = json.loads(tool.parameters)
    if not isinstance(schema, dict):
        return {}
    if "type" not in schema and not any(k in schema for k in ("anyOf", "oneOf", "allOf", "$ref", "enum", "const")):
        schema = {"type": "object", **schema}
    return value_for(schema, seed)


def answered(results: tuple[ToolResult, ...]) -> tuple[str, str]:
    """What `{tool_name}` and `{tool_result}` stand for in a reply: the results' tool names and
    contents (each result's, joined by a line break when there are several)."""
    return ", ".join(r.name or r.call_id for r in results), "\n".join(r.content for r in results)
