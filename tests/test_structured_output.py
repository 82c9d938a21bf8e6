"""Structured output: a request that asks for JSON with a schema gets JSON valid against it, streamed
in pieces and the same for the same seed, through each provider's official SDK; the values are
checked with jsonschema, not by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, Literal

import httpx
import jsonschema
import ollama
import pytest
from anthropic import Anthropic
from google import genai
from google.genai import types as genai_types
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel, Field

from mock_server.http.server import MockServer
from mock_server.timeline.structured import MAX_DEPTH, OutputFormat, structured_reply, value_for

UNPACED = {"X-Mock-Chunk-Ms": "0"}


class Color(StrEnum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    zip_code: str = Field(min_length=5, max_length=5)


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=99)
    height_m: float = Field(gt=0.5, lt=2.5)
    favourite: Color
    tags: list[str] = Field(min_length=2, max_length=4)
    address: Address
    nickname: str | None
    kind: Literal["customer", "staff"]


class Contact(BaseModel):
    """Without bounds: anthropic's SDK sends a schema without them (they go into descriptions), yet
    checks the answer against the model with them."""

    name: str
    favourite: Color
    tags: list[str]
    nickname: str | None
    kind: Literal["customer", "staff"]


class Tree(BaseModel):
    label: str
    children: list[Tree]


SCHEMAS: dict[str, dict[str, Any]] = {
    "pydantic model with nested model, enum, bounds, optional": Person.model_json_schema(),
    "recursive model": Tree.model_json_schema(),
    "formats": {
        "type": "object",
        "properties": {f: {"type": "string", "format": f} for f in ("date", "date-time", "email", "uuid", "uri")},
        "required": ["date", "date-time", "email", "uuid", "uri"],
        "additionalProperties": False,
    },
    "numbers": {
        "type": "object",
        "properties": {
            "even": {"type": "integer", "multipleOf": 2, "minimum": 3, "maximum": 9},
            "open": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "negative": {"type": "integer", "maximum": -5},
            "tenths": {"type": "number", "multipleOf": 0.5, "minimum": 1},
        },
        "required": ["even", "open", "negative", "tenths"],
    },
    "combinators": {
        "anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "integer", "minimum": 10}],
        "$defs": {"unused": {"type": "null"}},
    },
    "allOf": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
        ]
    },
    "tuple and unique": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": {"type": "boolean"},
        "minItems": 2,
    },
    "type list and const": {
        "type": "object",
        "properties": {"maybe": {"type": ["null", "string"]}, "fixed": {"const": 42}},
        "required": ["maybe", "fixed"],
    },
    "map": {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
}


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=list(SCHEMAS))
@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_made_values_are_valid_against_their_schema(schema: dict[str, Any], seed: int) -> None:
    value = value_for(schema, seed)
    jsonschema.validate(value, schema)
    assert value_for(schema, seed) == value


def test_the_seed_chooses_the_values() -> None:
    schema = Person.model_json_schema()
    assert len({json.dumps(value_for(schema, seed)) for seed in range(5)}) == 5


def test_a_recursive_schema_ends() -> None:
    def depth(node: dict[str, Any]) -> int:
        return 1 + max((depth(child) for child in node["children"]), default=0)

    tree = value_for(Tree.model_json_schema(), 3)
    assert depth(tree) <= MAX_DEPTH + 1
    Tree.model_validate(tree)


def test_geminis_openapi_schema_with_upper_case_types_and_nullable() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING"}, "rain": {"type": "BOOLEAN", "nullable": True}},
        "required": ["city", "rain"],
    }
    value = value_for(schema, 0)
    assert isinstance(value["city"], str)
    assert value["rain"] in (True, False, None)


def test_a_reply_that_is_json_is_kept_and_any_other_is_replaced() -> None:
    output = OutputFormat({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    assert structured_reply(output, '{"n": 5}', 0) == '{"n": 5}'
    assert isinstance(json.loads(structured_reply(output, "You said: hi", 0))["n"], int)
    assert json.loads(structured_reply(OutputFormat(), "You said: hi", 0)) == {"reply": "You said: hi"}


# --- through the SDKs ----------------------------------------------------------------------------


@pytest.fixture
def openai_client(server: MockServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
        yield client


def test_openai_parse_returns_a_valid_model(openai_client: OpenAI) -> None:
    completion = openai_client.chat.completions.parse(
        model="default", messages=[{"role": "user", "content": "who?"}], response_format=Person, extra_headers=UNPACED
    )
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person)
    again = openai_client.chat.completions.parse(
        model="default", messages=[{"role": "user", "content": "who?"}], response_format=Person, extra_headers=UNPACED
    )
    assert again.choices[0].message.parsed == person


def test_openai_stream_delivers_the_json_in_pieces(openai_client: OpenAI) -> None:
    with openai_client.chat.completions.stream(
        model="default", messages=[{"role": "user", "content": "who?"}], response_format=Person, extra_headers=UNPACED
    ) as stream:
        pieces = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(pieces) > 5
    assert isinstance(final.choices[0].message.parsed, Person)


def test_the_seed_override_changes_the_answer(openai_client: OpenAI) -> None:
    def parsed(seed: int) -> Person | None:
        return (
            openai_client.chat.completions.parse(
                model="default",
                messages=[{"role": "user", "content": "who?"}],
                response_format=Person,
                extra_headers={**UNPACED, "X-Mock-Seed": str(seed)},
            )
            .choices[0]
            .message.parsed
        )

    assert parsed(1) == parsed(1)
    assert parsed(1) != parsed(2)


def test_json_object_mode_wraps_a_text_reply(openai_client: OpenAI) -> None:
    completion = openai_client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"},
        extra_headers=UNPACED,
    )
    assert json.loads(completion.choices[0].message.content or "") == {"reply": "You said: hi"}


def test_responses_text_format_through_the_async_sdk(server: MockServer) -> None:
    async def parse() -> Any:
        async with AsyncOpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
            response = await client.responses.parse(input="who?", model="default", text_format=Person)
            return response.output_parsed

    assert isinstance(asyncio.run(parse()), Person)


def test_anthropic_parse_returns_a_valid_model(server: MockServer) -> None:
    with Anthropic(base_url=server.url, api_key="x", max_retries=0) as client:
        message = client.messages.parse(
            model="default",
            max_tokens=1000,
            messages=[{"role": "user", "content": "who?"}],
            output_format=Contact,
            extra_headers=UNPACED,
        )
    assert isinstance(message.parsed_output, Contact)


def test_gemini_response_schema_is_parsed(server: MockServer) -> None:
    options = genai_types.HttpOptions(base_url=server.url, headers=UNPACED)
    config = genai_types.GenerateContentConfig(response_mime_type="application/json", response_schema=Address)
    with genai.Client(api_key="x", http_options=options) as client:
        response = client.models.generate_content(model="default", contents="where?", config=config)
        chunks = client.models.generate_content_stream(model="default", contents="where?", config=config)
        streamed = "".join(chunk.text or "" for chunk in chunks)
    assert isinstance(response.parsed, Address)
    assert Address.model_validate_json(streamed) == response.parsed


def test_ollama_format_schema(server: MockServer) -> None:
    client = ollama.Client(host=server.url, headers=UNPACED)
    try:
        answer = client.chat(
            model="default", messages=[{"role": "user", "content": "who?"}], format=Person.model_json_schema()
        )
    finally:
        client.close()  # type: ignore[no-untyped-call]  # the client's close() has no annotations
    Person.model_validate_json(answer.message.content or "")


CHAT = {"model": "default", "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {**CHAT, "response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ("/v1/chat/completions", {**CHAT, "response_format": {"type": "xml"}}, "response_format.type"),
        (
            "/v1/chat/completions",
            {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"schema": "{}"}}},
            "response_format.json_schema.schema",
        ),
        ("/v1/chat/completions", {**CHAT, "response_format": "json"}, "response_format"),
        ("/v1/responses", {"model": "default", "input": "x", "text": {"format": []}}, "text.format"),
        ("/v1/messages", {**CHAT, "max_tokens": 9, "output_config": {"format": "json"}}, "output_config.format"),
        ("/api/chat", {**CHAT, "format": 5}, "format"),
    ],
)
def test_a_malformed_output_format_is_a_400_naming_the_field(
    server: MockServer, path: str, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(server.url + path, json=body)
    assert response.status_code == 400
    assert param in response.text


def test_geminis_malformed_response_schema_is_a_400_naming_it(server: MockServer) -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseSchema": "OBJECT"}}
    response = httpx.post(server.url + "/v1beta/models/default:generateContent", json=body)
    assert response.status_code == 400
    assert "generationConfig.responseSchema" in response.json()["error"]["message"]
