"""Conversations through the official SDKs: a scenario's `replies` answered turn by turn, per
conversation, reset, `cycle`; and `match` on the turn, the last role, tool results, tools offered and
the system prompt in every dialect that has messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import pytest
from google import genai
from google.genai import types
from openai import AsyncOpenAI, AzureOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from mock_server.http import conversation
from mock_server.http.azure import EXAMPLE_VERSION
from mock_server.http.server import MockServer
from mock_server.scenarios.conversation import ToolResult

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

UNPACED = {"X-Mock-Chunk-Ms": "0"}
INTERVIEW = ["Hello! What is your name?", "Nice to meet you, {prompt}. Where do you live?", "Goodbye."]
SYSTEM = "You are an interviewer."


def interview_server(make_server: Callable[..., MockServer], **fields: Any) -> MockServer:
    """A server whose `interview` scenario answers every chat with the interviewer's system prompt."""
    server = make_server()
    server.add_scenario("interview", replies=INTERVIEW, match={"system": "(?i)interviewer"}, **fields)
    return server


def openai_client(server: MockServer, **headers: str) -> OpenAI:
    return OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0, default_headers={**UNPACED, **headers})


def chat(client: OpenAI, answers: list[str], said: list[str], **options: Any) -> list[str]:
    """Say each of `said` in one chat, the answers so far sent back as the history; returns the answers."""
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": SYSTEM}]
    for text in said:
        messages.append({"role": "user", "content": text})
        reply = client.chat.completions.create(model="gpt-4o", messages=messages, **options)
        answer = reply.choices[0].message.content or ""
        messages.append({"role": "assistant", "content": answer})
        answers.append(answer)
    return answers


def test_a_multi_turn_chat_is_answered_turn_by_turn_and_the_last_reply_repeats(
    make_server: Callable[..., MockServer],
) -> None:
    server = interview_server(make_server)
    with openai_client(server) as client:
        answers = chat(client, [], ["Hi", "Ada", "Paris", "Still there?"])
    assert answers == ["Hello! What is your name?", "Nice to meet you, Ada. Where do you live?", "Goodbye.", "Goodbye."]


def test_an_async_streamed_chat_is_answered_turn_by_turn(make_server: Callable[..., MockServer]) -> None:
    server = interview_server(make_server)

    async def converse() -> list[str]:
        answers = []
        async with AsyncOpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
            for text in ("Hi", "Ada", "Paris"):
                stream = await client.chat.completions.create(
                    model="gpt-4o",
                    messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
                    stream=True,
                    extra_headers=UNPACED,
                )
                answers.append("".join([c.choices[0].delta.content or "" async for c in stream]))
        return answers

    assert asyncio.run(converse()) == [
        "Hello! What is your name?",
        "Nice to meet you, Ada. Where do you live?",
        "Goodbye.",
    ]


def test_conversations_named_by_header_or_body_each_have_their_own_sequence(
    make_server: Callable[..., MockServer],
) -> None:
    server = interview_server(make_server)
    with openai_client(server, **{"X-Mock-Conversation": "alice"}) as alice, openai_client(server) as bob:
        first = chat(alice, [], ["Hi"])
        chat(bob, first, ["Hi"], extra_body={"convGroupId": "bob"})
        chat(alice, first, ["Alice"])
        chat(bob, first, ["Bob"], extra_body={"convGroupId": "bob"})
        chat(bob, first, ["Hi"])  # names no conversation: counted apart from both
    assert first == [
        "Hello! What is your name?",
        "Hello! What is your name?",
        "Nice to meet you, Alice. Where do you live?",
        "Nice to meet you, Bob. Where do you live?",
        "Hello! What is your name?",
    ]


