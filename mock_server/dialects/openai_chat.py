"""OpenAI Chat Completions: `data: {chat.completion.chunk}` events, then `data: [DONE]`.

The stream is data-only: no event names, so a client cannot meet an event of an unknown type. What
it meets instead, as providers add things, is a chunk of a shape it does not expect, and the one
real clients stumble on is Azure OpenAI's first chunk (`_openai.PROMPT_FILTER_CHUNK`): `choices`
empty and a `prompt_filter_results` field the openai SDK does not declare. That is the
`unknown_event` here: the SDK yields it as a chunk with no choice, so a `chunk.choices[0]` loop
raises as it does against Azure, while `chat.completions.stream()` and a guarded loop go on. (The
usage chunk has `choices: []` too, but the SDK knows it, and a request asks for it.)

A `malformed` event is one of this stream's chunks cut off inside its delta's string: the stream's
own id and fields, then no end, so it reads as this stream's and does not parse.
"""

from __future__ import annotations

from typing import Any

from mock_server.dialects import _openai
from mock_server.dialects.answer import Answer
from mock_server.dialects.base import Dialect, StreamInfo
from mock_server.dialects.quota import openai_quota_headers
from mock_server.scenarios import steps
from mock_server.wire.frames import Event, to_json

DONE = Event("[DONE]")
ROLE_DELTA: dict[str, object] = {"role": "assistant", "content": "", "refusal": None}
_NOT_THE_ANSWER = (steps.ErrorEvent, steps.Malformed, steps.UnknownEvent)
"""Steps that are not a piece of the answer, so the role chunk, the answer's first, waits for the next
(Azure's prompt-filter chunk comes before it)."""


def completion_id(key: str) -> str:
    return f"chatcmpl-{key[:29]}"


class OpenAIChatStream:
    """Chunks share one id, `created`, `model` and `system_fingerprint`; every chunk is pre-framed
    around its delta so that rendering a long reply costs one small `json.dumps` per chunk.

    The role arrives in the first chunk: on its own before text or reasoning, together with the
    first tool-call fragment (and `content: null`) when the answer opens with a tool call.
    """

    unknown_event = _openai.PROMPT_FILTER_CHUNK
    """What an `unknown_event` step sends."""

    def __init__(self, stream: StreamInfo) -> None:
        head = {
            "id": completion_id(stream.key),
            "object": "chat.completion.chunk",
            "created": stream.created,
            "model": stream.model,
            "system_fingerprint": _openai.fingerprint(stream.key),
        }
        self._head = to_json(head)[:-1]
        self._prefix = self._head + ',"choices":[{"index":0,"delta":'
        # With include_usage, every chunk but the last carries `usage: null`, as the service sends it.
        self._suffix = ',"usage":null}' if stream.include_usage else "}"
        self._stream = stream
        self._role_sent = False

    def _chunk(self, delta: dict[str, object], finish_reason: str | None = None) -> Event:
        finish = "null" if finish_reason is None else to_json(finish_reason)
        more = self._choice_fields(delta, finish_reason)
        return Event(f'{self._prefix}{to_json(delta)},"logprobs":null,"finish_reason":{finish}{more}}}]{self._suffix}')

    def _choice_fields(self, delta: dict[str, object], finish_reason: str | None) -> str:
        """More fields for the chunk's choice, as JSON text that starts with a comma: none here, a
        variant's own (Azure's content filter verdicts)."""
        return ""

    def start(self) -> list[Event]:
        return []

    def events(self, step: steps.ContentStep) -> list[Event]:
        if self._role_sent or isinstance(step, _NOT_THE_ANSWER):
            return self._render(step)
        self._role_sent = True
        if isinstance(step, steps.ToolCallStart):
            return [self._chunk({"role": "assistant", "content": None, **_tool_call_delta(step), "refusal": None})]
        return [self._chunk(ROLE_DELTA), *self._render(step)]

    def _render(self, step: steps.ContentStep) -> list[Event]:
        match step:
            case steps.Text(text):
                return [self._chunk({"content": text})]
            case steps.Reasoning(text):
                return [self._chunk({"reasoning_content": text})]
            case steps.ToolCallStart():
                return [self._chunk(_tool_call_delta(step))]
            case steps.ToolCallArguments(index, arguments):
                return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})]
            case steps.ErrorEvent():
                return [Event(to_json(_openai.mid_stream_error(step)))]
            case steps.Malformed(data):
                return [Event(self._prefix + '{"content":"' if data is None else data)]
            case steps.UnknownEvent():
                return [self.unknown_event]
            case steps.Finish(reason):
                events = [self._chunk({}, reason)]
                if self._stream.include_usage:
                    usage = to_json(_openai.usage_body(self._stream.usage))
                    events.append(Event(f'{self._head},"choices":[],"usage":{usage}}}'))
                return events
        raise TypeError(f"not a content step: {step!r}")

    def end(self) -> list[Event]:
        return [DONE]


def _tool_call_delta(step: steps.ToolCallStart) -> dict[str, object]:
    call = {
        "index": step.index,
        "id": step.call_id,
        "type": "function",
        "function": {"name": step.name, "arguments": ""},
    }
    return {"tool_calls": [call]}


def complete(stream: StreamInfo, answer: Answer) -> dict[str, Any]:
    """One `chat.completion` object; `content` is null when the answer is only tool calls."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if answer.tool_calls and not answer.text else answer.text,
        "refusal": None,
    }
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in answer.tool_calls
        ]
    return {
        "id": completion_id(stream.key),
        "object": "chat.completion",
        "created": stream.created,
        "model": stream.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}],
        "usage": _openai.usage_body(stream.usage),
        "system_fingerprint": _openai.fingerprint(stream.key),
    }


DIALECT = Dialect(
    name="openai-chat",
    stream=OpenAIChatStream,
    error_body=_openai.error_body,
    complete=complete,
    quota_headers=openai_quota_headers,
    quota_refusal=_openai.quota_refusal,
)
