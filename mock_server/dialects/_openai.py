"""What every OpenAI dialect shares: the error envelope and its defaults per status, usage, ids."""

from __future__ import annotations

from typing import Any

from mock_server.dialects.quota import ErrorBody, Headers, QuotaExceeded, go_duration, retry_after_ms
from mock_server.scenarios import steps
from mock_server.timeline.compile import Usage
from mock_server.wire.frames import Event, to_json

# (message, type, code) as the service sends them, per status.
_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: (
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"),
    408: ("Request timed out.", "timeout", None),
    409: ("Conflict.", "invalid_request_error", None),
    422: ("Unprocessable request.", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests. Please retry after the time the Retry-After header gives.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


MID_STREAM_STATUS = 500
"""An error in the middle of a stream is the server's: its defaults are a 500's."""


def error_fields(status: int, error: steps.ErrorEvent | None) -> dict[str, Any]:
    """`{"message", "type", "param", "code"}`: what `error` gives, the service's defaults for
    `status` for the rest."""
    fallback = (f"HTTP {status}", "server_error" if status >= 500 else "invalid_request_error", None)
    message, kind, code = _DEFAULTS.get(status, fallback)
    if error is not None:
        message, kind = error.message or message, error.type or kind
        code = error.code if error.code is not None else code
    return {"message": message, "type": kind, "param": None, "code": code}


def error_body(status: int, error: steps.ErrorEvent | None) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code"}}`, with the service's defaults for `status`."""
    return {"error": error_fields(status, error)}


def quota_refusal(exceeded: QuotaExceeded, error_body: ErrorBody) -> tuple[dict[str, Any], Headers]:
    """OpenAI's `rate_limit_exceeded`, its `type` the unit counted (`requests`, `tokens`), in its
    words; `retry-after-ms` and `retry-after`, which the openai SDK waits."""
    requested = ", Requested 1" if exceeded.unit == "requests" else ""
    per = "min" if exceeded.per == "minute" else "day"
    message = (
        f"Rate limit reached for {exceeded.model} on {exceeded.unit} per {per} ({exceeded.abbreviation}): "
        f"Limit {exceeded.limit}, Used {exceeded.used}{requested}. Please try again in "
        f"{go_duration(exceeded.retry_after_s)}. (The limit is this server's {exceeded.source}.)"
    )
    event = steps.ErrorEvent(message, exceeded.unit, "rate_limit_exceeded")
    return error_body(429, event), retry_after_ms(exceeded.retry_after_s)


def mid_stream_error(error: steps.ErrorEvent) -> dict[str, Any]:
    """The body of an error sent inside a 200 stream: as a 500's body, which is also what a whole
    response with this error answers (`Dialect.whole_body`)."""
    return error_body(MID_STREAM_STATUS, error)


_SAFE = {"filtered": False, "severity": "safe"}
PROMPT_FILTER_RESULTS: list[dict[str, Any]] = [
    {
        "prompt_index": 0,
        "content_filter_results": {
            "hate": _SAFE,
            "jailbreak": {"filtered": False, "detected": False},
            "self_harm": _SAFE,
            "sexual": _SAFE,
            "violence": _SAFE,
        },
    }
]
"""Azure OpenAI's verdicts on a prompt its content filter let through (read, never changed)."""
PROMPT_FILTER_CHUNK = Event(
    to_json(
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": PROMPT_FILTER_RESULTS,
        }
    )
)
"""Azure OpenAI's first chunk: no choice, empty id, model and object, its verdicts on the prompt
(microsoft/semantic-kernel, dotnet/src/Connectors/Connectors.AzureOpenAI.UnitTests/TestData/
chat_completion_streaming_async_filter_response.txt). The unknown event of the data-only dialects,
and the first chunk of every stream of the Azure dialects (`azure_openai`)."""


def usage_body(usage: Usage) -> dict[str, Any]:
    """Chat and legacy completions' `usage` object."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def fingerprint(key: str) -> str:
    """The `system_fingerprint` of a stream: the same for every chunk and for the whole response."""
    return f"fp_{key[29:39]}"
