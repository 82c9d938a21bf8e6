"""Gemini's edge: what its requests carry (the model in the path, the prompt in `contents`, the method
saying whether to stream), how a stream is framed (`alt=sse`, else a JSON array), what /openapi.json
says of them, and `GET /v1beta/models`, every scenario as a Gemini model."""

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
from mock_server.http.output_format import gemini_output
from mock_server.http.prompt import PromptInfo, json_type
from mock_server.http.state import state_of
from mock_server.wire.framing import GOOGLE_JSON_ARRAY, GOOGLE_SSE, Framing
from mock_server.wire.outcome import Outcome

VERSIONS = ("v1beta", "v1")
"""google-genai 1.x calls /v1beta by default, 3.x /v1 (`HttpOptions(api_version=...)` chooses)."""
METHODS = (("generateContent", False), ("streamGenerateContent", True))
"""Each generating method and whether it streams: Gemini says so in the path, not the body."""
GENERATION_METHODS = [method for method, _ in METHODS]
_CONTENT_EXAMPLE = '[{"role": "user", "parts": [{"text": "hi"}]}]'


def read_generate_content(body: Mapping[str, Any], params: Mapping[str, str]) -> ModelRequest:
    """`POST .../models/{model}:generateContent`: one whole `GenerateContentResponse`."""
    return _read(body, params, stream=False)


def read_stream_generate_content(body: Mapping[str, Any], params: Mapping[str, str]) -> ModelRequest:
    """`POST .../models/{model}:streamGenerateContent`: the response in chunks."""
    return _read(body, params, stream=True)


def _read(body: Mapping[str, Any], params: Mapping[str, str], *, stream: bool) -> ModelRequest:
    contents = body.get("contents")
    if contents is None:
        raise RequestBodyError(
            f"Missing required parameter: `contents` (a list of contents, e.g. {_CONTENT_EXAMPLE}).", param="contents"
        )
    if not isinstance(contents, list):
        raise RequestBodyError(
            f"`contents` must be a list of contents like {_CONTENT_EXAMPLE}, not {json_type(contents)}.",
            param="contents",
        )
    scenario = body.get("scenario")
    if scenario is not None and not isinstance(scenario, str):
        raise RequestBodyError("`scenario` must be a scenario name (a string).", param="scenario")
    return ModelRequest(
        PromptInfo(prompt_text(contents), params.get("model")),
        stream=stream,
        scenario=scenario,
        conversation=conversation.gemini(body),
        conversation_key=conversation.conversation_key(body),
        output=gemini_output(body),
    )


def prompt_text(contents: list[Any]) -> str:
    """The text of the last user content (of the last content when none is the user's): its text
    parts joined. Raises RequestBodyError naming the first field of the wrong shape."""
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        if not isinstance(content, Mapping):
            raise RequestBodyError(
                f'`{where}` must be an object like {{"role": "user", "parts": [{{"text": "hi"}}]}}, '
                f"not {json_type(content)}.",
                param=where,
            )
        role, parts = content.get("role"), content.get("parts")
        if role is not None and not isinstance(role, str):
            raise RequestBodyError(f"`{where}.role` must be a string, not {json_type(role)}.", param=f"{where}.role")
        if parts is not None and not isinstance(parts, list):
            raise RequestBodyError(
                f'`{where}.parts` must be a list of parts like [{{"text": "hi"}}], not {json_type(parts)}.',
                param=f"{where}.parts",
            )
        for number, part in enumerate(parts or []):
            text = part.get("text") if isinstance(part, Mapping) else None
            if not isinstance(part, Mapping) or not (text is None or isinstance(text, str)):
                field = f"{where}.parts[{number}]"
                wrong = f"`text` {json_type(text)}" if isinstance(part, Mapping) else json_type(part)
                raise RequestBodyError(f'`{field}` must be a part like {{"text": "hi"}}, not {wrong}.', param=field)
    if not contents:
        return ""
    users = [content for content in contents if content.get("role") in (None, "user")]
    chosen = users[-1] if users else contents[-1]
    return "".join(part["text"] for part in chosen.get("parts") or [] if isinstance(part.get("text"), str))


def framing(query: Mapping[str, str]) -> Framing:
    """Server-sent events with `alt=sse` (what the SDKs ask for), else a JSON array, as Google answers."""
    return GOOGLE_SSE if query.get("alt") == "sse" else GOOGLE_JSON_ARRAY


def example_path(version: str, method: str, query: str = "") -> Callable[[str, bool], str]:
    """Where a request for (model, stream) goes: the path names the model, and `query` follows it
    (`alt=sse`, which the SDKs ask their streams for)."""
    return lambda model, stream: f"/{version}/models/{model}:{method}{'?' + query if query else ''}"


def example(model: str, stream: bool, prompt: str) -> dict[str, Any]:
    """A request body for `prompt` (the model and whether to stream are in the path)."""
    return {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}


_STRING = {"type": "string"}
_PART = {"type": "object", "properties": {"text": _STRING}}
_CONTENT = {"type": "object", "properties": {"role": _STRING, "parts": {"type": "array", "items": _PART}}}
GENERATE_CONTENT: dict[str, Any] = {
    "parameters": [
        {"name": "model", "in": "path", "required": True, "schema": _STRING, "description": "a model, or a scenario"},
        {"name": "alt", "in": "query", "required": False, "schema": _STRING, "description": "`sse` for SSE"},
        {"name": "key", "in": "query", "required": False, "schema": _STRING, "description": "the API key"},
    ],
    "requestBody": {
        "required": True,
        "description": "A Gemini GenerateContentRequest; the prompt is the last user content's text parts.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "contents": {"type": "array", "items": _CONTENT},
                        "generationConfig": {"type": "object"},
                        "scenario": {"type": "string", "description": "the scenario to play"},
                    },
                    "required": ["contents"],
                }
            }
        },
    },
}
"""`openapi_extra` of the generating routes."""


async def models(request: Request) -> Response:
    """Gemini's model list: every scenario as `models/<name>`, described as /_mock/scenarios describes it."""
    state = state_of(request)
    entry = await state.open_entry(request, None)
    dialect = DIALECTS["gemini"]
    headers = {"X-Mock-Request-Id": str(entry.id)}
    try:
        authorize(state.settings.require_auth, request.headers, request.query_params, google_key=True)
    except MockLLMError as exc:
        entry.finish(exc.status, Outcome.ERROR_STATUS)
        return answer_error(exc, dialect, headers=headers)
    listed = [
        {
            "name": f"models/{item.scenario.name}",
            "version": "001",
            "displayName": item.scenario.name,
            "description": item.scenario.description or "",
            "supportedGenerationMethods": GENERATION_METHODS,
        }
        for item in state.catalog.entries()
    ]
    entry.finish(200, Outcome.COMPLETED)
    return JSONResponse({"models": listed}, headers=headers)
