"""Azure OpenAI: OpenAI's chat and legacy completions formats, as Azure's content filter annotates them.

Every stream opens with the filter's verdicts on the prompt (`_openai.PROMPT_FILTER_CHUNK`: `choices`
empty, `id`, `model` and `object` empty) before the role chunk. Each choice then carries
`content_filter_results`: the four output categories, all safe, on a chunk that carries text, `{}`
on the others (the role chunk, tool calls, the finish), as Azure's default (synchronous) filter sends
them. A scenario that finishes with `content_filter` ends the stream with that finish reason and the
category that tripped (`violence`, `medium`), which is what Azure sends when its filter stops an answer
part way; a whole response carries the same finish reason and verdicts, and `prompt_filter_results`.

`unknown_event` is the chunk Azure's asynchronous filter adds between the others: a choice with
`content_filter_results` and `content_filter_offsets` and no `delta` (openai-python #1677, #2313;
microsoft/autogen #6465), on which `chunk.choices[0].delta.content` raises as it does against Azure.

Errors come in two shapes, as Azure answers them. What the model service itself refuses (400, and
500, also an error in the middle of a stream) keeps OpenAI's `{"error": {"message", "type", "param",
"code"}}`; a 400 whose code is `content_filter` is the filter's refusal of the prompt, with `"status":
400` and an `innererror` naming the category (`ResponsibleAIPolicyViolation`). What Azure's gateway
answers before the model (401, 403, 404, 429, 503 and the rest, and a 400 with the code `BadRequest`,
such as an unknown `api-version`) is `{"error": {"code", "message"}}`, with Azure's codes (`"401"`,
`DeploymentNotFound`, `"429"`, ...) and words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mock_server.dialects import _openai, openai_chat, openai_completions
from mock_server.dialects.answer import Answer
from mock_server.dialects.base import Dialect, QuotaRefusal, StreamInfo
from mock_server.dialects.quota import ErrorBody, Headers, QuotaExceeded, openai_quota_headers, retry_after_ms
from mock_server.scenarios import steps
from mock_server.wire.frames import Event, to_json

CONTENT_FILTER = "content_filter"
REGION = "East US"
"""What `x-ms-region` says: the region of the resource that answered."""

_SAFE = {"filtered": False, "severity": "safe"}
OUTPUT_VERDICTS: dict[str, Any] = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
"""The filter's verdicts on a piece of an answer that passed it."""
FILTERED_VERDICTS: dict[str, Any] = {**OUTPUT_VERDICTS, "violence": {"filtered": True, "severity": "medium"}}
"""The verdicts on an answer (or a prompt) the filter stopped: one category over its threshold."""
_UNJUDGED = ',"content_filter_results":{}'
_PASSED = f',"content_filter_results":{to_json(OUTPUT_VERDICTS)}'
_FILTERED = f',"content_filter_results":{to_json(FILTERED_VERDICTS)}'

ANNOTATION_CHUNK = Event(
    to_json(
        {
            "choices": [
                {
                    "content_filter_offsets": {"check_offset": 0, "start_offset": 0, "end_offset": 0},
                    "content_filter_results": OUTPUT_VERDICTS,
                    "finish_reason": None,
                    "index": 0,
                }
            ],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
        }
    )
)
"""An asynchronous filter's verdicts on the text sent so far: a choice with no `delta` (or `text`)."""


def _verdicts_field(has_text: bool, finish_reason: str | None) -> str:
    """A choice's `content_filter_results`: the filtered verdicts on a `content_filter` finish, the
    safe ones on a piece of text, `{}` on the rest."""
    if finish_reason == CONTENT_FILTER:
        return _FILTERED
    return _PASSED if has_text else _UNJUDGED


class AzureChatStream(openai_chat.OpenAIChatStream):
    """OpenAI's chat chunks after the prompt's verdicts, each choice with its own."""

    unknown_event = ANNOTATION_CHUNK

    def start(self) -> list[Event]:
        return [_openai.PROMPT_FILTER_CHUNK]

    def _choice_fields(self, delta: dict[str, object], finish_reason: str | None) -> str:
        return _verdicts_field(bool(delta.get("content")), finish_reason)


class AzureCompletionsStream(openai_completions.OpenAICompletionsStream):
    """OpenAI's legacy completion chunks after the prompt's verdicts, each choice with its own."""

    unknown_event = ANNOTATION_CHUNK

    def start(self) -> list[Event]:
        return [_openai.PROMPT_FILTER_CHUNK]

    def _choice_fields(self, text: str, finish_reason: str | None) -> str:
        return _verdicts_field(bool(text), finish_reason)


def _annotated(body: dict[str, Any], answer: Answer) -> dict[str, Any]:
    """A whole OpenAI response as Azure sends it: the prompt's verdicts, and the answer's on its choice."""
    filtered = answer.finish_reason == CONTENT_FILTER
    body["choices"][0]["content_filter_results"] = FILTERED_VERDICTS if filtered else OUTPUT_VERDICTS
    body["prompt_filter_results"] = _openai.PROMPT_FILTER_RESULTS
    return body


