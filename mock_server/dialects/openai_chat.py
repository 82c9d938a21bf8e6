"""OpenAI Chat Completions: `data: {chat.completion.chunk}` events, then `data: [DONE]`."""

from __future__ import annotations

from mock_server import steps
from mock_server.dialects import _openai
from mock_server.dialects.base import DialectSpec, StreamInfo
from mock_server.frames import Event, to_json

DONE = Event("[DONE]")


class OpenAIChatStream:
    """Chunks share one id, `created`, `model` and `system_fingerprint`; every chunk is pre-framed
    around its delta so that rendering a long reply costs one small `json.dumps` per chunk."""

    def __init__(self, stream: StreamInfo) -> None:
        head = {
            "id": f"chatcmpl-{stream.key[:29]}",
            "object": "chat.completion.chunk",
            "created": stream.created,
            "model": stream.model,
            "system_fingerprint": f"fp_{stream.key[29:39]}",
        }
        self._head = to_json(head)[:-1]
        self._prefix = self._head + ',"choices":[{"index":0,"delta":'
        self._stream = stream

    def _chunk(self, delta: dict[str, object], finish_reason: str | None = None) -> Event:
        finish = "null" if finish_reason is None else to_json(finish_reason)
        return Event(f'{self._prefix}{to_json(delta)},"logprobs":null,"finish_reason":{finish}}}]}}')

    def start(self) -> list[Event]:
        return [self._chunk({"role": "assistant", "content": "", "refusal": None})]

    def render(self, step: steps.ContentStep) -> list[Event]:
        match step:
            case steps.Text(text):
                return [self._chunk({"content": text})]
            case steps.Reasoning(text):
                return [self._chunk({"reasoning_content": text})]
            case steps.ToolCallStart(index, call_id, name):
                call = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                return [self._chunk({"tool_calls": [call]})]
            case steps.ToolCallArguments(index, arguments):
                return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})]
            case steps.Error():
                return [Event(to_json(_openai.mid_stream_error(step)))]
            case steps.Finish(reason):
                events = [self._chunk({}, reason)]
                if self._stream.include_usage:
                    usage = self._stream.usage
                    body = {
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.total_tokens,
                        "completion_tokens_details": {"reasoning_tokens": 0},
                    }
                    events.append(Event(f'{self._head},"choices":[],"usage":{to_json(body)}}}'))
                return events
        raise TypeError(f"not a content step: {step!r}")

    def end(self) -> list[Event]:
        return [DONE]


SPEC = DialectSpec(name="openai-chat", stream=OpenAIChatStream, error_body=_openai.error_body)
