"""Errors a user can cause, each saying what was wrong and what is accepted, and answered over HTTP
with its class's `status` and `code` (the control API's `type`, OpenAI's `code`):

MockLLMError
 ├── ScenarioError             a scenario file or object is invalid: every problem, with its position -> 422
 ├── OverrideError             a per-request override (query or X-Mock-* header) is malformed -> 400
 ├── RequestBodyError          a request body cannot be used -> 400
 │    └── BodyTooLargeError    a request body is over the size limit -> 413
 ├── QueryParameterError       a query parameter of the control API is malformed -> 400
 ├── UnknownScenarioError      a request names a scenario that does not exist -> 404
 ├── PreviousResponseNotFoundError  `previous_response_id` names no stored response -> 400
 ├── ResponseNotFoundError     `GET /v1/responses/{id}` names no stored response -> 404
 ├── NotRuntimeScenarioError   a DELETE names a scenario loaded from a file -> 409
 ├── ReplyTooLongError         a response would be too long to prepare -> 400
 ├── UnauthorizedError         a model request lacks the token `--require-auth` asks for -> 401
 │    ├── ApiKeyMissingError   a Gemini request carries no key, answered as Google does -> 403
 │    ├── ApiKeyInvalidError   a Gemini request carries another key -> 400 `API_KEY_INVALID`
 │    ├── AwsSignatureMissingError a Bedrock request is not signed -> 403, as AWS answers it
 │    └── AwsTokenInvalidError a Bedrock request is signed with another key -> 403, as AWS answers it
 ├── AdminTokenError           a control request lacks the token `--admin-token` asks for -> 401
 ├── RestartedError            a `since` names a record of an earlier server instance -> 409
 ├── RecordNotFoundError       a control request names a record the journal does not hold -> 404
 ├── NotRenderableError        a record's response cannot be rendered again (forwarded upstream) -> 409
 ├── UpstreamError             the upstream refused the connection or failed before its head -> 502
 │    └── UpstreamTimeoutError the upstream sent no response head in time -> 504
 ├── NoRecordingError          `--record-mode none` and no recording answers the request -> 404
 ├── MissingApiVersionError    an Azure OpenAI request without `api-version` -> 404, as Azure answers it
 ├── UnsupportedApiVersionError an Azure OpenAI request with an `api-version` Azure does not have -> 400
 └── ServerError               MockServer misuse: not running, already running, failed to start
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar


class MockLLMError(Exception):
    """Root of every error mock-llm-sse raises on purpose."""

    status: ClassVar[int] = 400
    """The HTTP status the error is answered with."""
    code: ClassVar[str] = "invalid_request"
    """What kind of error it is, stable for machines: the control API's `type`, OpenAI's `code`."""
    param: str | None = None
    """The request field or parameter at fault, when there is one (OpenAI's `param`)."""
    headers: ClassVar[Mapping[str, str]] = {}
    """Response headers the answer carries (`WWW-Authenticate`)."""


def close_matches(word: str, known: Iterable[str], n: int = 1) -> list[str]:
    """Up to `n` of `known` that look like `word`, the closest first: what a "did you mean" offers.
    difflib is loaded here, on the first mistake, not with every start."""
    import difflib

    return difflib.get_close_matches(word, list(known), n=n)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario, at `source:line` when the line is known."""

    source: str
    line: int | None
    message: str
    path: tuple[str | int, ...] = ()
    """Where in the document: keys and list indexes (empty for the document as a whole)."""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.message}"


class ScenarioError(MockLLMError):
    """A scenario is invalid; `problems` lists every problem found, not just the first."""

    status = 422
    code = "invalid_scenario"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class OverrideError(MockLLMError):
    """A per-request override is malformed."""

    code = "invalid_override"


class RequestBodyError(MockLLMError):
    """A request body is not something the endpoint can read."""

    code = "invalid_request_body"

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class BodyTooLargeError(RequestBodyError):
    """A request body is larger than the server accepts."""

    status = 413
    code = "request_too_large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"The request body is larger than this server accepts ({limit} bytes); send less, "
            "or start the server with a larger --max-body-bytes."
        )


class QueryParameterError(MockLLMError):
    """A query parameter of the control API is malformed."""

    code = "invalid_parameter"

    def __init__(self, name: str, message: str) -> None:
        self.param = name
        super().__init__(f"query parameter `{name}`: {message}")


class UnknownScenarioError(MockLLMError):
    """A request named a scenario that is not loaded."""

    status = 404
    code = "scenario_not_found"
    param = "scenario"

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        close = close_matches(name, self.known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"Unknown scenario {name!r}.{hint} Known scenarios: {', '.join(self.known)}.")


_KEPT = (
    "Responses are kept from their POST /v1/responses until /_mock/reset (the oldest go first once "
    "they fill their memory), unless created with `store: false`."
)


class PreviousResponseNotFoundError(MockLLMError):
    """A Responses API request continues a response that is not stored (never was, `store: false`,
    or cleared by a reset): OpenAI's 400."""

    code = "previous_response_not_found"
    param = "previous_response_id"

    def __init__(self, response_id: str) -> None:
        super().__init__(f"Previous response with id {response_id!r} not found. {_KEPT}")


class ResponseNotFoundError(MockLLMError):
    """`GET /v1/responses/{id}` (or DELETE) names a response that is not stored."""

    status = 404
    code = "response_not_found"

    def __init__(self, response_id: str) -> None:
        super().__init__(f"Response with id {response_id!r} not found. {_KEPT}")


class NotRuntimeScenarioError(MockLLMError):
    """A scenario loaded from a file cannot be removed at run time."""

    status = 409
    code = "not_runtime"


class ReplyTooLongError(MockLLMError):
    """A response would have more chunks (or characters) than the server prepares for one response."""

    code = "reply_too_long"

    def __init__(self, scenario: str, what: str, limit: str) -> None:
        super().__init__(
            f"The reply of scenario {scenario!r} to this request would have {what}, more than the {limit} one "
            "response may have (the server prepares a whole response before it streams it). Send a shorter "
            "prompt, or use a scenario with a shorter reply or longer chunks (`chunk: 1000`)."
        )


class UnauthorizedError(MockLLMError):
    """A model request did not carry the token the server requires."""

    status = 401
    code = "invalid_api_key"


class ApiKeyMissingError(UnauthorizedError):
    """A Gemini request carried no key: Google answers 403 `PERMISSION_DENIED`."""

    status = 403
    code = "PERMISSION_DENIED"


class ApiKeyInvalidError(UnauthorizedError):
    """A Gemini request carried a key that is not the one required: Google answers 400, its reason
    `API_KEY_INVALID`."""

    status = 400
    code = "API_KEY_INVALID"


class AwsSignatureMissingError(UnauthorizedError):
    """A Bedrock request carried no SigV4 signature (nor a Bedrock API key): AWS answers 403
    `MissingAuthenticationTokenException`."""

    status = 403
    code = "MissingAuthenticationTokenException"


class AwsTokenInvalidError(UnauthorizedError):
    """A Bedrock request was signed with an access key that is not the token required: AWS answers
    403 `UnrecognizedClientException`."""

    status = 403
    code = "UnrecognizedClientException"


class AdminTokenError(MockLLMError):
    """A control-API request that needs `--admin-token` did not carry it."""

    status = 401
    code = "unauthorized"
    headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": 'Bearer realm="mock-llm-sse control"'}


class RestartedError(MockLLMError):
    """A `since` names a record id of another server instance: the server restarted in between."""

    status = 409
    code = "restarted"


class RecordNotFoundError(MockLLMError):
    """A control request names a record id the journal does not hold (never given, or gone)."""

    status = 404
    code = "record_not_found"


class NotRenderableError(MockLLMError):
    """A record's response cannot be rendered again: no scenario of this server answered it."""

    status = 409
    code = "not_renderable"


class UpstreamError(MockLLMError):
    """The upstream could not be reached, or failed before its response head."""

    status = 502
    code = "upstream_unreachable"


class UpstreamTimeoutError(UpstreamError):
    """The upstream sent no response head in time."""

    status = 504
    code = "upstream_timeout"


class NoRecordingError(MockLLMError):
    """Replay only (`--record-mode none`), and no recording matches the request."""

    status = 404
    code = "no_recording"

    def __init__(self, asked: str, recordings: Sequence[str]) -> None:
        known = ", ".join(recordings[:20]) + (f" and {len(recordings) - 20} more" if len(recordings) > 20 else "")
        super().__init__(
            f"No recording answers {asked} (--record-mode none replays only). "
            + (f"Recordings: {known}." if recordings else "There are no recordings yet.")
            + " Record it with --upstream URL --record-mode new, or add a scenario that matches it."
        )


class MissingApiVersionError(MockLLMError):
    """An Azure OpenAI request came without the `api-version` query parameter: Azure finds no resource
    for it, and says so with a 404."""

    status = 404
    code = "404"
    param = "api-version"

    def __init__(self, example: str) -> None:
        super().__init__(
            "Resource not found: Azure OpenAI requests need the `api-version` query parameter, "
            f"like ?api-version={example} (AzureOpenAI(api_version=...) sends it)."
        )


class UnsupportedApiVersionError(MockLLMError):
    """An Azure OpenAI request named an `api-version` that Azure does not have."""

    code = "BadRequest"
    param = "api-version"

    def __init__(self, version: str, known: Sequence[str]) -> None:
        close = close_matches(version, known)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(
            f"API version not supported: {version!r} is not an Azure OpenAI API version.{hint} "
            f"Accepted: {', '.join(known)}."
        )


class ServerError(MockLLMError):
    """MockServer was used in a way its state does not allow (in the test process: never answered over HTTP)."""

    status = 500
    code = "server_error"


class StateStoreError(MockLLMError):
    """`--state` names a store the server cannot use (a file it cannot open, a Redis it cannot reach)."""

    status = 503
    code = "state_store_unavailable"
