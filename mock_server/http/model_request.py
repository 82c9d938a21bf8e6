"""The request path shared by the provider-compatible endpoints (/v1/...): auth, body, stream or not.

Each endpoint reads its own body shape into an `ApiRequest`; from there, one path answers them all
with the shared steps of `endpoints` (select, compile, render, play, record).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mock_server.dialects import DialectSpec
from mock_server.errors import BodyTooLargeError, MockLLMError, RequestBodyError
from mock_server.http.auth import authorize
from mock_server.http.pipeline import body_scenario, complete, error_response, open_record, state_of, stream
from mock_server.http.prompt import PromptInfo, json_type, parse_json_body
from mock_server.http.request_body import read_body


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """What an endpoint needs from a request body."""

    prompt: PromptInfo
    stream: bool = False
    include_usage: bool = False


BodyReader = Callable[[dict[str, Any]], ApiRequest]


async def respond(
    request: Request, dialect: DialectSpec, read: BodyReader, *, api_key_header: bool = False
) -> Response:
    """Answer a model request in `dialect`: a stream when the body asks for one, else the whole
    response; every mistake in the dialect's own error shape. The journal records it either way."""
    try:
        raw = await read_body(request, state_of(request).settings.max_body_bytes)
    except BodyTooLargeError as exc:
        return error_response(dialect, exc, open_record(request, None))
    record = open_record(request, raw)
    try:
        required = state_of(request).settings.require_auth
        authorize(required, request.headers, request.query_params, api_key_header=api_key_header)
        body = parse_json_body(raw)
        parsed = read(body)
        named = request.query_params.get("scenario") or body_scenario(body)
        if parsed.stream:
            return stream(request, record, dialect, parsed.prompt, named=named, include_usage=parsed.include_usage)
        return complete(request, record, dialect, parsed.prompt, named=named)
    except MockLLMError as exc:
        return error_response(dialect, exc, record)


def require(body: Mapping[str, Any], field: str, what: str) -> Any:
    """The value of a required field; raises RequestBodyError naming it and what it should be."""
    value = body.get(field)
    if value is None:
        raise RequestBodyError(f"Missing required parameter: `{field}` ({what}).", param=field)
    return value


def flag(body: Mapping[str, Any], field: str, path: str | None = None) -> bool:
    """An optional boolean field (false when absent or null)."""
    value = body.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        name = path or field
        raise RequestBodyError(f"`{name}` must be a boolean, not {json_type(value)}.", param=name)
    return value


def stream_options_usage(body: Mapping[str, Any]) -> bool:
    """`stream_options.include_usage` of an OpenAI request."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, Mapping):
        raise RequestBodyError(
            f'`stream_options` must be an object like {{"include_usage": true}}, not {json_type(options)}.',
            param="stream_options",
        )
    return flag(options, "include_usage", "stream_options.include_usage")
