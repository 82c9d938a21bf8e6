"""Gemini (Google's Generative Language API): `GenerateContentResponse` chunks, written by the route's
framing: a `data:` line each with `alt=sse` (lines end with CRLF), else an element of a JSON array.
There is no end marker: a stream ends when its last chunk, the one with the finish reason, is sent.

A chunk holds the candidate's new parts: text as `{"text"}`, reasoning as `{"text", "thought": true}`
(before the answer), tool calls as `functionCall` parts. Gemini sends a call whole, its `args` an
object, never in pieces: a call's pieces are held until it is complete and go out together, in the
last chunk when nothing follows them. That chunk has the finish reason (`STOP`, tool calls included;
`MAX_TOKENS` for `length`) and the usage with `candidatesTokenCount`; every chunk carries
`usageMetadata`, `modelVersion` and `responseId`. The JSON is written as Google writes it: `": "`
after a name and nothing after a comma on `data:` lines, indented elsewhere, `<` and `>` escaped
(generativelanguage.googleapis.com captures of gemini-2.5-flash).

Errors are Google's `{"error": {"code", "message", "status"}}`, the status named for the HTTP code
(429 `RESOURCE_EXHAUSTED`, 503 `UNAVAILABLE`, ...). In the middle of a stream the service writes
one as a bare JSON object, not as an SSE event: google-genai reads such lines and raises
`ServerError`/`ClientError` for its code, @google/genai checks each read for one. A scripted error's
`type` may name a Google status, and its `code` an HTTP status; by default it is 500 `INTERNAL`.

A `malformed` event is a `data:` line of a chunk cut off inside its text: google-genai raises
`UnknownApiResponseError`. An `unknown_event` is a chunk without a candidate, carrying a field no
SDK declares, as the service sends candidate-less chunks and adds fields: google-genai drops the
field and yields a response whose `.text` is None, so a `"".join(chunk.text ...)` loop raises.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from mock_server.dialects.answer import Answer, ToolCall
from mock_server.dialects.base import Dialect, StreamInfo
from mock_server.dialects.quota import ErrorBody, Headers, QuotaExceeded
from mock_server.scenarios import steps
from mock_server.wire.frames import Event
from mock_server.wire.framing import GOOGLE_SSE

# google.rpc.Code by the HTTP status it maps to (googleapis/googleapis, google/rpc/code.proto).
STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_CODE_OF_STATUS = {name: code for code, name in STATUS_NAMES.items()}
_MESSAGES: dict[int, str] = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
MID_STREAM_STATUS = 500
API_KEY_INVALID = "API_KEY_INVALID"
"""The reason Google gives for a wrong API key (a 400), which google-genai users match on."""
UNKNOWN_FIELD = "mockUnknownField"

# Chat finish reasons (and Anthropic's) in Gemini's words; any other reason passes through.
FINISH_REASONS = {
    "stop": "STOP",
    "end_turn": "STOP",
    "tool_calls": "STOP",
    "tool_use": "STOP",
    "length": "MAX_TOKENS",
    "max_tokens": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "refusal": "SAFETY",
}
MALFORMED_FUNCTION_CALL = "MALFORMED_FUNCTION_CALL"
ROLE = "model"


def google_json(value: object, *, indent: bool = False) -> str:
    """JSON as Google writes it: `": "` after a name and no space after a comma, or indented by two;
    raw UTF-8 but `<` and `>` escaped (they can only be inside strings, so a replace is safe)."""
    text = json.dumps(value, ensure_ascii=False, indent=2 if indent else None, separators=(",", ": "))
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def indented_json(value: object) -> str:
    """A whole JSON body as Google writes one: indented, ending with a line break."""
    return google_json(value, indent=True) + "\n"


def response_id(key: str) -> str:
    """A `responseId` in the service's form (23 URL-safe base64 characters), stable per stream."""
    return base64.urlsafe_b64encode(bytes.fromhex(key[:34])).rstrip(b"=").decode()


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")


def error_body(status: int, error: steps.ErrorEvent | None) -> dict[str, Any]:
    """`{"error": {"code", "message", "status"}}` with Google's words for `status`; what `error` gives
    wins (its type only when it names a Google status)."""
    message = _MESSAGES.get(status, f"HTTP {status}")
    name = status_name(status)
    if error is not None:
        message = error.message or message
        if error.type in _CODE_OF_STATUS:
            name = error.type
    return {"error": {"code": status, "message": message, "status": name}}


