"""A recorded response: what an upstream sent for one request, event by event, with the moment each
event arrived, so that a scenario can play it again byte for byte (`recording:` in a scenario)."""

from __future__ import annotations

import itertools

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mock_server.scenarios.delays import DelayMs
from mock_server.scenarios.steps import Utf8Text

MAX_RECORDED_EVENTS = 50_000
"""As many events as a scripted stream may have chunks."""

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RecordedEvent(BaseModel):
    """One event of the body (for a body that is not SSE, one piece of it) and when it arrived."""

    model_config = _STRICT

    at_ms: DelayMs
    """Milliseconds from the response head to this event's last byte."""
    data: Utf8Text
    """The event's bytes as they came, its blank line included."""


class Recording(BaseModel):
    """The upstream's status and body; its headers are the scenario's `headers` and `content_type`."""

    model_config = _STRICT

    status: int = 200
    events: list[RecordedEvent] = Field(default_factory=list, max_length=MAX_RECORDED_EVENTS)
    upstream: str = ""
    """Where it was recorded (method, URL and time): for the reader, not used in playing."""

    @field_validator("status")
    @classmethod
    def _check_status(cls, value: int) -> int:
        if not 200 <= value <= 599:
            raise ValueError(f"{value} is not a status a recording can replay; use 200-599")
        return value

    @field_validator("events")
    @classmethod
    def _check_order(cls, value: list[RecordedEvent]) -> list[RecordedEvent]:
        for index, (before, after) in enumerate(itertools.pairwise(value), start=1):
            if after.at_ms < before.at_ms:
                raise ValueError(
                    f"event {index} arrives at {after.at_ms:g} ms, before event {index - 1}; keep at_ms in order"
                )
        return value
