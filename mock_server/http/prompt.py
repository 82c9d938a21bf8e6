"""Reading the prompt and model out of every request shape the endpoints accept."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mock_server.errors import RequestBodyError
from mock_server.http.request_body import Body, decode_json


@dataclass(frozen=True, slots=True)
class PromptInfo:
    text: str
    model: str | None


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; raises RequestBodyError saying what is wrong with it."""
    return json_object(Body.read(raw))


def json_object(body: Body) -> dict[str, Any]:
    """A body read already, as a JSON object; raises RequestBodyError saying what is wrong with it."""
    if not body.raw.strip():
        raise RequestBodyError('The request body is empty; send a JSON object, e.g. {"messages": "hi"}.')
    if body.error is not None:
        raise body.error
    value = body.value
    if not isinstance(value, dict):
        raise RequestBodyError(f"The request body must be a JSON object, not {json_type(value)}.")
    return value


def prompt_from_query(query: Mapping[str, str]) -> PromptInfo:
    """`?messages=` is the prompt text, or a JSON list of chat messages."""
    raw = query.get("messages", "")
    text = raw
    if raw.lstrip().startswith("["):
        try:
            messages = decode_json(raw.encode())
        except RequestBodyError:  # not a list after all: the text is the prompt
            messages = None
        if isinstance(messages, list):
            text = _from_messages(messages, "messages")
    return PromptInfo(text, query.get("model"))


PROMPT_FIELDS = ("messages", "request", "prompt", "input")


def prompt_from_body(body: Mapping[str, Any], fields: Sequence[str] = PROMPT_FIELDS) -> PromptInfo:
    """The prompt from the first of `fields` the body has: by default `messages`, `request`
    (fetch-event-source), `prompt` or `input`."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestBodyError(f"`model` must be a string, not {json_type(model)}.", param="model")
    for field in fields:
        if field in body and body[field] is not None:
            return PromptInfo(_text_of(body[field], field), model)
    return PromptInfo("", model)


def _text_of(value: object, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            return "\n".join(value)
        return _from_messages(value, field)
    if field == "request" and isinstance(value, Mapping):
        return prompt_from_body(value).text
    raise RequestBodyError(
        f"`{field}` must be a string or a list of {{role, content}} messages, not {json_type(value)}.",
        param=field,
    )


def _from_messages(messages: list[Any], field: str) -> str:
    """The text of the last user message (or of the last message when none is from the user)."""
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise RequestBodyError(
                f'`{field}[{index}]` must be an object like {{"role": "user", "content": "hi"}}, '
                f"not {json_type(message)}.",
                param=f"{field}[{index}]",
            )
    if not messages:
        return ""
    users = [m for m in messages if m.get("role", "user") == "user"]
    chosen = users[-1] if users else messages[-1]
    return _content_text(chosen.get("content"), field)


def _content_text(content: object, field: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    raise RequestBodyError(
        f"a message's `content` in `{field}` must be a string or a list of parts, not {json_type(content)}.",
        param=field,
    )


def json_type(value: object) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)
