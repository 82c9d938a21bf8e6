"""Anthropic Messages: named events from `message_start` to `message_stop`.

Each kind of content is a content block: reasoning a `thinking` block (`thinking_delta`, closed
with a `signature_delta`), text a `text` block (`text_delta`), each tool call a `tool_use` block
(`input_json_delta`). A `ping` follows the first block's start, as the service sends it.

Errors use Anthropic's own types and words: by default the mid-stream `event: error` the error
documentation shows, `overloaded_error` "Overloaded" (platform.claude.com/docs/en/api/errors), and
a whole response fails with that type's status (529). A type Anthropic does not know (such as
OpenAI's `server_error`) becomes the status's type, `overloaded_error` in the middle of a stream.

The SDKs dispatch on the event's name: an unnamed `data:` line is skipped, so a `malformed` event
must be a named one to be met at all. It is a `content_block_delta` of the open block cut off
inside its delta, which both SDKs fail on (anthropic-python `json.JSONDecodeError`,
@anthropic-ai/sdk a `SyntaxError` from `JSON.parse`, src/core/streaming.ts). `unknown_event` is an
event of a name no SDK knows, as the service adds names: the TypeScript SDK parses only the names
it lists and skips it, as anthropic-python 0.x did (`_streaming.py`); anthropic-python 2.x yields
it with its `type` kept, and `MessageStream` passes over it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mock_server.dialects.answer import Answer
from mock_server.dialects.base import Dialect, StreamInfo
from mock_server.dialects.quota import ErrorBody, Headers, QuotaExceeded, anthropic_quota_headers, retry_after
from mock_server.scenarios import steps
from mock_server.wire.frames import Event, to_json

# Status <-> error type, from Anthropic's error documentation.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_STATUS_OF_TYPE = {kind: status for status, kind in ERROR_TYPES.items()}
_MESSAGES: dict[int, str] = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    429: "Number of request tokens has exceeded your per-minute rate limit.",
    500: "Internal server error",
    529: "Overloaded",
}
MID_STREAM_ERROR_TYPE = "overloaded_error"
UNKNOWN_EVENT = "mock_unknown_event"
_DELTA_OF_BLOCK = {
    "text": ("text_delta", "text"),
    "thinking": ("thinking_delta", "thinking"),
    "tool_use": ("input_json_delta", "partial_json"),
}

# Chat finish reasons in Anthropic's words; a reason already in Anthropic's words passes through.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}

PING = Event('{"type": "ping"}', event="ping")


def message_id(key: str) -> str:
    return f"msg_{key[:24]}"


def tool_use_id(call_id: str) -> str:
    """Tool-call ids the compiler makes (`call_...`) in Anthropic's form (`toolu_...`)."""
    return "toolu_" + call_id.removeprefix("call_") if call_id.startswith("call_") else call_id


def signature(key: str, index: int) -> str:
    """A stand-in for the signature that closes a thinking block, stable per stream and block."""
    return hashlib.sha256(f"{key}:{index}".encode()).hexdigest()