def complete_chat(stream: StreamInfo, answer: Answer) -> dict[str, Any]:
    return _annotated(openai_chat.complete(stream, answer), answer)


def complete_completions(stream: StreamInfo, answer: Answer) -> dict[str, Any]:
    return _annotated(openai_completions.complete(stream, answer), answer)


PROMPT_FILTERED_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please "
    "modify your prompt and retry. To learn more about our content filtering policies please read our "
    "documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_MODEL_SERVICE_STATUSES = (400, 500)
"""The statuses the model service answers itself, in OpenAI's shape; Azure's gateway answers the rest."""
GATEWAY_BAD_REQUEST = "BadRequest"
"""The code of a 400 the gateway answers itself (an `api-version` it does not have), in its own shape."""


def _gateway_defaults(operation: str) -> dict[int, tuple[str, str]]:
    """(code, message) of the gateway's errors, per status, for requests to `operation`."""
    return {
        401: (
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
            "for an active subscription and use a correct regional API endpoint for your resource.",
        ),
        403: ("403", "Access denied due to Virtual Network/Firewall rules."),
        404: (
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment within the last "
            "5 minutes, please wait a moment and try again.",
        ),
        429: (
            "429",
            f"Requests to the {operation} Operation under Azure OpenAI API have exceeded token rate limit of your "
            "current OpenAI S0 pricing tier. Please retry after the number of seconds Retry-After gives. "
            "Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the "
            "default rate limit.",
        ),
        503: (
            "ServiceUnavailable",
            "The service is temporarily unable to process your request. Please try again later.",
        ),
    }


def _error_body(operation: str) -> ErrorBody:
    gateway = _gateway_defaults(operation)

    def error_body(status: int, error: steps.ErrorEvent | None) -> dict[str, Any]:
        """Azure's error body for `status`: the model service's, the content filter's, or the gateway's."""
        if status == 400 and error is not None and error.code == CONTENT_FILTER:
            fields = _openai.error_fields(status, error)
            if error.message is None:
                fields["message"] = PROMPT_FILTERED_MESSAGE
            inner = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": FILTERED_VERDICTS}
            return {"error": {**fields, "type": error.type, "param": "prompt", "status": 400, "innererror": inner}}
        if status in _MODEL_SERVICE_STATUSES and (error is None or error.code != GATEWAY_BAD_REQUEST):
            return _openai.error_body(status, error)
        code, message = gateway.get(status) or (str(status), _openai.error_fields(status, None)["message"])
        if error is not None:
            message, code = error.message or message, error.code or code
        return {"error": {"code": code, "message": message}}

    return error_body


def _quota_refusal(operation: str) -> QuotaRefusal:
    def quota_refusal(exceeded: QuotaExceeded, error_body: ErrorBody) -> tuple[dict[str, Any], Headers]:
        """The gateway's 429 in its words (a `call` or `token` rate limit), with `retry-after-ms` and
        `retry-after` as Azure sends them."""
        kind = "call" if exceeded.unit == "requests" else "token"
        seconds = max(1, math.ceil(exceeded.retry_after_s - 1e-6))
        message = (
            f"Requests to the {operation} Operation under Azure OpenAI API have exceeded {kind} rate limit of your "
            f"current OpenAI S0 pricing tier. Please retry after {seconds} seconds. (The limit is {exceeded.limit} "
            f"{exceeded.unit} per {exceeded.per}, this server's {exceeded.source}.)"
        )
        return error_body(429, steps.ErrorEvent(message)), retry_after_ms(exceeded.retry_after_s)

    return quota_refusal


def response_headers(request_id: str) -> tuple[tuple[str, str], ...]:
    """Besides `x-request-id` (which the openai SDK reads), Azure's gateway names each request in
    `apim-request-id`, and the region that answered in `x-ms-region`."""
    return (("apim-request-id", request_id), ("x-ms-region", REGION))


def error_headers(status: int, kind: str | None, headers: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Azure's 429s give the wait twice, in `Retry-After` (seconds) and `retry-after-ms`, which the
    openai SDK reads first: the second from the first, unless the scenario gives it."""
    given = {name.lower(): value for name, value in headers}
    seconds = given.get("retry-after", "")
    if "retry-after-ms" in given or not seconds.isdigit():
        return ()
    return (("retry-after-ms", str(int(seconds) * 1000)),)


CHAT = Dialect(
    name="azure-openai",
    stream=AzureChatStream,
    error_body=_error_body("ChatCompletions_Create"),
    complete=complete_chat,
    response_headers=response_headers,
    error_headers=error_headers,
    quota_headers=openai_quota_headers,
    quota_refusal=_quota_refusal("ChatCompletions_Create"),
)
COMPLETIONS = Dialect(
    name="azure-openai-completions",
    stream=AzureCompletionsStream,
    error_body=_error_body("Completions_Create"),
    complete=complete_completions,
    response_headers=response_headers,
    error_headers=error_headers,
    quota_headers=openai_quota_headers,
    quota_refusal=_quota_refusal("Completions_Create"),
)
