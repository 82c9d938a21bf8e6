"""What a dialect is: the renderer of one provider's wire format, its error bodies and its whole
(non-streaming) responses."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mock_server.dialects.answer import Answer, collect_answer
from mock_server.dialects.quota import (
    ErrorBody,
    Headers,
    QuotaExceeded,
    Quotas,
    no_quota_headers,
    plain_quota_refusal,
)
from mock_server.scenarios import steps
from mock_server.timeline.compile import Usage
from mock_server.wire.frames import to_json
from mock_server.wire.framing import SSE, Framing
from mock_server.wire.rendering import StreamRenderer


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a dialect may put in its frames besides the steps."""

    key: str
    """A hex digest that identifies the stream (scenario, prompt, model, seed): ids derive from it,
    so a resumed stream keeps its id."""
    created: int
    """When the response was made (Unix seconds), for a dialect that writes it (`Dialect.dated`); 0 for
    any other, so that a stream it renders is the same, and kept as rendered, from one second to the next."""
    model: str
    usage: Usage
    include_usage: bool = False
    reasoning: bool = True
    """Whether the request wants the reasoning (a dialect that can leave it out does when it does not)."""
    previous_response_id: str | None = None
    """The stored response a Responses API request continues."""
    store: bool = True
    """Whether a Responses API response is stored."""


RefusalBody = Callable[[int, str, str | None, str | None], dict[str, Any]]
QuotaRefusal = Callable[[QuotaExceeded, ErrorBody], tuple[dict[str, Any], Headers]]


def server_error_status(error: steps.ErrorEvent) -> int:
    """The status of an answer that failed while it was being generated: 500."""
    return 500


def no_headers(request_id: str) -> tuple[tuple[str, str], ...]:
    """No headers besides the request id's."""
    return ()


def no_error_headers(status: int, kind: str | None, given: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """No headers besides those every response has and those the scenario or fault gives."""
    return ()


@dataclass(frozen=True, slots=True)
class Dialect:
    """One provider's wire format: a `StreamRenderer` for each streamed response, the body of an HTTP
    error, and the body of a whole response."""

    name: str
    stream: Callable[[StreamInfo], StreamRenderer]
    error_body: ErrorBody
    """The JSON body of an HTTP error answered before the stream, in the dialect's own shape."""
    complete: Callable[[StreamInfo, Answer], dict[str, Any]]
    """The whole, non-streaming response body for an answer."""
    error_status: Callable[[steps.ErrorEvent], int] = server_error_status
    """The HTTP status a non-streaming response answers with when the answer has an error."""
    request_id_header: str = "x-request-id"
    """The header the provider names each response's request id in (the SDKs expose it as `request_id`)."""
    framing: Framing = SSE
    """How its streams' events are written (a route may choose another from the query, as Gemini's `alt`)."""
    write_json: Callable[[Any], str] = to_json
    """How its JSON bodies are written (compact; Google indents its own)."""
    refusal_body: RefusalBody | None = None
    """The body of an error of ours (a bad request, a missing key), given its status, message, code and
    the field at fault, for a shape that has no place for OpenAI's `code` and `param`; None: the error
    body for the status, with our message, and `code` and `param` where the shape has them."""
    response_headers: Callable[[str], tuple[tuple[str, str], ...]] = no_headers
    """Headers the provider sends on every response besides `request_id_header`, given the request id."""
    error_headers: Callable[[int, str | None, Sequence[tuple[str, str]]], tuple[tuple[str, str], ...]] = (
        no_error_headers
    )
    """Headers an error answer carries besides those, given its status, its kind (a scripted error's
    `type`, our error's code) and the headers the scenario or fault gives it: Bedrock names its
    exception in `x-amzn-ErrorType`, Azure repeats `Retry-After` in `retry-after-ms`."""
    quota_headers: Callable[[Quotas], Headers] = no_quota_headers
    """The headers that count a rate-limited request's quotas down (OpenAI's `x-ratelimit-*`), on
    every response to it, its 429 included."""
    quota_refusal: QuotaRefusal = plain_quota_refusal
    """The body (made with `error_body`) and headers (`Retry-After`) of a 429 over a rate limit."""
    dated: bool = True
    """Whether its streams and bodies carry the response's time (`StreamInfo.created`): OpenAI's and
    Ollama's do, Anthropic's, Gemini's and Bedrock's do not."""

    def over_quota(self, exceeded: QuotaExceeded) -> tuple[dict[str, Any], Headers]:
        """The body and headers of the 429 that refuses a request over a rate limit."""
        body, headers = self.quota_refusal(exceeded, self.error_body)
        return body, (*headers, *self.quota_headers(exceeded.quotas))

    def whole_body(self, info: StreamInfo, content: Iterable[steps.Step]) -> tuple[int, bytes]:
        """The status and JSON body of a whole (non-streaming) response to the answer `content` gives:
        the dialect's error when the answer has one."""
        answer = collect_answer(content)
        if answer.error is not None:
            status = self.error_status(answer.error)
            return status, self.write_json(self.error_body(status, answer.error)).encode()
        return 200, self.write_json(self.complete(info, answer)).encode()
