"""Bedrock runtime's edge: what its requests carry (the model id in the path, which picks the model
and so the scenario as `model` does elsewhere; the prompt in a Converse body's `messages`, or in an
InvokeModel body, which is the model's own), its operations, what /openapi.json says of them, and
`GET /foundation-models` (the `bedrock` client's `list_foundation_models`), every scenario as a model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mock_server.dialects import DIALECTS
from mock_server.errors import MockLLMError, RequestBodyError
from mock_server.http import conversation
from mock_server.http.auth import authorize
from mock_server.http.errors import answer_error
from mock_server.http.model_request import ModelRequest
from mock_server.http.output_format import anthropic_output
from mock_server.http.prompt import PromptInfo, json_type, prompt_from_body
from mock_server.http.state import state_of
from mock_server.wire.outcome import Outcome

OPERATIONS = (
    ("converse_stream", "converse-stream", "bedrock-converse", True),
    ("converse", "converse", "bedrock-converse", False),
    ("invoke_with_response_stream", "invoke-with-response-stream", "bedrock-invoke", True),
    ("invoke", "invoke", "bedrock-invoke", False),
)
"""Each operation: its name, its path's last segment, its dialect and whether it streams."""
_MESSAGES_EXAMPLE = '[{"role": "user", "content": [{"text": "hi"}]}]'


def path(operation: str) -> str:
    """The operation's path; a model id may be an ARN, whose `/` boto3 sends percent-encoded."""
    return f"/model/{{modelId:path}}/{operation}"


def read_converse(stream: bool) -> Callable[[Mapping[str, Any], Mapping[str, str]], ModelRequest]:
    """Converse and ConverseStream: the prompt is the text blocks of the last user message."""

    def read(body: Mapping[str, Any], params: Mapping[str, str]) -> ModelRequest:
        messages = body.get("messages")
        if not isinstance(messages, list):
            got = "nothing" if messages is None else json_type(messages)
            raise RequestBodyError(
                f"`messages` must be a list of messages like {_MESSAGES_EXAMPLE}, not {got}.", "messages"
            )
        for index, message in enumerate(messages):
            content = message.get("content") if isinstance(message, Mapping) else None
            if not isinstance(content, list):
                where = f"messages[{index}]" if not isinstance(message, Mapping) else f"messages[{index}].content"
                raise RequestBodyError(
                    f'`{where}` must be a message like {{"role": "user", "content": [{{"text": "hi"}}]}}.', where
                )
        prompt = prompt_from_body({"messages": messages}, fields=("messages",))
        return ModelRequest(
            PromptInfo(prompt.text, params.get("modelId")),
            stream=stream,
            scenario=_scenario(body),
            conversation=conversation.bedrock_converse(body),
            conversation_key=conversation.conversation_key(body),
        )

    return read


def read_invoke(stream: bool) -> Callable[[Mapping[str, Any], Mapping[str, str]], ModelRequest]:
    """InvokeModel and its stream: the body is the model's own (Anthropic's Messages body for Claude);
    the prompt comes from its `messages`, `prompt` or `inputText`, and `scenario` may name a scenario."""

    def read(body: Mapping[str, Any], params: Mapping[str, str]) -> ModelRequest:
        prompt = prompt_from_body(body, fields=("messages", "prompt", "inputText"))
        return ModelRequest(  # Claude's body is Anthropic's Messages request
            PromptInfo(prompt.text, params.get("modelId")),
            stream=stream,
            scenario=_scenario(body),
            conversation=conversation.anthropic(body),
            conversation_key=conversation.conversation_key(body),
            output=anthropic_output(body),
        )

    return read


def _scenario(body: Mapping[str, Any]) -> str | None:
    """The body's `scenario` field (boto3 sends an InvokeModel body as it is given, so one can carry it)."""
    value = body.get("scenario")
    if value is not None and not isinstance(value, str):
        raise RequestBodyError("`scenario` must be a scenario name (a string).", param="scenario")
    return value


def example_path(operation: str) -> Callable[[str, bool], str]:
    return lambda model, stream: f"/model/{model}/{operation}"


def example_converse(model: str, stream: bool, prompt: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": prompt}]}], "inferenceConfig": {"maxTokens": 256}}


def example_invoke(model: str, stream: bool, prompt: str) -> dict[str, Any]:
    """An Anthropic Messages body as Bedrock takes it: no `model`, no `stream`."""
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
    }


_STRING = {"type": "string"}
_MODEL_ID = {
    "name": "modelId",
    "in": "path",
    "required": True,
    "schema": _STRING,
    "description": "a model id, or a scenario",
}
CONVERSE_OPENAPI: dict[str, Any] = {
    "parameters": [_MODEL_ID],
    "requestBody": {
        "required": True,
        "description": "A Converse request; the prompt is the last user message's text blocks.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "messages": {"type": "array", "items": {"type": "object"}},
                        "system": {"type": "array", "items": {"type": "object"}},
                        "inferenceConfig": {"type": "object"},
                        "toolConfig": {"type": "object"},
                    },
                    "required": ["messages"],
                }
            }
        },
    },
}
INVOKE_OPENAPI: dict[str, Any] = {
    "parameters": [_MODEL_ID],
    "requestBody": {
        "required": True,
        "description": "The model's own body (Anthropic's Messages body for Claude); answered in Anthropic's shape.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}


REGION = "us-east-1"
"""The region the foundation models' ARNs name (the server has none)."""


async def foundation_models(request: Request) -> Response:
    """`ListFoundationModels`: every scenario as a model that streams text, in /_mock/scenarios' order."""
    state = state_of(request)
    entry = await state.open_entry(request, None)
    dialect = DIALECTS["bedrock-converse"]
    headers = {"X-Mock-Request-Id": str(entry.id), dialect.request_id_header: str(entry.id)}
    try:
        authorize(state.settings.require_auth, request.headers, request.query_params, aws_signature=True)
    except MockLLMError as exc:
        entry.finish(exc.status, Outcome.ERROR_STATUS)
        return answer_error(exc, dialect, headers=headers)
    summaries = [
        {
            "modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{name}",
            "modelId": name,
            "modelName": name,
            "providerName": "mock-llm-sse",
            "inputModalities": ["TEXT"],
            "outputModalities": ["TEXT"],
            "responseStreamingSupported": True,
            "customizationsSupported": [],
            "inferenceTypesSupported": ["ON_DEMAND"],
            "modelLifecycle": {"status": "ACTIVE"},
        }
        for name in state.catalog.names
    ]
    entry.finish(200, Outcome.COMPLETED)
    return JSONResponse({"modelSummaries": summaries}, headers=headers)