def test_eventsource_names_its_conversation_in_the_query(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    server.add_scenario("steps", replies=["one", "two"])

    def reply(conversation: str) -> str:
        query = {"scenario": "steps", "messages": "hi", "convGroupId": conversation}
        return httpx.get(server.url + "/completions", params=query).headers["X-Mock-Reply"]

    assert [reply("a"), reply("b"), reply("a")] == ["1", "1", "2"]


def test_reset_starts_every_sequence_again(make_server: Callable[..., MockServer]) -> None:
    server = interview_server(make_server)
    with openai_client(server) as client:
        chat(client, [], ["Hi", "Ada"])
        server.reset()
        server.add_scenario("interview", replies=INTERVIEW, match={"system": "(?i)interviewer"})
        assert chat(client, [], ["Hi"]) == ["Hello! What is your name?"]


def test_cycle_goes_round_the_replies_again(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    server.add_scenario("coin", replies=["heads", "tails"], cycle=True)
    with openai_client(server) as client:
        flips = [
            client.chat.completions.create(model="coin", messages=[{"role": "user", "content": "flip"}])
            .choices[0]
            .message.content
            for _ in range(5)
        ]
    assert flips == ["heads", "tails", "heads", "tails", "heads"]
    response = httpx.post(server.openai_base_url + "/chat/completions", json={"model": "coin", "messages": "flip"})
    assert response.headers["X-Mock-Reply"] == "2"  # the sixth flip: which of the replies answered


def test_replies_may_call_tools_and_script_steps(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    server.add_scenario("agent", replies=[{"tool_calls": [call]}, [{"text": "Sunny"}, {"text": " in Paris."}]])
    with openai_client(server) as client:
        ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Weather in Paris?"}]
        first = client.chat.completions.create(model="agent", messages=ask).choices[0]
        second = client.chat.completions.create(model="agent", messages=ask).choices[0]
    assert first.finish_reason == "tool_calls"
    assert first.message.tool_calls is not None
    made = first.message.tool_calls[0]
    assert made.type == "function"
    assert made.function.name == "get_weather"
    assert second.message.content == "Sunny in Paris."


def test_each_reply_calls_its_tools_with_ids_of_its_own(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    server.add_scenario("agent", replies=[{"tool_calls": [call]}, {"tool_calls": [call]}])
    with openai_client(server) as client:
        ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Weather in Paris?"}]
        calls = [
            client.chat.completions.create(model="agent", messages=ask).choices[0].message.tool_calls for _ in "ab"
        ]
    assert calls[0] is not None
    assert calls[1] is not None
    assert calls[0][0].id != calls[1][0].id


def test_a_resumed_stream_replays_the_same_reply(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    server.add_scenario("numbered", replies=["one two three", "four five six"], ids=True)
    url = server.url + "/completions?scenario=numbered&messages=hi"

    def text(**headers: str) -> str:
        lines = httpx.get(url, headers=headers).text.splitlines()
        chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
        return "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)

    assert text() == "one two three"
    assert text(**{"Last-Event-ID": "2"}) == " two three"  # event 1 is the role's, 2 the first word
    assert text() == "four five six"


def test_the_turn_chooses_the_scenario(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    server.add_scenario("opening", reply="Welcome!", match={"turn": 1})
    server.add_scenario("later", reply="Welcome back.", match={"turn": {"min": 2}})
    first: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    second: list[ChatCompletionMessageParam] = [
        *first,
        {"role": "assistant", "content": "Welcome!"},
        {"role": "user", "content": "again"},
    ]
    with openai_client(server) as client:
        answers = [
            client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content
            for messages in (first, second)
        ]
    assert answers == ["Welcome!", "Welcome back."]


def test_tools_offered_chooses_the_scenario(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    server.add_scenario("with-tools", reply="I could call a tool.", match={"tools_offered": True})
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    with openai_client(server) as client:
        ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
        offered = client.chat.completions.create(model="gpt-4o", messages=ask, tools=[tool])  # type: ignore[list-item]
        plain = client.chat.completions.create(model="gpt-4o", messages=ask)
    assert offered.choices[0].message.content == "I could call a tool."
    assert plain.choices[0].message.content == "You said: hi"


# --- tool results and system prompts in every dialect ------------------------------------------------

QUESTION = "Weather in Paris?"
CALL_ID = "call_1"


def _openai_chat_messages(result: str, tool: str) -> list[ChatCompletionMessageParam]:
    call = {"id": CALL_ID, "type": "function", "function": {"name": tool, "arguments": '{"city": "Paris"}'}}
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "tool_calls": [call]},  # type: ignore[list-item]
        {"role": "tool", "tool_call_id": CALL_ID, "content": result},
    ]


def openai_chat(server: MockServer, result: str, tool: str) -> str:
    with openai_client(server) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=_openai_chat_messages(result, tool))
    return reply.choices[0].message.content or ""


def azure_chat(server: MockServer, result: str, tool: str) -> str:
    with AzureOpenAI(
        azure_endpoint=server.url, api_version=EXAMPLE_VERSION, api_key="x", max_retries=0, default_headers=UNPACED
    ) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=_openai_chat_messages(result, tool))
    return reply.choices[0].message.content or ""


def responses(server: MockServer, result: str, tool: str) -> str:
    with openai_client(server) as client:
        reply = client.responses.create(
            model="gpt-4o",
            instructions=SYSTEM,
            input=[
                {"role": "user", "content": QUESTION},
                {"type": "function_call", "call_id": CALL_ID, "name": tool, "arguments": '{"city": "Paris"}'},
                {"type": "function_call_output", "call_id": CALL_ID, "output": result},
            ],
        )
    return reply.output_text


def anthropic_messages(server: MockServer, result: str, tool: str) -> str:
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, default_headers=UNPACED) as client:
        message = client.messages.create(
            model="claude-mock-1",
            max_tokens=256,
            system=SYSTEM,
            messages=[
                {"role": "user", "content": QUESTION},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": CALL_ID, "name": tool, "input": {"city": "Paris"}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": CALL_ID, "content": result}]},
            ],
        )
    return "".join(block.text for block in message.content if block.type == "text")


