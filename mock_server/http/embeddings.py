"""`POST /v1/embeddings` in OpenAI's shape: the request read and checked, and the answer made from
its inputs (`mock_server.embeddings`), item by item, for the pipeline to play with the scenario's
status, waits and faults."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mock_server.embeddings import MODEL_DIMENSIONS, Embedder, default_dimensions
from mock_server.errors import RequestBodyError
from mock_server.http.model_request import NO_PARAMS, ModelRequest
from mock_server.http.prompt import PromptInfo, json_type
from mock_server.wire.frames import to_json
from mock_server.wire.item_body import ItemBody

MAX_INPUTS = 2048
"""OpenAI's limit on the inputs of one request."""
MAX_OTHER_DIMENSIONS = 4096
"""The most dimensions a model OpenAI does not make may be asked for; OpenAI's own go up to their native size."""
FIXED_DIMENSIONS = frozenset({"text-embedding-ada-002"})
"""Models that refuse `dimensions`, as OpenAI's ada-002 does."""
ENCODINGS = ("float", "base64")
_INPUT = "a string, a list of strings, a list of token ids or a list of lists of token ids"

EmbeddingInput = str | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EmbeddingsAnswer:
    """What an embeddings request asks for; its body is the vectors of its inputs, in order."""

    inputs: tuple[EmbeddingInput, ...]
    model: str
    dimensions: int
    encoding_format: str

    @property
    def items(self) -> int:
        return len(self.inputs)

    @property
    def work(self) -> int:
        """Characters (or tokens) times coordinates: about a nanosecond each."""
        return sum(len(item) + 1 for item in self.inputs) * self.dimensions

    @property
    def prompt_tokens(self) -> int:
        """The inputs' tokens: a list of token ids counts its ids, a text its words (at least one)."""
        return sum(max(1, len(item.split())) if isinstance(item, str) else len(item) for item in self.inputs)

    def body(self, seed: int) -> ItemBody:
        embedder = Embedder(model=self.model, dimensions=self.dimensions, seed=seed)
        if self.encoding_format == "base64":
            vectors = (b'"' + base64.b64encode(embedder.float32(item)) + b'"' for item in self.inputs)
        else:
            vectors = (embedder.json(item).encode() for item in self.inputs)
        items = [b'{"object":"embedding","index":%d,"embedding":%s}' % pair for pair in enumerate(vectors)]
        tokens = self.prompt_tokens
        usage = f'"usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}'
        closing = f'],"model":{to_json(self.model)},{usage}}}'.encode()
        return ItemBody(b'{"object":"list","data":[', items, closing)


def read_embeddings(body: Mapping[str, Any], params: Mapping[str, str] = NO_PARAMS) -> ModelRequest:
    """POST /v1/embeddings: `input` and `model` required, `dimensions` and `encoding_format` checked
    as OpenAI checks them; `user` and unknown fields are ignored."""
    model = read_model(body)
    inputs = _inputs(body.get("input"))
    dimensions = read_dimensions(body.get("dimensions"), model)
    encoding = body.get("encoding_format")
    if encoding is None:
        encoding = "float"  # the API's default; the openai SDKs ask for base64 unless told otherwise
    if encoding not in ENCODINGS:
        raise RequestBodyError(
            f"`encoding_format` must be 'float' or 'base64', not {encoding!r}.", param="encoding_format"
        )
    answer = EmbeddingsAnswer(inputs, model, dimensions, encoding)
    text = "\n".join(item for item in inputs if isinstance(item, str))
    return ModelRequest(PromptInfo(text, model), scenario=read_scenario(body), answer=answer)


def read_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise RequestBodyError(
            "Missing required parameter: `model` (an embedding model such as text-embedding-3-small, "
            "or the name of a scenario).",
            param="model",
        )
    if not isinstance(model, str):
        raise RequestBodyError(f"`model` must be a string, not {json_type(model)}.", param="model")
    return model


def _inputs(value: object) -> tuple[EmbeddingInput, ...]:
    """The inputs of a request, each a text or a tuple of token ids; raises RequestBodyError naming
    the first one that is not."""
    if value is None:
        raise RequestBodyError(f"Missing required parameter: `input` ({_INPUT}).", param="input")
    if isinstance(value, str):
        return (read_text(value, "input"),)
    if not isinstance(value, list):
        raise RequestBodyError(f"`input` must be {_INPUT}, not {json_type(value)}.", param="input")
    if not value:
        raise RequestBodyError(f"`input` must not be an empty list; send {_INPUT}.", param="input")
    if len(value) > MAX_INPUTS:
        raise RequestBodyError(
            f"`input` has {len(value):,} items, more than the {MAX_INPUTS} one request may embed.", param="input"
        )
    first = value[0]
    if _is_token(first):
        return (_tokens(value, "input"),)
    if isinstance(first, str):
        return tuple(read_text(item, f"input[{i}]") for i, item in enumerate(value))
    if isinstance(first, list):
        return tuple(_tokens(item, f"input[{i}]") for i, item in enumerate(value))
    raise RequestBodyError(
        f"`input[0]` must be a string, a token id (an integer, 0 or more) or a list of token ids, not {first!r}.",
        param="input[0]",
    )


def read_text(value: object, where: str) -> str:
    """A text to embed: a string, not empty."""
    if not isinstance(value, str):
        raise RequestBodyError(f"`{where}` must be a string, not {json_type(value)}.", param=where)
    if not value:
        raise RequestBodyError(f"`{where}` must not be an empty string.", param=where)
    return value


def _tokens(value: object, where: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise RequestBodyError(
            f"`{where}` must be a list of token ids, as `input[0]` is, not {json_type(value)}.", param=where
        )
    if not value:
        raise RequestBodyError(f"`{where}` must not be an empty list of token ids.", param=where)
    for index, token in enumerate(value):
        if not _is_token(token):
            name = f"{where}[{index}]"
            raise RequestBodyError(f"`{name}` must be a token id (an integer, 0 or more), not {token!r}.", param=name)
    return tuple(value)


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_dimensions(value: object, model: str, name: str = "dimensions") -> int:
    """The dimensions asked for (`name` in the body), checked against the model's size."""
    if value is None:
        return default_dimensions(model)
    if model in FIXED_DIMENSIONS:
        raise RequestBodyError("This model does not support specifying dimensions.", param=name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestBodyError(f"`{name}` must be an integer, not {json_type(value)}.", param=name)
    largest = MODEL_DIMENSIONS.get(model, MAX_OTHER_DIMENSIONS)
    if not 1 <= value <= largest:
        raise RequestBodyError(f"`{name}` must be from 1 to {largest} for {model}, not {value}.", param=name)
    return value


def read_scenario(body: Mapping[str, Any]) -> str | None:
    value = body.get("scenario")
    if value is not None and not isinstance(value, str):
        raise RequestBodyError("`scenario` must be a scenario name (a string).", param="scenario")
    return value
