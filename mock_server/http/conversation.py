"""Reading a request's conversation (`Conversation`: its turn, last role, tool results, tools offered
and system prompt) out of each message shape the endpoints accept.

Each shape has one reader that turns its messages into `_Message`s (a role, whether it holds text of
its own, the tool calls it makes and the tool results it sends); `_facts` makes the same facts of them
whatever the dialect. The readers are lenient: what the prompt's reader already refuses, or a shape
they do not know, they pass over rather than fail on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mock_server.scenarios.conversation import (
    NO_CONVERSATION,
    NO_OFFER,
    Conversation,
    OfferedTool,
    Role,
    ToolOffer,
    ToolResult,
)
from mock_server.scenarios.tool_ledger import EMPTY_LEDGER, ToolLedger, ledger_of

CONVERSATION_FIELD = "convGroupId"
"""The body field that names the conversation a request belongs to (its sequences are its own)."""

_ROLES: Mapping[str, Role] = {
    "user": "user",
    "assistant": "assistant",
    "model": "assistant",  # Gemini's
    "tool": "tool",
    "function": "tool",  # OpenAI's older function results, Gemini's older role for them
    "system": "system",
    "developer": "system",  # OpenAI's name for the system prompt of reasoning models
}


@dataclass(frozen=True, slots=True)
class _Message:
    role: Role
    text: str = ""
    calls: tuple[tuple[str, str], ...] = ()
    """The tool calls it makes, as (call id, tool name)."""
    results: tuple[ToolResult, ...] = ()


def conversation_key(body: Mapping[str, Any]) -> str | None:
    """The conversation the body names in `convGroupId` (a string or a number), if any."""
    value = body.get(CONVERSATION_FIELD)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value) or None


def prompt_alone(body: Mapping[str, Any], system: object = None) -> Conversation:
    """A request that is one prompt, not a list of messages (legacy completions, Ollama's generate)."""
    offer, text = tool_offer(body), _text(system)
    return NO_CONVERSATION if offer is NO_OFFER and not text else Conversation(offer=offer, system=text)


def openai_chat(body: Mapping[str, Any]) -> Conversation:
    """OpenAI chat `messages` (also Azure's and Ollama's /api/chat): `role: tool` results with their
    `tool_call_id`, assistant `tool_calls`, `system` and `developer` messages."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return prompt_alone(body)
    read = [_chat_message(message) for message in messages if isinstance(message, Mapping)]
    return _facts([message for message in read if message is not None], tool_offer(body))


def _chat_message(message: Mapping[str, Any]) -> _Message | None:
    role = _ROLES.get(str(message.get("role", "user")))
    if role is None:
        return None
    content = _text(message.get("content"))
    if role == "tool":
        call_id = _string(message.get("tool_call_id"))
        name = _string(message.get("tool_name")) or _string(message.get("name"))  # Ollama's, OpenAI's function
        return _Message("tool", results=(ToolResult(call_id, name, content),))
    calls = tuple(
        (_string(call.get("id")), _string(_mapping(call.get("function")).get("name")))
        for call in _mappings(message.get("tool_calls"))
    )
    return _Message(role, content, calls)


def responses(body: Mapping[str, Any]) -> Conversation:
    """OpenAI Responses `input`: a string, or items (messages, `function_call`s and their
    `function_call_output`s); `instructions` is the system prompt."""
    items = body.get("input")
    instructions = _text(body.get("instructions"))
    if not isinstance(items, list):
        return prompt_alone(body, instructions)
    read: list[_Message] = []
    for item in _mappings(items):
        kind = item.get("type", "message")
        if kind == "function_call":
            read.append(_Message("assistant", calls=((_string(item.get("call_id")), _string(item.get("name"))),)))
        elif kind == "function_call_output":
            result = ToolResult(_string(item.get("call_id")), "", _text(item.get("output")))
            read.append(_Message("tool", results=(result,)))
        elif kind == "message" and (role := _ROLES.get(str(item.get("role", "user")))) is not None:
            read.append(_Message(role, _text(item.get("content"))))
    return _facts(read, tool_offer(body), instructions)


def anthropic(body: Mapping[str, Any]) -> Conversation:
    """Anthropic messages: `tool_use` blocks of the assistant, `tool_result` blocks of the user (a
    message of results alone is the tool's, not the user's), the top-level `system`."""
    read: list[_Message] = []
    for message in _mappings(body.get("messages")):
        role = _ROLES.get(str(message.get("role", "user")))
        if role is None:
            continue
        content = message.get("content")
        blocks = list(_mappings(content))
        calls = tuple(
            (_string(block.get("id")), _string(block.get("name")))
            for block in blocks
            if block.get("type") == "tool_use"
        )
        results = tuple(
            ToolResult(_string(block.get("tool_use_id")), "", _text(block.get("content")))
            for block in blocks
            if block.get("type") == "tool_result"
        )
        text = _text(content) if isinstance(content, str) else _text([b for b in blocks if b.get("type") == "text"])
        read.append(_Message("tool" if results and not text else role, text, calls, results))
    return _facts(read, tool_offer(body), _text(body.get("system")))


def gemini(body: Mapping[str, Any]) -> Conversation:
    """Gemini `contents`: `functionCall` parts of the model, `functionResponse` parts sent back (a
    content of responses alone is the tool's), `systemInstruction`."""
    read = [
        _parted(content.get("role"), list(_mappings(content.get("parts"))), _gemini_call, _gemini_result)
        for content in _mappings(body.get("contents"))
    ]
    system = body.get("systemInstruction", body.get("system_instruction"))
    instruction = system if isinstance(system, str) else _mapping(system).get("parts")  # a Content, or its text
    return _facts([message for message in read if message is not None], tool_offer(body), _text(instruction))


def _gemini_call(part: Mapping[str, Any]) -> tuple[str, str] | None:
    call = _mapping(part.get("functionCall"))
    return (_string(call.get("id")), _string(call.get("name"))) if call else None


def _gemini_result(part: Mapping[str, Any]) -> ToolResult | None:
    response = _mapping(part.get("functionResponse"))
    if not response:
        return None
    return ToolResult(_string(response.get("id")), _string(response.get("name")), _json(response.get("response")))


def bedrock_converse(body: Mapping[str, Any]) -> Conversation:
    """Bedrock's Converse `messages`: `toolUse` blocks of the assistant, `toolResult` blocks sent back
    (a message of results alone is the tool's), the `system` blocks, and the tools of `toolConfig`."""
    read = [
        _parted(message.get("role"), list(_mappings(message.get("content"))), _converse_call, _converse_tool_result)
        for message in _mappings(body.get("messages"))
    ]
    config = _mapping(body.get("toolConfig"))
    specs = [_mapping(tool.get("toolSpec")) for tool in _mappings(config.get("tools"))]
    tools = tuple(
        _offered({"name": spec.get("name"), "parameters": _mapping(spec.get("inputSchema")).get("json")})
        for spec in specs
        if spec
    )
    choice = _mapping(config.get("toolChoice"))
    named = _string(_mapping(choice.get("tool")).get("name")) or ("required" if "any" in choice else None)
    offer = ToolOffer(tools, named) if tools else NO_OFFER
    return _facts([message for message in read if message is not None], offer, _text(body.get("system")))


def _converse_call(block: Mapping[str, Any]) -> tuple[str, str] | None:
    use = _mapping(block.get("toolUse"))
    return (_string(use.get("toolUseId")), _string(use.get("name"))) if use else None


def _converse_tool_result(block: Mapping[str, Any]) -> ToolResult | None:
    result = _mapping(block.get("toolResult"))
    return ToolResult(_string(result.get("toolUseId")), "", _converse_result(result.get("content"))) if result else None


def _parted(
    role: object,
    parts: list[Mapping[str, Any]],
    call_of: Callable[[Mapping[str, Any]], tuple[str, str] | None],
    result_of: Callable[[Mapping[str, Any]], ToolResult | None],
) -> _Message | None:
    """A message whose content is a list of parts (Gemini's parts, Converse's blocks): its text parts,
    the calls and results `call_of` and `result_of` find; a message of results alone is the tool's."""
    known = _ROLES.get(str(role or "user"))
    if known is None:
        return None
    calls: list[tuple[str, str]] = []
    results: list[ToolResult] = []
    texts: list[str] = []
    for part in parts:  # one pass: a message is most often one text part
        if (call := call_of(part)) is not None:
            calls.append(call)
        if (result := result_of(part)) is not None:
            results.append(result)
        if isinstance(text := part.get("text"), str):
            texts.append(text)
    text = "".join(texts)
    return _Message("tool" if results and not text else known, text, tuple(calls), tuple(results))


def _converse_result(content: object) -> str:
    """A Converse tool result's content: its text blocks, and its JSON blocks as JSON."""
    return "".join(
        block["text"] if isinstance(block.get("text"), str) else _json(block.get("json"))
        for block in _mappings(content)
    )


def ollama_generate(body: Mapping[str, Any]) -> Conversation:
    """Ollama's /api/generate: one prompt, its `system` the system prompt."""
    return prompt_alone(body, body.get("system"))


def _facts(messages: list[_Message], offer: ToolOffer, system: str = "") -> Conversation:
    """The facts of a conversation's messages; a result that names only its call takes the name of the
    call it answers. One pass over the messages: most requests carry no calls nor results."""
    if not messages:
        return Conversation(offer=offer, system=system)
    calls: list[tuple[str, str]] = []
    prompts = [system] if system else []
    turn = last_user = 0
    carries_results = False
    for index, message in enumerate(messages):
        if message.role == "user":
            turn += 1
            last_user = index
        elif message.role == "system" and message.text:
            prompts.append(message.text)
        calls += message.calls
        carries_results = carries_results or bool(message.results)
    results: tuple[ToolResult, ...] = ()
    if carries_results:
        names = dict(calls)
        results = tuple(
            result if result.name else ToolResult(result.call_id, names.get(result.call_id, ""), result.content)
            for message in messages[last_user:]  # a user message may hold results of its own (Anthropic's)
            for result in message.results
        )
    return Conversation(
        turn=turn,
        last_role=messages[-1].role,
        tool_results=results,
        offer=offer,
        system="\n".join(prompts),
        calls=tuple(calls),
        ledger=_ledger(messages) if calls or carries_results else EMPTY_LEDGER,
    )


def _ledger(messages: list[_Message]) -> ToolLedger:
    """Which calls of the messages have their result (nothing to follow without calls or results)."""
    if not any(message.calls or message.results for message in messages):
        return EMPTY_LEDGER
    return ledger_of([(m.calls, tuple((r.call_id, r.name) for r in m.results)) for m in messages])


def tool_offer(body: Mapping[str, Any]) -> ToolOffer:
    """The tools a body offers, in any provider's shape (OpenAI chat's `{type: function, function:
    {name, parameters}}` and older `functions`, the Responses API's `{type: function, name,
    parameters}`, Anthropic's `{name, input_schema}`, Gemini's `functionDeclarations`), and its
    `tool_choice` (Gemini's `toolConfig.functionCallingConfig`)."""
    tools: list[OfferedTool] = []
    for field in ("tools", "functions"):
        for tool in _mappings(body.get(field)):
            declared = tool.get("functionDeclarations", tool.get("function_declarations"))
            if isinstance(declared, list):
                tools += [_offered(d) for d in _mappings(declared)]
            else:
                tools.append(_offered(_mapping(tool.get("function")) or tool))
    if not tools:
        return NO_OFFER
    choice, parallel = _tool_choice(body)
    return ToolOffer(tuple(tools), choice, parallel)


def _offered(tool: Mapping[str, Any]) -> OfferedTool:
    name = _string(tool.get("name")) or _string(tool.get("type"))  # a built-in tool has only its type
    for field in ("parameters", "input_schema", "parametersJsonSchema", "parameters_json_schema"):
        schema = tool.get(field)
        if isinstance(schema, Mapping):
            return OfferedTool(name, json.dumps(schema, sort_keys=True))
    return OfferedTool(name)


def _tool_choice(body: Mapping[str, Any]) -> tuple[str | None, bool]:
    """What the body lets the model do with its tools (see ToolOffer.choice), and whether it may call
    several at once."""
    parallel = body.get("parallel_tool_calls") is not False
    given = body.get("tool_choice")
    if isinstance(given, str):  # OpenAI's none, auto, required
        return {"none": "none", "required": "required"}.get(given), parallel
    if isinstance(given, Mapping):
        kind = given.get("type")
        parallel = parallel and given.get("disable_parallel_tool_use") is not True  # Anthropic's
        if kind in ("none", "any"):
            return ("none" if kind == "none" else "required"), parallel
        name = _string(given.get("name")) or _string(_mapping(given.get("function")).get("name"))
        return name or None, parallel
    config = _mapping(_mapping(body.get("toolConfig")).get("functionCallingConfig"))
    mode = str(config.get("mode", "")).upper()
    allowed = [name for name in config.get("allowedFunctionNames") or [] if isinstance(name, str)]
    if mode == "NONE":
        return "none", parallel
    if mode == "ANY":
        return (allowed[0] if len(allowed) == 1 else "required"), parallel
    return None, parallel


def _text(value: object) -> str:
    """The text of a content: a string, or the `text` of its parts (nested contents read too)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(part) if isinstance(part, list) else _part_text(part) for part in value)
    return ""


def _part_text(part: object) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping):
        text = part.get("text")
        if isinstance(text, str):
            return text
        return _text(part.get("content"))  # a tool_result block's content may itself be blocks
    return ""


def _json(value: object) -> str:
    """A value a tool returned as an object, as the text a `content` regex reads: its JSON."""
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: object) -> Mapping[str, Any]:
    if value is None:  # most often: an absent field, told apart without the slower check of an ABC
        return {}
    return value if isinstance(value, Mapping) else {}


def _mappings(value: object) -> Iterable[Mapping[str, Any]]:
    """The objects of a list (nothing, when it is not one)."""
    return (item for item in value if isinstance(item, Mapping)) if isinstance(value, list) else ()
