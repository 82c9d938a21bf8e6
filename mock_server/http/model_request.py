"""What each model endpoint reads from its request: the prompt, the model, whether to stream, and
the scenario it names; every field of the wrong shape is a RequestBodyError naming it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mock_server.errors import RequestBodyError
from mock_server.http import conversation
from mock_server.http.output_format import anthropic_output, ollama_output, openai_chat_output, responses_output
from mock_server.http.prompt import PromptInfo, json_type, prompt_from_body, prompt_from_query
from mock_server.http.request_body import decode_json
from mock_server.scenarios.conversation import NO_CONVERSATION, Conversation
from mock_server.timeline.structured import OutputFormat
from mock_server.wire.item_body import ItemBody


class ItemAnswer(Protocol):
    """An answer a route makes from the request itself, item by item, instead of the scenario's reply
    (the vectors of an embeddings request): the scenario still chooses its status, waits and faults."""

    @property
    def items(self) -> int:
        """How many items the answer has: what `@N` faults count."""

    @property
    def work(self) -> int:
        """Roughly how much making the body costs (an embedding's coordinates): large answers are
        made off the event loop."""

    def body(self, seed: int) -> ItemBody:
        """The answer for the seed the scenario (or the request's `seed` override) gives."""


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What the shared request path needs from a model request."""

    prompt: PromptInfo
    stream: bool = False
    include_usage: bool = False
    scenario: str | None = None
    """The scenario the body (or, for GET /completions, the query) names."""
    reasoning: bool = True
    """Whether the answer shows its reasoning: false when the request turns it off (Ollama's `think: false`)."""
    answer: ItemAnswer | None = None
    """The answer the route makes itself, when it does not play the scenario's reply."""
    conversation: Conversation = NO_CONVERSATION
    """What the messages say of the conversation, for `match` rules."""
    conversation_key: str | None = None
    """The conversation the body names (`convGroupId`): sequences of replies count its requests apart."""
    previous_response_id: str | None = None
    """The stored response a Responses API request continues."""
    store: bool = False
    """Whether the answer is kept for `GET /v1/responses/{id}` and for requests that continue it."""
    output: OutputFormat | None = None
    """The JSON the request asks for (structured output), when it asks for JSON."""


NO_PARAMS: Mapping[str, str] = {}
"""The path parameters of a route whose path has none."""


def read_completions_query(query: Mapping[str, Any], params: Mapping[str, str] = NO_PARAMS) -> ModelRequest:
    """GET /completions (EventSource): `?messages=` is the prompt text or a JSON list of messages."""
    prompt = prompt_from_query(query)
    return ModelRequest(
        prompt,
        stream=True,
        scenario=query.get("scenario"),
        conversation=conversation.openai_chat({"messages": _json_list(query.get("messages"))}),
        conversation_key=conversation.conversation_key(query),
    )


def read_completions_body(body: Mapping[str, Any], params: Mapping[str, str] = NO_PARAMS) -> ModelRequest:
    """POST /completions (fetch-event-source and friends): the prompt from any of the usual fields."""
    request = body.get("request")
    chat = request if "messages" not in body and isinstance(request, Mapping) else body
    return ModelRequest(
        prompt_from_body(body),
        stream=True,
        scenario=_scenario(body),
        conversation=conversation.openai_chat(chat),
        conversation_key=conversation.conversation_key(body),
    )


def read_chat(body: Mapping[str, Any], params: Mapping[str, str] = NO_PARAMS) -> ModelRequest:
    _require(body, "messages", "a list of {role, content} messages")
    prompt = prompt_from_body(body, fields=("messages",))
    return ModelRequest(
        prompt,
        _flag(body, "stream"),
        _stream_options_usage(body),
        _scenario(body),
        conversation=conversation.openai_chat(body),
        conversation_key=conversation.conversation_key(body),
        output=openai_chat_output(body),
    )


def read_legacy_completions(body: Mapping[str, Any], params: Mapping[str, str] = NO_PARAMS) -> ModelRequest:
    _require(body, "prompt", "a string or a list of strings")
    prompt = prompt_from_body(body, fields=("prompt",))
    return ModelRequest(
        prompt,
        _flag(body, "stream"),
        _stream_options_usage(body),
        _scenario(body),
        conversation=conversation.prompt_alone(body),
        conversation_key=conversation.conversation_key(body),
    )


def read_responses(body: Mapping[str, Any], params: Mapping[str, str] = NO_PARAMS) -> ModelRequest:
    """OpenAI's Responses API: the prompt from `input`; stored unless `store` is false, and continuing
    the stored response `previous_response_id` names."""
    _require(body, "input", "a string or a list of input items")
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise RequestBodyError(
            f"`previous_response_id` must be the id of a stored response (a string), not {json_type(previous)}.",
            param="previous_response_id",
        )
    return ModelRequest(
        prompt_from_body(body, fields=("input",)),
        _flag(body, "stream"),
        scenario=_scenario(body),
        conversation=conversation.responses(body),
        conversation_key=conversation.conversation_key(body),
        previous_response_id=previous or None,
        store=body.get("store") is None or _flag(body, "store"),
        output=responses_output(body),
    )


def read_messages(body: Mapping[str, Any], params: Mapping[str, str] = NO_PARAMS) -> ModelRequest:
    _require(body, "messages", "a list of {role, content} messages")
    max_tokens = _require(body, "max_tokens", "the most tokens to generate, a positive integer")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestBodyError(f"`max_tokens` must be a positive integer, not {max_tokens!r}.", param="max_tokens")
    return ModelRequest(
        prompt_from_body(body, fields=("messages",)),
        _flag(body, "stream"),
        scenario=_scenario(body),
        conversation=conversation.anthropic(body),
        conversation_key=conversation.conversation_key(body),
        output=anthropic_output(body),
    )


def _json_list(text: object) -> object:
    """`?messages=` as a list of messages, when it is one in JSON (else None: a prompt alone)."""
    if not isinstance(text, str) or not text.lstrip().startswith("["):
        return None
    try:
        return decode_json(text.encode())
    except RequestBodyError:
        return None


def _require(body: Mapping[str, Any], field: str, what: str) -> Any:
    """The value of a required field; raises RequestBodyError naming it and what it should be."""
    value = body.get(field)
    if value is None:
        raise RequestBodyError(f"Missing required parameter: `{field}` ({what}).", param=field)
    return value


def _flag(body: Mapping[str, Any], field: str, path: str | None = None) -> bool:
    """An optional boolean field (false when absent or null)."""
    value = body.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        name = path or field
        raise RequestBodyError(f"`{name}` must be a boolean, not {json_type(value)}.", param=name)
    return value


def _stream_options_usage(body: Mapping[str, Any]) -> bool:
    """`stream_options.include_usage` of an OpenAI request."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, Mapping):
        raise RequestBodyError(
            f'`stream_options` must be an object like {{"include_usage": true}}, not {json_type(options)}.',
            param="stream_options",
        )
    return _flag(options, "include_usage", "stream_options.include_usage")


def _scenario(body: Mapping[str, Any]) -> str | None:
    """The body's `scenario` field, when it names one."""
    value = body.get("scenario")
    if value is not None and not isinstance(value, str):
        raise RequestBodyError("`scenario` must be a scenario name (a string).", param="scenario")
    return value


def read_forwarded(body: Mapping[str, Any], params: Mapping[str, str] = NO_PARAMS) -> ModelRequest:
    """A request to a path this server does not model, forwarded to the upstream: its prompt and
    model when its body holds them the usual way (for a recording's `match`), else none."""
    try:
        return ModelRequest(prompt_from_body(body))
    except RequestBodyError:
        return ModelRequest(PromptInfo("", None))


def read_ollama_chat(body: Mapping[str, Any], params: Mapping[str, str] = NO_PARAMS) -> ModelRequest:
    """Ollama's POST /api/chat: the prompt from `messages`; streamed unless `stream` is false."""
    return _read_ollama(body, "messages", conversation.openai_chat(body))


def read_ollama_generate(body: Mapping[str, Any], params: Mapping[str, str] = NO_PARAMS) -> ModelRequest:
    """Ollama's POST /api/generate: the prompt is `prompt`; streamed unless `stream` is false."""
    return _read_ollama(body, "prompt", conversation.ollama_generate(body))


def _read_ollama(body: Mapping[str, Any], prompt_field: str, talk: Conversation) -> ModelRequest:
    """What Ollama's two generating endpoints share: streaming by default, `think`, `format`."""
    return ModelRequest(
        prompt_from_body(body, fields=(prompt_field,)),
        _ollama_stream(body),
        scenario=_scenario(body),
        reasoning=_ollama_think(body),
        conversation=talk,
        conversation_key=conversation.conversation_key(body),
        output=ollama_output(body),
    )


def _ollama_stream(body: Mapping[str, Any]) -> bool:
    """Ollama streams unless told not to: an absent (or null) `stream` is true."""
    return body.get("stream") is None or _flag(body, "stream")


THINK_LEVELS = ("high", "medium", "low", "max")


def _ollama_think(body: Mapping[str, Any]) -> bool:
    """Whether the answer shows its thinking: Ollama turns it on for a thinking model unless `think`
    is false (a level, "low" to "max", is on too)."""
    think = body.get("think")
    if think is None or isinstance(think, bool):
        return think is not False
    if think in THINK_LEVELS:
        return True
    raise RequestBodyError(
        f'`think` must be true, false, "high", "medium", "low" or "max", not {json_type(think)}'
        + (f" {think!r}." if isinstance(think, str) else "."),
        param="think",
    )
