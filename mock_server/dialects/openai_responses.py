"""OpenAI Responses API: typed events (`event:` equal to the data's `type`) with increasing
`sequence_number`, from `response.created` to `response.completed`.

Each kind of content is an output item: reasoning a `reasoning` item streamed as
`response.reasoning_text.delta`, text a `message` item streamed as `response.output_text.delta`,
each tool call a `function_call` item streamed as `response.function_call_arguments.delta`.
A finish reason of `length` or `content_filter` ends with `response.incomplete` instead.

An error is the `error` event in the shape the service sends, its fields nested under `error`
(openai/openai-dotnet#849 and #881 show it; the API reference documents them flat), which
openai-python raises as `APIError`.

A `malformed` event is a delta event of the open item cut off inside its `delta`, before its
`sequence_number`, so it takes none. An `unknown_event` is a `response.*` event of a type no SDK
knows, numbered like any other: the service adds types, and clients must skip them (openai-python
yields it, and `responses.stream()` passes over it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mock_server.dialects import _openai
from mock_server.dialects.answer import Answer
from mock_server.dialects.base import Dialect, StreamInfo
from mock_server.dialects.quota import openai_quota_headers
from mock_server.scenarios import steps
from mock_server.wire.frames import Event, to_json

_ID_PREFIX = {"message": "msg", "reasoning": "rs", "function_call": "fc"}
_DELTA_EVENT = {
    "message": "response.output_text",
    "reasoning": "response.reasoning_text",
    "function_call": "response.function_call_arguments",
}
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
UNKNOWN_EVENT = "response.mock_unknown_event"


@dataclass(slots=True)
class _Item:
    kind: str
    id: str
    output_index: int
    call_id: str = ""
    name: str = ""
    pieces: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def response_id(key: str) -> str:
    return f"resp_{key[:48]}"


def _item_id(kind: str, key: str, output_index: int) -> str:
    return f"{_ID_PREFIX[kind]}_{key[:46]}{output_index:02d}"


class OpenAIResponsesStream:
    def __init__(self, stream: StreamInfo) -> None:
        self._stream = stream
        self._sequence = 0
        self._output: list[dict[str, Any]] = []
        self._item: _Item | None = None
        self._finish_reason: str | None = None

    def _event(self, kind: str, **fields: Any) -> Event:
        data = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        return Event(to_json(data), event=kind)

    def start(self) -> list[Event]:
        response = _response(self._stream, status="in_progress", output=[], usage=None)
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def events(self, step: steps.ContentStep) -> list[Event]:
        match step:
            case steps.Text(text):
                return [*self._open("message"), self._delta(text)]
            case steps.Reasoning(text):
                return [*self._open("reasoning"), self._delta(text)]
            case steps.ToolCallStart(_, call_id, name):
                return self._open("function_call", call_id=call_id, name=name)
            case steps.ToolCallArguments(_, arguments):
                return [self._delta(arguments)] if self._item is not None else []
            case steps.ErrorEvent():
                fields = _openai.error_fields(_openai.MID_STREAM_STATUS, step)
                error = {name: fields[name] for name in ("type", "code", "message", "param")}  # the service's order
                return [self._event("error", error=error)]
            case steps.Malformed(data):
                return [self._malformed(data)]
            case steps.UnknownEvent():
                return [self._event(UNKNOWN_EVENT)]
            case steps.Finish(reason):
                self._finish_reason = reason
                return self._close()
        raise TypeError(f"not a content step: {step!r}")

    def end(self) -> list[Event]:
        events = self._close()
        status, terminal = _terminal(self._finish_reason)
        response = _response(
            self._stream, status=status, output=self._output, usage=_usage(self._stream), finish=self._finish_reason
        )
        return [*events, self._event(terminal, response=response)]

    def _malformed(self, data: str | None) -> Event:
        """A delta event of the open item (a text delta when none is open) with `data`, or cut off
        inside its `delta`: before its `sequence_number`, so it takes none and the events that
        parse still count up without a gap."""
        item = self._item
        name = f"{_DELTA_EVENT[item.kind if item else 'message']}.delta"
        if data is None:
            where = _where(item) if item else {}
            data = to_json({"type": name, **where, "delta": ""})[: -len('"}')]
        return Event(data, event=name)

    def _open(self, kind: str, *, call_id: str = "", name: str = "") -> list[Event]:
        """Start a new output item unless one of this kind is open (a tool call always starts one)."""
        if self._item is not None and self._item.kind == kind and kind != "function_call":
            return []
        events = self._close()
        index = len(self._output)
        item = _Item(kind, _item_id(kind, self._stream.key, index), index, call_id, name)
        self._item = item
        events.append(
            self._event("response.output_item.added", output_index=index, item=_item_json(item, "in_progress"))
        )
        if kind != "function_call":
            part = _part_json(kind, "")
            events.append(self._event("response.content_part.added", **_where(item), part=part))
        return events

    def _delta(self, text: str) -> Event:
        item = self._item
        assert item is not None
        item.pieces.append(text)
        logprobs: dict[str, Any] = {"logprobs": []} if item.kind == "message" else {}
        return self._event(f"{_DELTA_EVENT[item.kind]}.delta", **_where(item), delta=text, **logprobs)

    def _close(self) -> list[Event]:
        item, self._item = self._item, None
        if item is None:
            return []
        done = f"{_DELTA_EVENT[item.kind]}.done"
        if item.kind == "function_call":
            events = [
                self._event(done, item_id=item.id, output_index=item.output_index, name=item.name, arguments=item.text)
            ]
        else:
            logprobs: dict[str, Any] = {"logprobs": []} if item.kind == "message" else {}
            events = [
                self._event(done, **_where(item), text=item.text, **logprobs),
                self._event("response.content_part.done", **_where(item), part=_part_json(item.kind, item.text)),
            ]
        finished = _item_json(item, "completed")
        self._output.append(finished)
        events.append(self._event("response.output_item.done", output_index=item.output_index, item=finished))
        return events


def _where(item: _Item) -> dict[str, Any]:
    """Where a content event applies: `item_id`, `output_index` and (for parts) `content_index`."""
    where: dict[str, Any] = {"item_id": item.id, "output_index": item.output_index}
    if item.kind != "function_call":
        where["content_index"] = 0
    return where


def _part_json(kind: str, text: str) -> dict[str, Any]:
    if kind == "message":
        return {"type": "output_text", "text": text, "annotations": []}
    return {"type": "reasoning_text", "text": text}


def _item_json(item: _Item, status: str) -> dict[str, Any]:
    """An output item as `output_item.added` (empty, in progress) and `.done` (complete) carry it."""
    text = item.text if status == "completed" else ""
    if item.kind == "function_call":
        return {
            "id": item.id,
            "type": "function_call",
            "status": status,
            "arguments": text,
            "call_id": item.call_id,
            "name": item.name,
        }
    content = [_part_json(item.kind, text)] if status == "completed" else []
    if item.kind == "reasoning":
        return {"id": item.id, "type": "reasoning", "status": status, "summary": [], "content": content}
    return {"id": item.id, "status": status, "type": "message", "role": "assistant", "content": content}


def _terminal(finish_reason: str | None) -> tuple[str, str]:
    """The response status and the name of the event that ends the stream."""
    if finish_reason in _INCOMPLETE:
        return "incomplete", "response.incomplete"
    return "completed", "response.completed"


def _usage(stream: StreamInfo) -> dict[str, Any]:
    usage = stream.usage
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _response(
    stream: StreamInfo,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    finish: str | None = None,
) -> dict[str, Any]:
    """The `response` object of the lifecycle events and of a non-streaming answer."""
    incomplete = _INCOMPLETE.get(finish or "")
    return {
        "id": response_id(stream.key),
        "object": "response",
        "created_at": stream.created,
        "status": status,
        "background": False,
        "completed_at": stream.created if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": stream.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": stream.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "store": stream.store,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def complete(stream: StreamInfo, answer: Answer) -> dict[str, Any]:
    """The response object with every output item complete, as `response.completed` carries it."""
    contents: list[tuple[str, str, str, str]] = []  # kind, text, call_id, name
    if answer.reasoning:
        contents.append(("reasoning", answer.reasoning, "", ""))
    if answer.text or not answer.tool_calls:
        contents.append(("message", answer.text, "", ""))
    contents.extend(("function_call", call.arguments, call.call_id, call.name) for call in answer.tool_calls)
    output = [
        _item_json(_Item(kind, _item_id(kind, stream.key, index), index, call_id, name, [text]), "completed")
        for index, (kind, text, call_id, name) in enumerate(contents)
    ]
    status, _ = _terminal(answer.finish_reason)
    return _response(stream, status=status, output=output, usage=_usage(stream), finish=answer.finish_reason)


DIALECT = Dialect(
    name="openai-responses",
    stream=OpenAIResponsesStream,
    error_body=_openai.error_body,
    complete=complete,
    quota_headers=openai_quota_headers,
    quota_refusal=_openai.quota_refusal,
)
