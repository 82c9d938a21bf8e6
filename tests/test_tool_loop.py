"""`tool_mode: auto`: agent loops through the official SDKs. A request that offers tools is answered
with a call whose arguments are valid against the tool's schema (checked with jsonschema), the same
for the same seed; the request that brings the result back is answered in text quoting it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import jsonschema
import ollama
import pytest
from google import genai
from google.genai import types as genai_types
from openai import AsyncOpenAI, OpenAI

from mock_server.errors import ScenarioError
from mock_server.http.conversation import tool_offer
from mock_server.http.server import MockServer
from tests.test_bedrock import client_for as bedrock_client

UNPACED = {"X-Mock-Chunk-Ms": "0"}
WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
TIME: dict[str, Any] = {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}
SCHEMAS: dict[str, dict[str, Any]] = {"get_weather": WEATHER, "get_time": TIME}
OPENAI_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": name, "parameters": schema}} for name, schema in SCHEMAS.items()
]


OLLAMA_SENDS = {"city": {"type": "string"}, "unit": WEATHER["properties"]["unit"], "days": {"type": "integer"}}


@pytest.fixture(scope="module")
def agent_server() -> Iterator[MockServer]:
    """A server whose scenario `agent` runs the loop for any request that offers tools."""
    with MockServer() as running:
        running.add_scenario("agent", tool_mode="auto", call_tool="get_weather", match={"tools_offered": True})
        running.add_scenario("picker", tool_mode="auto", parallel_tools=2, seed=3)
        running.add_scenario("quoting", tool_mode="auto", reply="It is {tool_result} ({tool_name}).")
        yield running


@pytest.fixture
def client(agent_server: MockServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=agent_server.openai_base_url, api_key="x", max_retries=0) as client:
        yield client


def chat(client: OpenAI, messages: list[Any], **options: Any) -> Any:
    options.setdefault("tools", OPENAI_TOOLS)
    options.setdefault("extra_headers", UNPACED)
    return client.chat.completions.create(model="gpt-4o", messages=messages, **options)


def test_an_openai_agent_loop_calls_a_tool_then_answers_with_its_result(client: OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = chat(client, messages)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"  # the scenario's call_tool
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
    ]
    second = chat(client, messages)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "The get_weather tool returned: 18 C and sunny"

    messages += [second.choices[0].message.model_dump(exclude_none=True), {"role": "user", "content": "And Rome?"}]
    third = chat(client, messages)  # a new user turn: a new call, with an id of its own
    assert third.choices[0].message.tool_calls[0].id != call.id


def test_the_same_request_gets_the_same_call_and_another_seed_another(client: OpenAI) -> None:
    messages = [{"role": "user", "content": "Weather?"}]
    calls = [chat(client, messages).choices[0].message.tool_calls[0] for _ in range(2)]
    assert calls[0].function.arguments == calls[1].function.arguments
    seeded = [
        chat(client, messages, extra_headers={**UNPACED, "X-Mock-Seed": str(seed)})
        .choices[0]
        .message.tool_calls[0]
        .function.arguments
        for seed in (11, 12, 13)
    ]
    assert len({calls[0].function.arguments, *seeded}) > 1


def test_parallel_calls_stream_through_the_async_sdk_unless_the_request_forbids_them(
    agent_server: MockServer,
) -> None:
    async def calls(**options: Any) -> dict[int, tuple[str, str]]:
        async with AsyncOpenAI(base_url=agent_server.openai_base_url, api_key="x", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="picker",
                messages=[{"role": "user", "content": "Both please"}],
                tools=OPENAI_TOOLS,
                stream=True,
                extra_headers=UNPACED,
                **options,
            )
            names: dict[int, str] = {}
            arguments: dict[int, str] = {}
            async for chunk in stream:
                for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                    if delta.function and delta.function.name:
                        names[delta.index] = delta.function.name
                    arguments[delta.index] = arguments.get(delta.index, "") + (
                        (delta.function.arguments if delta.function else None) or ""
                    )
            return {index: (names[index], arguments[index]) for index in names}

    both = asyncio.run(calls())
    assert sorted(name for name, _ in both.values()) == ["get_time", "get_weather"]
    for name, arguments in both.values():
        jsonschema.validate(json.loads(arguments), SCHEMAS[name])
    assert len(asyncio.run(calls(parallel_tool_calls=False))) == 1


def test_tool_choice_names_the_tool_or_forbids_any(client: OpenAI) -> None:
    messages = [{"role": "user", "content": "What time is it?"}]
    forced = chat(client, messages, tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert forced.choices[0].message.tool_calls[0].function.name == "get_time"
    none = chat(client, messages, tool_choice="none")
    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].message.content == "What time is it?"


def test_a_request_without_tools_is_answered_in_text(client: OpenAI) -> None:
    answer = client.chat.completions.create(
        model="picker", messages=[{"role": "user", "content": "hi"}], extra_headers=UNPACED
    )
    assert answer.choices[0].message.content == "hi"


def test_a_reply_quotes_the_result_and_its_tool(client: OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Time?"}]
    first = client.chat.completions.create(
        model="quoting", messages=messages, tools=OPENAI_TOOLS[1:], extra_headers=UNPACED
    )
    (call,) = first.choices[0].message.tool_calls or []
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "noon"},
    ]
    second = client.chat.completions.create(model="quoting", messages=messages, tools=OPENAI_TOOLS[1:])
    assert second.choices[0].message.content == "It is noon (get_time)."


def test_the_responses_api_loop(client: OpenAI) -> None:
    tools: list[Any] = [{"type": "function", "name": n, "parameters": s} for n, s in SCHEMAS.items()]
    first = client.responses.create(model="agent", input="Weather?", tools=tools, extra_headers=UNPACED)
    (call,) = [item for item in first.output if item.type == "function_call"]
    jsonschema.validate(json.loads(call.arguments), WEATHER)
    second = client.responses.create(
        model="agent",
        input=[
            {"role": "user", "content": "Weather?"},
            call.model_dump(exclude_none=True),  # type: ignore[list-item]  # the call as the SDK gave it, as JSON
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
        ],
        tools=tools,
        extra_headers=UNPACED,
    )
    assert second.output_text == "The get_weather tool returned: rain"


def test_an_anthropic_agent_loop_streams_tool_use_then_text(agent_server: MockServer) -> None:
    tools: list[Any] = [{"name": n, "input_schema": s} for n, s in SCHEMAS.items()]
    with anthropic.Anthropic(base_url=agent_server.url, api_key="x", max_retries=0) as client:
        messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
        with client.messages.stream(
            model="claude", max_tokens=500, messages=messages, tools=tools, extra_headers=UNPACED
        ) as stream:
            message = stream.get_final_message()
        assert message.stop_reason == "tool_use"
        (use,) = [block for block in message.content if block.type == "tool_use"]
        jsonschema.validate(use.input, WEATHER)
        messages += [
            {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in message.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "-3 C"}]},
        ]
        answer = client.messages.create(
            model="claude", max_tokens=500, messages=messages, tools=tools, extra_headers=UNPACED
        )
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "The get_weather tool returned: -3 C"


def test_a_gemini_function_call_loop(agent_server: MockServer) -> None:
    declarations = [genai_types.FunctionDeclaration(name=n, parameters_json_schema=s) for n, s in SCHEMAS.items()]
    config = genai_types.GenerateContentConfig(
        tools=[genai_types.Tool(function_declarations=declarations)],
        automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
    )
    options = genai_types.HttpOptions(base_url=agent_server.url, headers=UNPACED)
    with genai.Client(api_key="x", http_options=options) as client:
        first = client.models.generate_content(model="gemini-2.5-flash", contents="Weather?", config=config)
        (call,) = first.function_calls or []
        assert call.name == "get_weather"
        jsonschema.validate(call.args, WEATHER)
        contents: list[Any] = [
            genai_types.Content(role="user", parts=[genai_types.Part(text="Weather?")]),
            first.candidates[0].content if first.candidates else None,
            genai_types.Content(
                role="user",
                parts=[genai_types.Part.from_function_response(name="get_weather", response={"result": "fog"})],
            ),
        ]
        second = client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
    assert second.text == 'The get_weather tool returned: {"result": "fog"}'


def test_an_ollama_tool_loop(agent_server: MockServer) -> None:
    with ollama.Client(host=agent_server.url, headers=UNPACED) as client:
        messages: list[Any] = [{"role": "user", "content": "Weather?"}]
        first = client.chat(model="llama3.2", messages=messages, tools=OPENAI_TOOLS)
        (call,) = first.message.tool_calls or []
        # ollama's client sends each property's type, description and enum, not its bounds
        jsonschema.validate(dict(call.function.arguments), {**WEATHER, "properties": OLLAMA_SENDS})
        messages += [first.message, {"role": "tool", "content": "hail", "tool_name": "get_weather"}]
        second = client.chat(model="llama3.2", messages=messages, tools=OPENAI_TOOLS)
    assert second.message.content == "The get_weather tool returned: hail"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"call_tool": "get_time"}, "call_tool only say how `tool_mode: auto` calls tools; add tool_mode: auto"),
        ({"tool_mode": "auto", "replies": ["a", "b"]}, "tool_mode: auto makes the answer itself, and replies says"),
        ({"tool_mode": "always"}, "tool_mode"),
        ({"tool_mode": "auto", "parallel_tools": 0}, "parallel_tools"),
    ],
)
def test_bad_tool_mode_fields_are_refused_saying_why(
    make_server: Callable[..., MockServer], fields: dict[str, Any], says: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        make_server().add_scenario(**fields)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("body", "choice", "parallel"),
    [
        ({"tool_choice": "required", "parallel_tool_calls": False}, "required", False),
        ({"tool_choice": {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}}, "get_time", False),
        ({"tool_choice": {"type": "any"}}, "required", True),
        ({"tool_choice": {"type": "none"}}, "none", True),
        (
            {"toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}},
            "get_time",
            True,
        ),
        ({"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}, "none", True),
        ({}, None, True),
    ],
)
def test_each_providers_tool_choice_is_read(body: dict[str, Any], choice: str | None, parallel: bool) -> None:
    offer = tool_offer({"tools": OPENAI_TOOLS, **body})
    assert (offer.choice, offer.parallel) == (choice, parallel)
    assert [tool.name for tool in offer.tools] == ["get_weather", "get_time"]
    assert json.loads(offer.tools[0].parameters) == WEATHER


def test_each_providers_tool_shape_is_read() -> None:
    shapes: list[dict[str, Any]] = [
        {"tools": [{"name": "get_time", "input_schema": TIME}]},  # Anthropic
        {"tools": [{"type": "function", "name": "get_time", "parameters": TIME}]},  # Responses
        {"tools": [{"functionDeclarations": [{"name": "get_time", "parametersJsonSchema": TIME}]}]},  # Gemini
        {"functions": [{"name": "get_time", "parameters": TIME}]},  # OpenAI's older functions
    ]
    for body in shapes:
        (tool,) = tool_offer(body).tools
        assert (tool.name, json.loads(tool.parameters)) == ("get_time", TIME)
    assert tool_offer({"tools": [{"type": "web_search"}]}).tools[0].name == "web_search"
    assert not tool_offer({"tools": []}).tools


def readme_blocks(language: str) -> list[str]:
    """The `language` blocks of the README's section on tool loops."""
    text = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Tool loops") :]
    section = section[: section.index("\n### ", 1)]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_scenario_and_walk_throughs_run_as_written(
    make_server: Callable[..., MockServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (scenario,) = readme_blocks("yaml")
    (tmp_path / "agent.yaml").write_text(scenario)
    server = make_server(scenario_dirs=(tmp_path,))
    for code in readme_blocks("python"):
        walk_through: dict[str, Any] = {}
        exec(compile(code.replace("http://127.0.0.1:8383", server.url), "README.md", "exec"), walk_through)
        walk_through["client"].close()  # else its kept-alive socket lingers until a collection, in another test
    assert capsys.readouterr().out.splitlines() == [
        "The get_weather tool returned: 18 C",
        "The get_weather tool returned: -3 C",
    ]


def test_a_bedrock_converse_tool_loop(agent_server: MockServer) -> None:
    client = bedrock_client(agent_server)
    tool_config: Any = {
        "tools": [{"toolSpec": {"name": n, "inputSchema": {"json": s}}} for n, s in SCHEMAS.items()],
        "toolChoice": {"tool": {"name": "get_time"}},
    }
    messages: list[Any] = [{"role": "user", "content": [{"text": "What time is it?"}]}]
    first = client.converse(modelId="agent", messages=messages, toolConfig=tool_config)
    assert first["stopReason"] == "tool_use"
    (block,) = first["output"]["message"]["content"]
    use = block["toolUse"]
    assert use["name"] == "get_time"  # the request's toolChoice
    jsonschema.validate(use["input"], TIME)
    messages += [
        first["output"]["message"],
        {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "9 am"}]}}]},
    ]
    second = client.converse(modelId="agent", messages=messages, toolConfig=tool_config)
    client.close()
    assert second["output"]["message"]["content"] == [{"text": "The get_time tool returned: 9 am"}]
