"""Which tool calls a request's history leaves without a result, and which results it sends twice:
read from each dialect's messages, as the journal records them for the verdict."""

from __future__ import annotations

from typing import Any

from mock_server.http.conversation import anthropic, openai_chat, responses
from mock_server.journal.trail import trail_of
from mock_server.scenarios.conversation import Conversation

USER = {"role": "user", "content": "Weather in Paris?"}


def called(*ids: str, name: str = "get_weather") -> dict[str, Any]:
    calls = [{"id": i, "type": "function", "function": {"name": name, "arguments": "{}"}} for i in ids]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def result(call_id: str | None) -> dict[str, Any]:
    message = {"role": "tool", "content": "sunny"}
    return message if call_id is None else {**message, "tool_call_id": call_id}


def chat(*messages: dict[str, Any]) -> Conversation:
    return openai_chat({"messages": list(messages)})


def test_a_call_without_a_result_is_unanswered() -> None:
    ledger = chat(USER, called("a", "b"), result("a")).ledger
    assert ledger.open == (("b", "get_weather"),)
    assert (ledger.returned, ledger.repeated) == (("a",), ())


def test_results_kept_in_the_history_are_not_repeats_but_a_second_result_is() -> None:
    loop = [USER, called("a"), result("a"), {"role": "assistant", "content": "Sunny."}, USER, called("b")]
    assert chat(*loop, result("b")).ledger.repeated == ()
    assert chat(*loop, result("b")).ledger.returned == ("b",)
    assert chat(*loop, result("b"), result("a")).ledger.repeated == ("a",)
    assert chat(USER, called("a"), result("a"), result("a")).ledger.repeated == ("a",)


def test_an_id_the_model_gives_again_in_a_later_turn_is_a_new_call() -> None:
    # A scenario's `tool_calls` (without `replies`) give the same ids every time.
    loop = [USER, called("a"), result("a"), {"role": "assistant", "content": "Sunny."}, USER, called("a"), result("a")]
    ledger = chat(*loop).ledger
    assert (ledger.open, ledger.repeated) == ((), ())


def test_a_result_without_an_id_answers_the_oldest_open_call() -> None:
    ledger = chat(USER, called("a", "b"), result(None)).ledger  # Ollama's tool messages name no call
    assert ledger.open == (("b", "get_weather"),)


def test_anthropic_tool_results_answer_tool_uses() -> None:
    use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    back = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
    messages = [USER, {"role": "assistant", "content": [use]}, {"role": "user", "content": [back]}]
    assert anthropic({"messages": messages}).ledger.open == ()
    assert anthropic({"messages": [*messages[:2], USER]}).ledger.open == (("toolu_1", "get_weather"),)


def test_a_responses_request_answers_the_calls_of_the_response_it_continues() -> None:
    stored = Conversation(calls=(("call_1", "get_weather"),))
    stored = Conversation(calls=stored.calls, ledger=stored.ledger.with_calls(stored.calls))
    output = {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
    answered = responses({"input": [output]}).after(stored)
    assert (answered.ledger.open, answered.ledger.repeated) == ((), ())
    skipped = responses({"input": "And tomorrow?"}).after(stored)
    assert skipped.ledger.open == (("call_1", "get_weather"),)
    resent = responses({"input": [{"type": "function_call", "call_id": "call_1", "name": "get_weather"}, output]})
    assert resent.after(stored).ledger.open == ()  # the call sent again with its output
    kept = Conversation(calls=answered.calls, ledger=answered.ledger.with_calls(()))
    again = responses({"input": [output]}).after(kept)
    assert again.ledger.repeated == ("call_1",)


def test_the_trail_is_none_without_tools_and_bounded_with_many() -> None:
    assert trail_of(chat(USER)) is None
    many = [f"c{i}" for i in range(500)]
    trail = trail_of(chat(USER, called(*many)))
    assert trail is not None
    assert len(trail.history) == len(trail.unanswered) == 64
    assert trail.history[-1] == "c499"
