"""Errors a user can cause, each saying what was wrong and what is accepted.

MockLLMError
 ├── ScenarioError         a scenario file or object is invalid: every problem, with its position
 ├── OverrideError         a per-request override (query or X-Mock-* header) is malformed -> 400
 ├── RequestBodyError      a request body cannot be used -> 400
 │    └── BodyTooLargeError  a request body is over the size limit -> 413
 ├── UnknownScenarioError  a request names a scenario that does not exist -> 404
 ├── ReplyTooLongError     a response would be too long to prepare -> 400
 ├── UnauthorizedError     a model request lacks the token `--require-auth` asks for -> 401
 ├── RestartedError        a `since` names a record of an earlier server instance -> 409
 └── ServerError           MockServer misuse: not running, already running, failed to start
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class MockLLMError(Exception):
    """Root of every error mock-llm-sse raises on purpose."""


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

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class OverrideError(MockLLMError):
    """A per-request override is malformed."""


class RequestBodyError(MockLLMError):
    """A request body is not something the endpoint can read."""

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class BodyTooLargeError(RequestBodyError):
    """A request body is larger than the server accepts."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"The request body is larger than this server accepts ({limit} bytes); send less, "
            "or start the server with a larger --max-body-bytes."
        )


class UnknownScenarioError(MockLLMError):
    """A request named a scenario that is not loaded."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"Unknown scenario {name!r}.{hint} Known scenarios: {', '.join(self.known)}.")


class ReplyTooLongError(MockLLMError):
    """A response would have more chunks (or characters) than the server prepares for one response."""

    def __init__(self, scenario: str, what: str, limit: str) -> None:
        super().__init__(
            f"The reply of scenario {scenario!r} to this request would have {what}, more than the {limit} one "
            "response may have (the server prepares a whole response before it streams it). Send a shorter "
            "prompt, or use a scenario with a shorter reply or longer chunks (`chunk: 1000`)."
        )


class UnauthorizedError(MockLLMError):
    """A model request did not carry the token the server requires."""


class RestartedError(MockLLMError):
    """A `since` names a record id of another server instance: the server restarted in between."""


class ServerError(MockLLMError):
    """MockServer was used in a way its state does not allow."""