def gemini(server: MockServer, result: str, tool: str) -> str:
    options = types.HttpOptions(base_url=server.url, headers=UNPACED)
    with genai.Client(api_key="x", http_options=options) as client:
        response = client.models.generate_content(
            model="gemini-2.5-flash",
            contents=[
                types.Content(role="user", parts=[types.Part(text=QUESTION)]),
                types.Content(
                    role="model",
                    parts=[types.Part(function_call=types.FunctionCall(name=tool, args={"city": "Paris"}))],
                ),
                types.Content(
                    role="user",
                    parts=[
                        types.Part(function_response=types.FunctionResponse(name=tool, response={"result": result}))
                    ],
                ),
            ],
            config=types.GenerateContentConfig(system_instruction=SYSTEM),
        )
    return response.text or ""


def ollama_chat(server: MockServer, result: str, tool: str) -> str:
    client = ollama.Client(host=server.url, headers=UNPACED)
    try:
        response = client.chat(
            model="llama3.2",
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": tool, "arguments": {"city": "Paris"}}}],
                },
                {"role": "tool", "tool_name": tool, "content": result},
            ],
            stream=False,
        )
    finally:
        client.close()  # type: ignore[no-untyped-call]  # the client's close() has no annotations
    return response.message.content or ""


DIALECTS = [openai_chat, azure_chat, responses, anthropic_messages, gemini, ollama_chat]


@pytest.fixture
def weather_server(make_server: Callable[..., MockServer]) -> MockServer:
    server = make_server()
    server.add_scenario(
        "weather-result",
        reply="It is sunny in Paris.",
        match={"last_role": "tool", "tool_result": {"name": "^get_weather$", "content": "(?i)sunny"}},
    )
    return server


@pytest.mark.parametrize("send", DIALECTS)
def test_a_tool_result_chooses_the_scenario_in_every_dialect(
    weather_server: MockServer, send: Callable[[MockServer, str, str], str]
) -> None:
    assert send(weather_server, "Sunny, 24 C", "get_weather") == "It is sunny in Paris."
    assert send(weather_server, "Rain", "get_weather") != "It is sunny in Paris."
    assert send(weather_server, "Sunny, 24 C", "get_forecast") != "It is sunny in Paris."


@pytest.mark.parametrize("send", DIALECTS)
def test_the_last_role_and_the_system_prompt_choose_the_scenario_in_every_dialect(
    make_server: Callable[..., MockServer], send: Callable[[MockServer, str, str], str]
) -> None:
    server = make_server()
    server.add_scenario("tool-turn", reply="Back from the tool.", match={"last_role": "tool", "system": "interviewer"})
    server.add_scenario("other", reply="Someone else.", match={"last_role": "tool", "system": "^nobody$"})
    assert send(server, "Rain", "get_weather") == "Back from the tool."


def test_a_tool_result_is_matched_by_the_call_it_answers(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    server.add_scenario("first-call", reply="Result of call 1.", match={"tool_result": {"call_id": f"^{CALL_ID}$"}})
    assert openai_chat(server, "Rain", "get_weather") == "Result of call 1."
    assert anthropic_messages(server, "Rain", "get_weather") == "Result of call 1."


def test_results_before_the_last_user_message_are_not_this_turns() -> None:
    body = {
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "tool_calls": [{"id": CALL_ID, "function": {"name": "get_weather"}}]},
            {"role": "tool", "tool_call_id": CALL_ID, "content": "Sunny"},
            {"role": "assistant", "content": "It is sunny."},
            {"role": "user", "content": "Thanks"},
        ]
    }
    facts = conversation.openai_chat(body)
    assert (facts.turn, facts.last_role, facts.tool_results) == (2, "user", ())
    facts = conversation.openai_chat({"messages": body["messages"][:3]})
    assert facts.tool_results == (ToolResult(CALL_ID, "get_weather", "Sunny"),)


def test_an_anthropic_message_of_results_and_text_is_the_users() -> None:
    content = [{"type": "tool_result", "tool_use_id": CALL_ID, "content": [{"type": "text", "text": "Sunny"}]}]
    results_alone = conversation.anthropic({"messages": [{"role": "user", "content": content}]})
    with_text = conversation.anthropic(
        {"messages": [{"role": "user", "content": [*content, {"type": "text", "text": "and tomorrow?"}]}]}
    )
    assert (results_alone.turn, results_alone.last_role) == (0, "tool")
    assert (with_text.turn, with_text.last_role) == (1, "user")
    assert with_text.tool_results == (ToolResult(CALL_ID, "", "Sunny"),)


README = Path(__file__).parent.parent / "README.md"


def test_the_readme_walk_through_prints_each_turns_reply(
    make_server: Callable[..., MockServer], capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("A multi-turn chat with the openai SDK") :]
    code = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    server = make_server()
    exec(compile(code.replace("http://127.0.0.1:8383", server.url), "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == ["Hello! What is your name?", "Nice to meet you, Ada.", "Goodbye."]
