"""What /openapi.json says about request bodies and queries. The routes read raw bodies (to answer
every mistake in their own error shape), so FastAPI cannot infer these; each route names its own.

The schemas describe what a client should send; the server still answers anything else with a 4xx
saying what is wrong, which is what schemathesis checks against them.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": "string"}
_MESSAGE = {
    "type": "object",
    "properties": {"role": _STRING, "content": {"anyOf": [_STRING, {"type": "array", "items": {"type": "object"}}]}},
}
_MESSAGES = {"anyOf": [_STRING, {"type": "array", "items": _MESSAGE}]}
_COMMON = {
    "model": {"type": "string", "description": "a model, or the name of a scenario"},
    "scenario": {"type": "string", "description": "the scenario to play"},
    "stream": {"type": "boolean"},
}
_CONVERSATION = {
    "convGroupId": {"type": "string", "description": "the conversation it belongs to: `replies` count its requests"}
}


def json_body(description: str, properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """`openapi_extra` for a route that takes a JSON object."""
    schema: dict[str, Any] = {"type": "object", "properties": {**_COMMON, **properties}}
    if required:
        schema["required"] = list(required)
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


def query(*names: str) -> dict[str, Any]:
    """`openapi_extra` for a route that reads these string query parameters."""
    return {"parameters": [{"name": name, "in": "query", "required": False, "schema": _STRING} for name in names]}


COMPLETIONS_GET = query("messages", "model", "scenario")
COMPLETIONS_POST = json_body(
    "The prompt comes from `messages`, `request` (fetch-event-source), `prompt` or `input`; other fields are ignored.",
    {
        "messages": _MESSAGES,
        "request": {"anyOf": [_STRING, {"type": "object"}]},
        "prompt": _STRING,
        "input": _MESSAGES,
        **_CONVERSATION,
    },
)
CHAT = json_body(
    "An OpenAI Chat Completions request.",
    {
        "messages": _MESSAGES,
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        **_CONVERSATION,
    },
    required=("messages",),
)
LEGACY = json_body(
    "An OpenAI legacy Completions request.",
    {"prompt": {"anyOf": [_STRING, {"type": "array", "items": _STRING}]}, **_CONVERSATION},
    required=("prompt",),
)
RESPONSES = json_body(
    "An OpenAI Responses API request.",
    {
        "input": _MESSAGES,
        "instructions": _STRING,
        "previous_response_id": {"type": "string", "description": "a stored response this one continues"},
        "store": {"type": "boolean", "description": "false: not kept for GET /v1/responses/{id}"},
        **_CONVERSATION,
    },
    required=("input",),
)
MESSAGES = json_body(
    "An Anthropic Messages request.",
    {"messages": _MESSAGES, "max_tokens": {"type": "integer", "minimum": 1}, **_CONVERSATION},
    required=("messages", "max_tokens"),
)
_TOKENS = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
EMBEDDINGS = json_body(
    "An OpenAI Embeddings request: vectors made from the inputs, the same for the same text, model and seed.",
    {
        "input": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 2048},
                _TOKENS,
                {"type": "array", "items": _TOKENS, "minItems": 1, "maxItems": 2048},
            ]
        },
        "dimensions": {"type": "integer", "minimum": 1},
        "encoding_format": {"enum": ["float", "base64"]},
        "user": _STRING,
    },
    required=("input", "model"),
)
SCENARIO = {
    "requestBody": {
        "required": True,
        "description": "A scenario object (see the README's Scenarios section), as JSON, or as YAML with "
        "`Content-Type: application/yaml`.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_THINK = {"anyOf": [{"type": "boolean"}, {"enum": ["high", "medium", "low", "max"]}]}
OLLAMA_CHAT = json_body(
    "An Ollama chat request; it streams (NDJSON) unless `stream` is false.",
    {"messages": _MESSAGES, "think": _THINK, **_CONVERSATION},
)
OLLAMA_GENERATE = json_body(
    "An Ollama generate request; it streams (NDJSON) unless `stream` is false.",
    {"prompt": _STRING, "think": _THINK, **_CONVERSATION},
)
OLLAMA_EMBED = json_body(
    "An Ollama embed request: vectors made from the inputs, the same for the same text, model and seed.",
    {
        "input": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": _STRING, "minItems": 1}]},
        "dimensions": {"type": "integer", "minimum": 1},
        "truncate": {"type": "boolean"},
    },
    required=("input", "model"),
)
OLLAMA_SHOW = {
    "requestBody": {
        "required": True,
        "description": "The model to describe: a scenario's name.",
        "content": {"application/json": {"schema": {"type": "object", "properties": {"model": _STRING}}}},
    }
}
