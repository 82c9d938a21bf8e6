"""The dialect protocol: what a renderer of one wire format provides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mock_server.dialects.answer import Answer
from mock_server.scenarios import steps
from mock_server.timeline.compile import Usage
from mock_server.wire.frames import Event


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a dialect may put in its frames besides the steps."""

    key: str
    """A hex digest that identifies the stream (scenario, prompt, model, seed): ids derive from it,
    so a resumed stream keeps its id."""
    created: int
    model: str
    usage: Usage
    include_usage: bool = False


class Dialect(Protocol):
    """Renders one stream; an instance lives for one response and may keep state between steps."""

    def start(self) -> list[Event]:
        """Events sent before the first content step (Anthropic's message_start, Responses' response.created)."""

    def render(self, step: steps.ContentStep) -> list[Event]:
        """The events for one content step."""

    def end(self) -> list[Event]:
        """The end marker sent after a complete answer (`data: [DONE]`, `message_stop`, `response.completed`),
        unless the scenario drops it."""


ErrorBody = Callable[[int, steps.Error | None], dict[str, Any]]


def server_error_status(error: steps.Error) -> int:
    """The status of an answer that failed while it was being generated: 500."""
    return 500


@dataclass(frozen=True, slots=True)
class DialectSpec:
    name: str
    stream: Callable[[StreamInfo], Dialect]
    error_body: ErrorBody
    """The JSON body of an HTTP error answered before the stream, in the dialect's own shape."""
    complete: Callable[[StreamInfo, Answer], dict[str, Any]]
    """The whole, non-streaming response body for an answer."""
    error_status: Callable[[steps.Error], int] = server_error_status
    """The HTTP status a non-streaming response answers with when the answer has an error."""