def _usage(stream: StreamInfo, *, output_tokens: int) -> dict[str, Any]:
    """Anthropic counts the prompt's tokens read from the cache and written to it apart from the rest."""
    usage = stream.usage
    return {
        "input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_creation_tokens),
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _event(kind: str, **fields: Any) -> Event:
    return Event(to_json({"type": kind, **fields}), event=kind)


class AnthropicStream:
    def __init__(self, stream: StreamInfo) -> None:
        self._stream = stream
        self._block: str | None = None
        self._index = -1
        self._pinged = False

    def start(self) -> list[Event]:
        message: dict[str, Any] = {
            "id": message_id(self._stream.key),
            "type": "message",
            "role": "assistant",
            "model": self._stream.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(self._stream, output_tokens=1),
        }
        return [_event("message_start", message=message)]

    def events(self, step: steps.ContentStep) -> list[Event]:
        match step:
            case steps.Text(text):
                return [*self._open("text", {"text": ""}), self._delta({"type": "text_delta", "text": text})]
            case steps.Reasoning(text):
                opened = self._open("thinking", {"thinking": "", "signature": ""})
                return [*opened, self._delta({"type": "thinking_delta", "thinking": text})]
            case steps.ToolCallStart(_, call_id, name):
                block = {"id": tool_use_id(call_id), "name": name, "input": {}}
                return [*self._open("tool_use", block), self._delta({"type": "input_json_delta", "partial_json": ""})]
            case steps.ToolCallArguments(_, arguments):
                return [self._delta({"type": "input_json_delta", "partial_json": arguments})]
            case steps.ErrorEvent():
                return [_event("error", **error_body(error_status(step), step))]
            case steps.Malformed(data):
                return [self._malformed(data)]
            case steps.UnknownEvent():
                return [_event(UNKNOWN_EVENT)]
            case steps.Finish(reason):
                delta = {"stop_reason": STOP_REASONS.get(reason, reason), "stop_sequence": None}
                usage = {"output_tokens": self._stream.usage.completion_tokens}
                return [*self._close(), _event("message_delta", delta=delta, usage=usage)]
        raise TypeError(f"not a content step: {step!r}")

    def end(self) -> list[Event]:
        return [_event("message_stop")]

    def _malformed(self, data: str | None) -> Event:
        """A delta of the open block (text when none is open) with `data`, or cut off inside its delta."""
        if data is None:
            kind, field = _DELTA_OF_BLOCK[self._block or "text"]
            delta = {"type": "content_block_delta", "index": max(self._index, 0), "delta": {"type": kind, field: ""}}
            data = to_json(delta)[: -len('"}}')]
        return Event(data, event="content_block_delta")

    def _open(self, kind: str, fields: dict[str, Any]) -> list[Event]:
        """Start a content block unless one of this kind is open (a tool call always starts one)."""
        if self._block == kind and kind != "tool_use":
            return []
        events = self._close()
        self._block, self._index = kind, self._index + 1
        events.append(_event("content_block_start", index=self._index, content_block={"type": kind, **fields}))
        if not self._pinged:
            self._pinged = True
            events.append(PING)
        return events

    def _delta(self, delta: dict[str, Any]) -> Event:
        return _event("content_block_delta", index=self._index, delta=delta)

    def _close(self) -> list[Event]:
        block, self._block = self._block, None
        if block is None:
            return []
        events = []
        if block == "thinking":
            events.append(
                self._delta({"type": "signature_delta", "signature": signature(self._stream.key, self._index)})
            )
        events.append(_event("content_block_stop", index=self._index))
        return events


def error_body(status: int, error: steps.ErrorEvent | None) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}}` with Anthropic's type and words for `status`;
    what `error` gives wins (its type only when it is one of Anthropic's)."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    message = _MESSAGES.get(status, f"HTTP {status}")
    if error is not None:
        message = error.message or message
        if error.type in _STATUS_OF_TYPE:
            kind = error.type
    return {"type": "error", "error": {"type": kind, "message": message}}


def quota_refusal(exceeded: QuotaExceeded, error_body: ErrorBody) -> tuple[dict[str, Any], Headers]:
    """Anthropic's `rate_limit_error` in its words, with `retry-after`, which the SDK waits."""
    message = (
        f"This request would exceed your organization's rate limit of {exceeded.limit:,} {exceeded.unit} per "
        f"{exceeded.per} (this server's {exceeded.source}). For details, refer to: "
        "https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. "
        "Please reduce the prompt length or the maximum tokens requested, or try again later."
    )
    return error_body(429, steps.ErrorEvent(message, "rate_limit_error")), retry_after(exceeded.retry_after_s)


def error_status(error: steps.ErrorEvent) -> int:
    """The status of the error's type (529 `overloaded_error` for none or one Anthropic does not
    know): a failed whole response answers with it, and the error event's defaults are its."""
    return _STATUS_OF_TYPE.get(error.type or MID_STREAM_ERROR_TYPE, _STATUS_OF_TYPE[MID_STREAM_ERROR_TYPE])


def complete(stream: StreamInfo, answer: Answer) -> dict[str, Any]:
    """One `message` object with its content blocks in order: thinking, text, tool uses."""
    content: list[dict[str, Any]] = []
    if answer.reasoning:
        content.append({"type": "thinking", "thinking": answer.reasoning, "signature": signature(stream.key, 0)})
    if answer.text or not answer.tool_calls:
        content.append({"type": "text", "text": answer.text})
    for call in answer.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call.call_id),
                "name": call.name,
                "input": call.input,
            }
        )
    reason = answer.finish_reason
    return {
        "id": message_id(stream.key),
        "type": "message",
        "role": "assistant",
        "model": stream.model,
        "content": content,
        "stop_reason": STOP_REASONS.get(reason, reason) if reason is not None else None,
        "stop_sequence": None,
        "usage": _usage(stream, output_tokens=stream.usage.completion_tokens),
    }


DIALECT = Dialect(
    name="anthropic",
    stream=AnthropicStream,
    error_body=error_body,
    complete=complete,
    error_status=error_status,
    request_id_header="request-id",
    quota_headers=anthropic_quota_headers,
    quota_refusal=quota_refusal,
    dated=False,
)
