"""Ollama's `POST /api/embed` and Gemini's `:embedContent` and `:batchEmbedContents`: their requests
read with the checks of OpenAI's /v1/embeddings (`mock_server.http.embeddings`), their answers the
same vectors (`Embedder`) in each provider's JSON shape, item by item, for the pipeline to play with
the scenario's status, waits and faults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mock_server.dialects.ollama import LOAD_NS
from mock_server.embeddings import Embedder
from mock_server.errors import RequestBodyError
from mock_server.http.embeddings import read_dimensions, read_model, read_scenario, read_text
from mock_server.http.model_request import ModelRequest
from mock_server.http.prompt import PromptInfo, json_type
from mock_server.wire.frames import to_json
from mock_server.wire.item_body import ItemBody

_OLLAMA_INPUT = "a string or a list of strings"
_CONTENT = '{"parts": [{"text": "hi"}]}'


def _work(texts: tuple[str, ...], dimensions: tuple[int, ...]) -> int:
    """Characters times coordinates, as `EmbeddingsAnswer.work` counts them."""
    return sum((len(text) + 1) * size for text, size in zip(texts, dimensions, strict=True))


@dataclass(frozen=True, slots=True)
class OllamaEmbedAnswer:
    """The vectors of an /api/embed request, as Ollama writes them: `embeddings`, then the counts."""

    texts: tuple[str, ...]
    model: str
    dimensions: int

    @property
    def items(self) -> int:
        return len(self.texts)

    @property
    def work(self) -> int:
        return _work(self.texts, (self.dimensions,) * len(self.texts))

    def body(self, seed: int) -> ItemBody:
        embedder = Embedder(model=self.model, dimensions=self.dimensions, seed=seed)
        items = [embedder.json(text).encode() for text in self.texts]
        tokens = sum(max(1, len(text.split())) for text in self.texts)
        # Ollama measures its durations; a nanosecond a unit of work stands in for the embedding's.
        closing = f'],"total_duration":{LOAD_NS + self.work},"load_duration":{LOAD_NS},"prompt_eval_count":{tokens}}}'
        return ItemBody(b'{"model":' + to_json(self.model).encode() + b',"embeddings":[', items, closing.encode())


def read_ollama_embed(body: Mapping[str, Any], params: Mapping[str, str]) -> ModelRequest:
    """POST /api/embed: `model` and `input` required, `dimensions` and `truncate` checked; `options` and
    `keep_alive` are ignored (every text fits: there is no context to truncate to)."""
    model = read_model(body)
    texts = _ollama_inputs(body.get("input"))
    dimensions = read_dimensions(body.get("dimensions"), model)
    truncate = body.get("truncate")
    if truncate is not None and not isinstance(truncate, bool):
        raise RequestBodyError(f"`truncate` must be true or false, not {json_type(truncate)}.", param="truncate")
    answer = OllamaEmbedAnswer(texts, model, dimensions)
    return ModelRequest(PromptInfo("\n".join(texts), model), scenario=read_scenario(body), answer=answer)


def _ollama_inputs(value: object) -> tuple[str, ...]:
    if value is None:
        raise RequestBodyError(f"Missing required parameter: `input` ({_OLLAMA_INPUT}).", param="input")
    if isinstance(value, str):
        return (read_text(value, "input"),)
    if not isinstance(value, list) or not value:
        wrong = "an empty list" if isinstance(value, list) else json_type(value)
        raise RequestBodyError(f"`input` must be {_OLLAMA_INPUT}, not {wrong}.", param="input")
    return tuple(read_text(item, f"input[{i}]") for i, item in enumerate(value))


@dataclass(frozen=True, slots=True)
class GeminiEmbedAnswer:
    """The vectors of a Gemini request, each of its own size: `{"embedding": ...}` for
    `:embedContent` (`batch` false), `{"embeddings": [...]}` for `:batchEmbedContents`."""

    texts: tuple[str, ...]
    model: str
    dimensions: tuple[int, ...]
    batch: bool

    @property
    def items(self) -> int:
        return len(self.texts)

    @property
    def work(self) -> int:
        return _work(self.texts, self.dimensions)

    def body(self, seed: int) -> ItemBody:
        embedders: dict[int, Embedder] = {}
        items = []
        for text, size in zip(self.texts, self.dimensions, strict=True):
            embedder = embedders.setdefault(size, Embedder(model=self.model, dimensions=size, seed=seed))
            items.append(b'{"values":' + embedder.json(text).encode() + b"}")
        if self.batch:
            return ItemBody(b'{"embeddings":[', items, b"]}")
        return ItemBody(b'{"embedding":', items, b"}")


def read_embed_content(body: Mapping[str, Any], params: Mapping[str, str]) -> ModelRequest:
    """`POST .../models/{model}:embedContent`: one `content`, `outputDimensionality` optional."""
    model = params.get("model", "")
    text, size = _embed_request(body, model, "")
    return _gemini_request(body, model, GeminiEmbedAnswer((text,), model, (size,), batch=False))


def read_batch_embed_contents(body: Mapping[str, Any], params: Mapping[str, str]) -> ModelRequest:
    """`POST .../models/{model}:batchEmbedContents`: `requests`, each an embedContent request naming
    the model of the path (`models/{model}`), as google-genai sends one content or several."""
    model = params.get("model", "")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        example = f'[{{"model": "models/{model}", "content": {_CONTENT}}}]'
        wrong = "missing" if requests is None else "an empty list" if requests == [] else json_type(requests)
        raise RequestBodyError(f"`requests` must be a list of requests like {example}, not {wrong}.", param="requests")
    read = [_embed_request(request, model, f"requests[{i}].") for i, request in enumerate(requests)]
    answer = GeminiEmbedAnswer(tuple(t for t, _ in read), model, tuple(s for _, s in read), batch=True)
    return _gemini_request(body, model, answer)


def _embed_request(request: object, model: str, where: str) -> tuple[str, int]:
    """The text and the size of one embedContent request (`where` its place in a batch)."""
    if not isinstance(request, Mapping):
        raise RequestBodyError(f"`{where[:-1]}` must be an object, not {json_type(request)}.", param=where[:-1])
    named = request.get("model")
    if where and named != f"models/{model}":
        raise RequestBodyError(
            f"`{where}model` must be the model of the path, models/{model}, not {named!r}.", param=f"{where}model"
        )
    content = request.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list):
        raise RequestBodyError(f"`{where}content` must be a content like {_CONTENT}.", param=f"{where}content")
    texts: list[str] = []
    for index, part in enumerate(parts):
        text = part.get("text") if isinstance(part, Mapping) else None
        if not isinstance(text, str):
            field = f"{where}content.parts[{index}]"
            raise RequestBodyError(f'`{field}` must be a part like {{"text": "hi"}}.', param=field)
        texts.append(text)
    text = read_text("".join(texts), f"{where}content")
    size = read_dimensions(request.get("outputDimensionality"), model, f"{where}outputDimensionality")
    return text, size


def _gemini_request(body: Mapping[str, Any], model: str, answer: GeminiEmbedAnswer) -> ModelRequest:
    return ModelRequest(PromptInfo("\n".join(answer.texts), model), scenario=read_scenario(body), answer=answer)


def gemini_example(batch: bool) -> Callable[[str, bool, str], dict[str, Any]]:
    """The request body for (model, stream, prompt) of `:batchEmbedContents` or `:embedContent`."""

    def example(model: str, stream: bool, prompt: str) -> dict[str, Any]:
        request = {"content": {"parts": [{"text": prompt}]}}
        return {"requests": [{"model": f"models/{model}", **request}]} if batch else request

    return example


_STRING = {"type": "string"}
_GEMINI_CONTENT = {
    "type": "object",
    "properties": {"parts": {"type": "array", "items": {"type": "object", "properties": {"text": _STRING}}}},
}
_EMBED_REQUEST = {
    "type": "object",
    "properties": {
        "model": _STRING,
        "content": _GEMINI_CONTENT,
        "outputDimensionality": {"type": "integer", "minimum": 1},
    },
    "required": ["content"],
}


def gemini_openapi(batch: bool) -> dict[str, Any]:
    """`openapi_extra` of `:batchEmbedContents` or `:embedContent`."""
    schema = (
        {
            "type": "object",
            "properties": {"requests": {"type": "array", "items": _EMBED_REQUEST}},
            "required": ["requests"],
        }
        if batch
        else _EMBED_REQUEST
    )
    return {
        "parameters": [
            {
                "name": "model",
                "in": "path",
                "required": True,
                "schema": _STRING,
                "description": "a model, or a scenario",
            },
            {"name": "key", "in": "query", "required": False, "schema": _STRING, "description": "the API key"},
        ],
        "requestBody": {
            "required": True,
            "description": "Gemini embedding requests: vectors made from the contents' text parts.",
            "content": {"application/json": {"schema": schema}},
        },
    }