def error_status(error: steps.ErrorEvent) -> int:
    """The HTTP status of an error in an answer: its `code` when that is one (`"503"`), else the
    status its `type` names (`RESOURCE_EXHAUSTED`: 429), else 500. A whole response fails with it,
    and a mid-stream error carries it as its `code`."""
    if error.code is not None and error.code.isascii() and error.code.isdigit() and 400 <= int(error.code) < 600:
        return int(error.code)
    return _CODE_OF_STATUS.get(error.type or "", MID_STREAM_STATUS)


def refusal_body(status: int, message: str, code: str | None, param: str | None) -> dict[str, Any]:
    """An error of ours in Google's shape, with the `details` Google adds: the reason of a key that
    is not valid, the field a bad request got wrong."""
    body = {"error": {"code": status, "message": message, "status": status_name(status)}}
    details: list[dict[str, Any]] = []
    if code == API_KEY_INVALID:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": API_KEY_INVALID,
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        )
    if param is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": param, "description": message}],
            }
        )
    if details:
        body["error"]["details"] = details
    return body


_QUOTAS = {
    ("requests", "minute"): ("generate_content_requests", "GenerateRequestsPerMinutePerProjectPerModel"),
    ("requests", "day"): ("generate_content_requests", "GenerateRequestsPerDayPerProjectPerModel"),
    ("tokens", "minute"): ("generate_content_input_token_count", "GenerateContentInputTokensPerModelPerMinute"),
}
"""(quotaMetric, quotaId) of each limit, as Google names them."""


def quota_refusal(exceeded: QuotaExceeded, error_body: ErrorBody) -> tuple[dict[str, Any], Headers]:
    """`RESOURCE_EXHAUSTED` as Google words it, with the `details` it adds: a `Help` link, the
    `QuotaFailure` and a `RetryInfo` `retryDelay`; no headers (google-genai reads the body)."""
    metric, quota_id = _QUOTAS.get((exceeded.unit, exceeded.per), _QUOTAS["requests", "minute"])
    metric = f"generativelanguage.googleapis.com/{metric}"
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, "
        f"head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: {metric}, limit: "
        f"{exceeded.limit}, model: {exceeded.model} (this server's {exceeded.source})\n"
        f"Please retry in {exceeded.retry_after_s:.9f}s."
    )
    body = error_body(429, steps.ErrorEvent(message))
    body["error"]["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": metric,
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": exceeded.model},
                    "quotaValue": str(exceeded.limit),
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": f"{max(1, math.ceil(exceeded.retry_after_s - 1e-6))}s",
        },
    ]
    return body, ()


def _finish_reason(reason: str) -> str:
    return FINISH_REASONS.get(reason, reason)


def _args(arguments: str) -> dict[str, Any] | None:
    """A call's `args` object; None when the arguments are not one (a scenario made them so on purpose)."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _usage(stream: StreamInfo, *, final: bool) -> dict[str, Any]:
    """Every chunk's `usageMetadata`: the prompt's tokens, and in the last one the answer's, its
    thoughts counted apart (`candidatesTokenCount` leaves them out); counts of 0 left out, as Google
    leaves them."""
    usage = stream.usage
    fields: dict[str, Any] = {"promptTokenCount": usage.prompt_tokens}
    if final:
        fields["candidatesTokenCount"] = usage.completion_tokens - usage.reasoning_tokens
    if usage.cached_tokens:
        fields["cachedContentTokenCount"] = usage.cached_tokens
    fields["totalTokenCount"] = usage.total_tokens if final else usage.prompt_tokens
    fields["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.prompt_tokens}]
    if usage.cached_tokens:
        fields["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.cached_tokens}]
    if final and usage.reasoning_tokens:
        fields["thoughtsTokenCount"] = usage.reasoning_tokens
    return fields


class _Calls:
    """The tool calls of an answer, gathered piece by piece until they go out whole."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[str, list[str]]] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def start(self, index: int, name: str) -> None:
        self._calls[index] = (name, [])

    def add(self, index: int, arguments: str) -> None:
        self._calls.setdefault(index, ("", []))[1].append(arguments)

    def take(self) -> list[ToolCall]:
        calls = [ToolCall("", name, "".join(pieces)) for _, (name, pieces) in sorted(self._calls.items())]
        self._calls.clear()
        return calls


