"""Where each provider's request asks for JSON output, and with which schema: OpenAI chat's
`response_format`, the Responses API's `text.format`, Anthropic's `output_config.format` (and the
beta's `output_format`), Gemini's `generationConfig`, Ollama's `format`. A field of the wrong shape
is a RequestBodyError naming it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mock_server.errors import RequestBodyError
from mock_server.http.prompt import json_type
from mock_server.timeline.structured import OutputFormat

_SCHEMA_EXAMPLE = '{"type": "object", "properties": {"name": {"type": "string"}}}'


def openai_chat_output(body: Mapping[str, Any]) -> OutputFormat | None:
    """`response_format`: `{"type": "json_schema", "json_schema": {"name", "schema"}}`, `{"type":
    "json_object"}` or `{"type": "text"}`."""
    given = _object(body, "response_format")
    if given is None:
        return None
    kind = _kind(given, "response_format")
    if kind == "json_schema":
        spec = _object(given, "json_schema", "response_format.json_schema", required=True)
        return _with_schema(spec, "response_format.json_schema")
    return OutputFormat() if kind == "json_object" else None


def responses_output(body: Mapping[str, Any]) -> OutputFormat | None:
    """`text.format`: `{"type": "json_schema", "name", "schema"}`, `{"type": "json_object"}` or text."""
    text = _object(body, "text")
    given = _object(text, "format", "text.format") if text is not None else None
    if given is None:
        return None
    kind = _kind(given, "text.format")
    if kind == "json_schema":
        return _with_schema(given, "text.format")
    return OutputFormat() if kind == "json_object" else None


def anthropic_output(body: Mapping[str, Any]) -> OutputFormat | None:
    """`output_config.format` (`{"type": "json_schema", "schema"}`), or the beta's `output_format`."""
    config = _object(body, "output_config")
    given = _object(config, "format", "output_config.format") if config is not None else None
    where = "output_config.format"
    if given is None:
        given, where = _object(body, "output_format"), "output_format"
    if given is None:
        return None
    return _with_schema(given, where) if _kind(given, where) == "json_schema" else None


def gemini_output(body: Mapping[str, Any]) -> OutputFormat | None:
    """`generationConfig.responseJsonSchema` (JSON Schema) or `.responseSchema` (Google's OpenAPI
    subset); `responseMimeType: application/json` alone asks for any JSON."""
    config = _object(body, "generationConfig")
    if config is None:
        return None
    for field in ("responseJsonSchema", "responseSchema"):
        schema = _object(config, field, f"generationConfig.{field}")
        if schema is not None:
            return OutputFormat(schema)
    return OutputFormat() if config.get("responseMimeType") == "application/json" else None


def ollama_output(body: Mapping[str, Any]) -> OutputFormat | None:
    """`format`: `"json"`, or a JSON Schema."""
    given = body.get("format")
    if given is None or given == "":
        return None
    if given == "json":
        return OutputFormat()
    if not isinstance(given, Mapping):
        raise RequestBodyError(
            f'`format` must be "json" or a JSON Schema object like {_SCHEMA_EXAMPLE}, not {json_type(given)}.',
            param="format",
        )
    return OutputFormat(given)


def _object(parent: Mapping[str, Any], field: str, path: str | None = None, *, required: bool = False) -> Any:
    """An optional object field (None when absent or null)."""
    name = path or field
    value = parent.get(field)
    if value is None:
        if required:
            raise RequestBodyError(f"Missing required parameter: `{name}`.", param=name)
        return None
    if not isinstance(value, Mapping):
        raise RequestBodyError(f"`{name}` must be an object, not {json_type(value)}.", param=name)
    return value


def _kind(given: Mapping[str, Any], path: str) -> str:
    kind = given.get("type")
    if kind not in ("json_schema", "json_object", "text"):
        shown = f"{kind!r}" if isinstance(kind, str) else json_type(kind)
        raise RequestBodyError(
            f'`{path}.type` must be "json_schema", "json_object" or "text", not {shown}.', param=f"{path}.type"
        )
    return str(kind)


def _with_schema(spec: Mapping[str, Any], path: str) -> OutputFormat:
    """The format's schema (none: any JSON object) and name."""
    schema = _object(spec, "schema", f"{path}.schema")
    name = spec.get("name")
    return OutputFormat(schema, name if isinstance(name, str) else "response")
