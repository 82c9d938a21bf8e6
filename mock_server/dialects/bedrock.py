"""AWS Bedrock runtime: ConverseStream's events and InvokeModelWithResponseStream's chunks, each an
event-stream frame (`mock_server.wire.eventstream`), and their whole responses (Converse, InvokeModel).

ConverseStream: `messageStart`, then a content block per kind of content: text and reasoning open
with their first `contentBlockDelta` (`{"text"}`, `{"reasoningContent": {"text"}}`; a reasoning
block closes with a `{"reasoningContent": {"signature"}}` delta), a tool use with a
`contentBlockStart` (`toolUseId`, `name`) before its `{"toolUse": {"input"}}` deltas; each closes
with `contentBlockStop`. `messageStop` carries the `stopReason`, and `metadata` (usage, and the
timeline's waits as `latencyMs`) ends a complete stream. InvokeModelWithResponseStream streams the
Anthropic Messages events (`mock_server.dialects.anthropic`) as `chunk` events whose payload is
`{"bytes": base64(event JSON)}`, as Bedrock serves Claude; `message_stop` adds the
`amazon-bedrock-invocationMetrics` Bedrock adds.

Errors are `{"message"}` with the exception's name in `x-amzn-ErrorType` (botocore raises the
modeled exception it names): 400 `ValidationException`, 403 `AccessDeniedException`, 404
`ResourceNotFoundException`, 408 `ModelTimeoutException`, 424 `ModelErrorException`, 429
`ThrottlingException`, 500 `InternalServerException`, 503 `ServiceUnavailableException`. In a stream an
error is an exception frame named for its status (`throttlingException` for 429,
`serviceUnavailableException` for 503, `validationException` for 400, `internalServerException` for
500); by default, and for a status the stream has no exception of, it is `modelStreamErrorException`
(the model failed mid-answer), and a whole response fails with 424 `ModelErrorException`. A scripted
error's `type` may name any of these exceptions, its `code` an HTTP status.

A `malformed` event is a delta frame whose message CRC is wrong (botocore raises `ChecksumMismatch`);
an `unknown_event` a frame of an event type no SDK knows, which botocore skips.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from mock_server.dialects import anthropic
from mock_server.dialects.answer import Answer
from mock_server.dialects.base import Dialect, StreamInfo
from mock_server.scenarios import steps
from mock_server.wire.eventstream import EVENT_STREAM
from mock_server.wire.frames import Event, to_json

ERROR_TYPE_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
# Each exception's status (botocore/data/bedrock-runtime/2023-09-30/service-2.json), and AWS's own
# answers to a request that is not signed, or signed with a key it does not know.
EXCEPTION_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "MissingAuthenticationTokenException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
_TYPE_OF_STATUS: dict[int, str] = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
MODEL_STREAM_ERROR_MESSAGE = "The model encountered an error while streaming the response."
_MESSAGES: dict[str, str] = {
    "ValidationException": "The provided request is not valid.",
    "ServiceQuotaExceededException": "Your request exceeds the service quota for your account.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "UnrecognizedClientException": "The security token included in the request is invalid.",
    "MissingAuthenticationTokenException": "Missing Authentication Token",
    "ResourceNotFoundException": "The provided model identifier is invalid.",
    "ModelTimeoutException": "Model has timed out in processing the request. Try your request again.",
    "ModelErrorException": "The model encountered an error while processing the request. Try your request again.",
    "ModelStreamErrorException": MODEL_STREAM_ERROR_MESSAGE,
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ModelNotReadyException": "Model is not ready for inference. Wait and try your request again.",
    "InternalServerException": "The server encountered an internal error while processing the request.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
}
MODEL_ERROR_STATUS = 424
MODEL_STREAM_ERROR = "modelStreamErrorException"
ORIGINAL_STATUS = 500
"""The model's own status a `modelStreamErrorException` reports when the error names none."""
CONVERSE_EXCEPTIONS = frozenset(
    (
        "internalServerException",
        MODEL_STREAM_ERROR,
        "validationException",
        "throttlingException",
        "serviceUnavailableException",
    )
)
"""ConverseStream's exception members; InvokeModelWithResponseStream's add `modelTimeoutException`."""
INVOKE_EXCEPTIONS = CONVERSE_EXCEPTIONS | {"modelTimeoutException"}
UNKNOWN_EVENT = "mockUnknownEvent"

# Chat finish reasons (and Anthropic's) in Bedrock's words; any other reason passes through.
STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "length": "max_tokens",
    "content_filter": "content_filtered",
    "refusal": "content_filtered",
}


def exception_name(name: str | None) -> str | None:
    """`name` as one of EXCEPTION_STATUS, in either case of its first letter (as stream members are
    named); None for any other."""
    if not name:
        return None
    upper = name[0].upper() + name[1:]
    return upper if upper in EXCEPTION_STATUS else None