def _candidate(calls: list[ToolCall], parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    """The candidate of a chunk or a whole response: its parts and the calls' parts, or, when a call's
    arguments are not an object, no content and `MALFORMED_FUNCTION_CALL` (as the service answers)."""
    call_args = [(call, _args(call.arguments)) for call in calls]
    broken = [call for call, args in call_args if args is None]
    if broken:
        message = f"Malformed function call: {broken[0].name}({broken[0].arguments})"
        return {"finishReason": MALFORMED_FUNCTION_CALL, "index": 0, "finishMessage": message}
    parts = [*parts, *({"functionCall": {"name": call.name, "args": args}} for call, args in call_args)]
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": ROLE}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return candidate


class GeminiStream:
    """One stream's chunks; they share `modelVersion` and `responseId`."""

    def __init__(self, stream: StreamInfo) -> None:
        self._stream = stream
        self._tail = {"modelVersion": stream.model, "responseId": response_id(stream.key)}
        self._calls = _Calls()

    def _chunk(
        self, candidate: dict[str, Any] | None, *, final: bool = False, extra: dict[str, Any] | None = None
    ) -> Event:
        chunk: dict[str, Any] = {} if candidate is None else {"candidates": [candidate]}
        chunk.update(extra or {})
        chunk["usageMetadata"] = _usage(self._stream, final=final)
        chunk.update(self._tail)
        return Event(google_json(chunk))

    def _parts(self, *parts: dict[str, Any]) -> Event:
        return self._chunk(_candidate([], list(parts), None))

    def start(self) -> list[Event]:
        return []

    def events(self, step: steps.ContentStep) -> list[Event]:
        match step:
            case steps.ToolCallStart(index, _, name):
                self._calls.start(index, name)
                return []
            case steps.ToolCallArguments(index, arguments):
                self._calls.add(index, arguments)
                return []
            case steps.Finish(reason):
                calls = self._calls.take()
                candidate = _candidate(calls, [] if calls else [{"text": ""}], _finish_reason(reason))
                return [self._chunk(candidate, final=True)]
        events = self._held_calls()
        match step:
            case steps.Text(text):
                events.append(self._parts({"text": text}))
            case steps.Reasoning(text):
                events.append(self._parts({"text": text, "thought": True}))
            case steps.ErrorEvent():
                events.append(Event(google_json(error_body(error_status(step), step), indent=True), event="error"))
            case steps.Malformed(data):
                events.append(Event(data if data is not None else '{"candidates": [{"content": {"parts": [{"text": "'))
            case steps.UnknownEvent():
                events.append(self._chunk(None, extra={UNKNOWN_FIELD: {"note": "a field this client does not know"}}))
            case _:
                raise TypeError(f"not a content step: {step!r}")
        return events

    def end(self) -> list[Event]:
        return self._held_calls()

    def _held_calls(self) -> list[Event]:
        """The calls gathered so far, in a chunk of their own (something other than the finish follows them)."""
        return [self._chunk(_candidate(self._calls.take(), [], None))] if self._calls else []


def complete(stream: StreamInfo, answer: Answer) -> dict[str, Any]:
    """One `GenerateContentResponse` with every part: the thought, the text, the calls."""
    parts: list[dict[str, Any]] = []
    if answer.reasoning:
        parts.append({"text": answer.reasoning, "thought": True})
    if answer.text or not answer.tool_calls:
        parts.append({"text": answer.text})
    finish = _finish_reason(answer.finish_reason) if answer.finish_reason is not None else None
    return {
        "candidates": [_candidate(list(answer.tool_calls), parts, finish)],
        "usageMetadata": _usage(stream, final=True),
        "modelVersion": stream.model,
        "responseId": response_id(stream.key),
    }


DIALECT = Dialect(
    name="gemini",
    stream=GeminiStream,
    error_body=error_body,
    complete=complete,
    error_status=error_status,
    framing=GOOGLE_SSE,
    write_json=indented_json,
    refusal_body=refusal_body,
    quota_refusal=quota_refusal,
    dated=False,
)
