"""OpenAI legacy Completions: `data: {text_completion}` events, then `data: [DONE]`.

The legacy API knows only text: reasoning and tool calls have no form here and are left out, and
an answer that finished with tool calls finishes with `stop`.

Faults take the chat dialect's forms (see `openai_chat`): `malformed` is one of this stream's chunks
cut off inside its `text`; `unknown_event` is Azure OpenAI's prompt-filter chunk, `choices` empty,
which Azure sends on completions as well (`prompt_filter_results` on `Completion`, "in a streaming
request, results for different prompts may arrive at different times": @azure/openai 2.0.0
types/index.d.ts), so a `chunk.choices[0].text` loop fails on it.
"""

from __future__ import annotations

from typing import Any

from mock_server.dialects import _openai
from mock_server.dialects.answer import Answer
from mock_server.dialects.base import Dialect, StreamInfo
from mock_server.dialects.openai_chat import DONE
from mock_server.dialects.quota import openai_quota_headers
from mock_server.scenarios import steps
from mock_server.wire.frames import Event, to_json


def legacy_finish_reason(reason: str | None) -> str | None:
    return "stop" if reason in ("tool_calls", "function_call") else reason


def completion_id(key: str) -> str:
    return f"cmpl-{key[:29]}"


class OpenAICompletionsStream:
    """Chunks keep `object: "text_completion"` (no `.chunk` suffix); the finish reason comes in a
    last chunk with empty text."""

    unknown_event = _openai.PROMPT_FILTER_CHUNK
    """What an `unknown_event` step sends."""

    def __init__(self, stream: StreamInfo) -> None:
        head = to_json({"id": completion_id(stream.key), "object": "text_completion", "created": stream.created})
        tail = to_json({"model": stream.model, "system_fingerprint": _openai.fingerprint(stream.key)})
        self._head, self._tail = head[:-1], tail[1:-1]
        self._prefix = self._head + ',"choices":[{"text":'
        self._suffix = self._tail + (',"usage":null}' if stream.include_usage else "}")
        self._stream = stream

    def _chunk(self, text: str, finish_reason: str | None = None) -> Event:
        finish = "null" if finish_reason is None else to_json(finish_reason)
        more = self._choice_fields(text, finish_reason)
        return Event(
            f'{self._prefix}{to_json(text)},"index":0,"logprobs":null,"finish_reason":{finish}{more}}}],{self._suffix}'
        )

    def _choice_fields(self, text: str, finish_reason: str | None) -> str:
        """More fields for the chunk's choice, as JSON text that starts with a comma: none here, a
        variant's own (Azure's content filter verdicts)."""
        return ""

    def start(self) -> list[Event]:
        return []

    def events(self, step: steps.ContentStep) -> list[Event]:
        match step:
            case steps.Text(text):
                return [self._chunk(text)]
            case steps.Reasoning() | steps.ToolCallStart() | steps.ToolCallArguments():
                return []
            case steps.ErrorEvent():
                return [Event(to_json(_openai.mid_stream_error(step)))]
            case steps.Malformed(data):
                return [Event(self._prefix + '"' if data is None else data)]
            case steps.UnknownEvent():
                return [self.unknown_event]
            case steps.Finish(reason):
                events = [self._chunk("", legacy_finish_reason(reason))]
                if self._stream.include_usage:
                    usage = to_json(_openai.usage_body(self._stream.usage))
                    events.append(Event(f'{self._head},"choices":[],{self._tail},"usage":{usage}}}'))
                return events
        raise TypeError(f"not a content step: {step!r}")

    def end(self) -> list[Event]:
        return [DONE]


def complete(stream: StreamInfo, answer: Answer) -> dict[str, Any]:
    """One `text_completion` object with `usage`."""
    return {
        "id": completion_id(stream.key),
        "object": "text_completion",
        "created": stream.created,
        "model": stream.model,
        "system_fingerprint": _openai.fingerprint(stream.key),
        "choices": [
            {
                "text": answer.text,
                "index": 0,
                "logprobs": None,
                "finish_reason": legacy_finish_reason(answer.finish_reason),
            }
        ],
        "usage": _openai.usage_body(stream.usage),
    }


DIALECT = Dialect(
    name="openai-completions",
    stream=OpenAICompletionsStream,
    error_body=_openai.error_body,
    complete=complete,
    quota_headers=openai_quota_headers,
    quota_refusal=_openai.quota_refusal,
)