def error_type(status: int, kind: str | None = None) -> str:
    """The exception an error answers as: the one `kind` names, else the status's."""
    named = exception_name(kind)
    if named is not None:
        return named
    return _TYPE_OF_STATUS.get(status, "InternalServerException" if status >= 500 else "ValidationException")


def error_status(error: steps.ErrorEvent) -> int:
    """The status of an error in an answer: its `code` when that is one (`"503"`), else the status of
    the exception its `type` names, else 424 (the model's error)."""
    if error.code is not None and error.code.isascii() and error.code.isdigit() and 400 <= int(error.code) < 600:
        return int(error.code)
    named = exception_name(error.type)
    return EXCEPTION_STATUS[named] if named is not None else MODEL_ERROR_STATUS


def error_body(status: int, error: steps.ErrorEvent | None) -> dict[str, Any]:
    """`{"message"}`: the error's, else Bedrock's words for its exception."""
    kind = error_type(status, error.type if error is not None else None)
    return {"message": (error.message if error is not None else None) or _MESSAGES[kind]}


def refusal_body(status: int, message: str, code: str | None, param: str | None) -> dict[str, Any]:
    return {"message": message}


def error_headers(status: int, kind: str | None, given: Sequence[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    """`x-amzn-ErrorType`, which botocore reads the exception's name from (up to the first `:`)."""
    return (("x-amzn-ErrorType", f"{error_type(status, kind)}:{ERROR_TYPE_NAMESPACE}"),)


def exception_event(error: steps.ErrorEvent, members: frozenset[str]) -> Event:
    """The exception frame of a mid-stream error: the stream's exception of its status, else
    `modelStreamErrorException` with the model's status and message."""
    status = error_status(error)
    kind = exception_name(error.type) or _TYPE_OF_STATUS.get(status)
    member = kind[0].lower() + kind[1:] if kind is not None else MODEL_STREAM_ERROR
    if member not in members:
        member = MODEL_STREAM_ERROR
    message = error.message or _MESSAGES[member[0].upper() + member[1:]]
    payload: dict[str, Any] = {"message": message}
    if member == MODEL_STREAM_ERROR:
        original = status if status != MODEL_ERROR_STATUS else ORIGINAL_STATUS
        payload.update(originalStatusCode=original, originalMessage=message)
    return Event(to_json(payload), event=member)


def tool_use_id(call_id: str) -> str:
    """Tool-call ids the compiler makes (`call_...`) in Bedrock's form (`tooluse_...`)."""
    return "tooluse_" + call_id.removeprefix("call_") if call_id.startswith("call_") else call_id


def signature(key: str, index: int) -> str:
    """A stand-in for the signature that closes a reasoning block, stable per stream and block."""
    return base64.b64encode(hashlib.sha256(f"{key}:{index}".encode()).digest()).decode()


def stop_reason(reason: str) -> str:
    return STOP_REASONS.get(reason, reason)


def usage(stream: StreamInfo) -> dict[str, int]:
    tokens = stream.usage
    return {
        "inputTokens": tokens.prompt_tokens,
        "outputTokens": tokens.completion_tokens,
        "totalTokens": tokens.total_tokens,
    }


def latency_ms(stream: StreamInfo) -> int:
    """The answer's waits: how long it took, as Bedrock measures it."""
    return round(stream.usage.prompt_ms + stream.usage.completion_ms)


def _event(kind: str, **fields: Any) -> Event:
    return Event(to_json(fields), event=kind)


class ConverseStream:
    """One ConverseStream response's events; blocks are numbered from 0 in the order they open."""

    def __init__(self, stream: StreamInfo) -> None:
        self._stream = stream
        self._block: str | None = None
        self._index = -1

    def start(self) -> list[Event]:
        return [_event("messageStart", role="assistant")]

    def events(self, step: steps.ContentStep) -> list[Event]:
        match step:
            case steps.Text(text):
                return [*self._open("text"), self._delta({"text": text})]
            case steps.Reasoning(text):
                return [*self._open("reasoning"), self._delta({"reasoningContent": {"text": text}})]
            case steps.ToolCallStart(_, call_id, name):
                return self._open("toolUse", {"toolUse": {"toolUseId": tool_use_id(call_id), "name": name}})
            case steps.ToolCallArguments(_, arguments):
                return [self._delta({"toolUse": {"input": arguments}})]
            case steps.ErrorEvent():
                return [exception_event(step, CONVERSE_EXCEPTIONS)]
            case steps.Malformed(data):
                delta = self._delta({"reasoningContent": {"text": ""}} if self._block == "reasoning" else {"text": ""})
                return [Event(delta.data if data is None else data, event=delta.event, corrupt=True)]
            case steps.UnknownEvent():
                return [Event("{}", event=UNKNOWN_EVENT)]
            case steps.Finish(reason):
                return [*self._close(), _event("messageStop", stopReason=stop_reason(reason))]
        raise TypeError(f"not a content step: {step!r}")

    def end(self) -> list[Event]:
        return [_event("metadata", usage=usage(self._stream), metrics={"latencyMs": latency_ms(self._stream)})]

    def _open(self, kind: str, start: dict[str, Any] | None = None) -> list[Event]:
        """Open a block unless one of this kind is (a tool use always opens one); only a tool use's
        block has a `contentBlockStart`."""
        if self._block == kind and kind != "toolUse":
            return []
        events = self._close()
        self._block, self._index = kind, self._index + 1
        if start is not None:
            events.append(_event("contentBlockStart", contentBlockIndex=self._index, start=start))
        return events

    def _delta(self, delta: dict[str, Any]) -> Event:
        return _event("contentBlockDelta", contentBlockIndex=max(self._index, 0), delta=delta)

    def _close(self) -> list[Event]:
        block, self._block = self._block, None
        if block is None:
            return []
        events = []
        if block == "reasoning":
            events.append(self._delta({"reasoningContent": {"signature": signature(self._stream.key, self._index)}}))
        events.append(_event("contentBlockStop", contentBlockIndex=self._index))
        return events


def complete_converse(stream: StreamInfo, answer: Answer) -> dict[str, Any]:
    """A Converse response: the message's content blocks in order (reasoning, text, tool uses), the
    stop reason, usage and latency."""
    content: list[dict[str, Any]] = []
    if answer.reasoning:
        content.append(
            {"reasoningContent": {"reasoningText": {"text": answer.reasoning, "signature": signature(stream.key, 0)}}}
        )
    if answer.text or not answer.tool_calls:
        content.append({"text": answer.text})
    for call in answer.tool_calls:
        tool_use = {"toolUseId": tool_use_id(call.call_id), "name": call.name, "input": call.input}
        content.append({"toolUse": tool_use})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason(answer.finish_reason or "stop"),
        "usage": usage(stream),
        "metrics": {"latencyMs": latency_ms(stream)},
    }


def chunk(data: str, *, corrupt: bool = False) -> Event:
    """A `chunk` event carrying the JSON text `data` as its `bytes`: `to_json({"bytes": ...})`, written
    out, since base64's alphabet needs no escaping (every frame of a stream is one)."""
    return Event(f'{{"bytes":"{base64.b64encode(data.encode()).decode()}"}}', event="chunk", corrupt=corrupt)


class InvokeStream:
    """InvokeModelWithResponseStream for Claude: Anthropic's events, each in a `chunk`."""

    def __init__(self, stream: StreamInfo) -> None:
        self._stream = stream
        self._messages = anthropic.AnthropicStream(stream)

    def start(self) -> list[Event]:
        return self._chunks(self._messages.start())

    def events(self, step: steps.ContentStep) -> list[Event]:
        match step:
            case steps.ErrorEvent():
                return [exception_event(step, INVOKE_EXCEPTIONS)]
            case steps.Malformed(data):
                delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ""}}
                return [
                    chunk(to_json(delta), corrupt=True) if data is None else Event(data, event="chunk", corrupt=True)
                ]
            case steps.UnknownEvent():
                return [Event("{}", event=UNKNOWN_EVENT)]
        return self._chunks(self._messages.events(step))

    def end(self) -> list[Event]:
        return self._chunks(self._messages.end(), metrics=True)

    def _chunks(self, events: Iterable[Event], *, metrics: bool = False) -> list[Event]:
        if not metrics:
            return [chunk(event.data or "") for event in events]
        latency = latency_ms(self._stream)
        invocation = {
            "inputTokenCount": self._stream.usage.prompt_tokens,
            "outputTokenCount": self._stream.usage.completion_tokens,
            "invocationLatency": latency,
            "firstByteLatency": round(self._stream.usage.prompt_ms),
        }
        return [
            chunk(to_json({**json.loads(event.data or "{}"), "amazon-bedrock-invocationMetrics": invocation}))
            for event in events
        ]


def _content_type(request_id: str) -> tuple[tuple[str, str], ...]:
    return (("X-Amzn-Bedrock-Content-Type", "application/json"),)


CONVERSE = Dialect(
    name="bedrock-converse",
    stream=ConverseStream,
    error_body=error_body,
    complete=complete_converse,
    error_status=error_status,
    request_id_header="x-amzn-RequestId",
    framing=EVENT_STREAM,
    refusal_body=refusal_body,
    error_headers=error_headers,
    dated=False,
)
INVOKE = Dialect(
    name="bedrock-invoke",
    stream=InvokeStream,
    error_body=error_body,
    complete=anthropic.complete,
    error_status=error_status,
    request_id_header="x-amzn-RequestId",
    framing=EVENT_STREAM,
    refusal_body=refusal_body,
    response_headers=_content_type,
    error_headers=error_headers,
    dated=False,
)
