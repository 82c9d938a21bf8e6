"""The one bound on every delay: scenario pacing and `retry:`, scripted waits, faults, the verdict's
thresholds and the per-request overrides all take milliseconds from 0 to MAX_DELAY_MS."""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import AfterValidator, Field

from mock_server.scenarios.problems import Described

MAX_DELAY_MS = 3_600_000
"""One hour: longer delays are almost certainly a typo (seconds given as milliseconds twice over)."""

_Number = TypeVar("_Number", int, float)


def too_long(value: float) -> str:
    """What is wrong with a delay above MAX_DELAY_MS, and what is accepted."""
    return f"{value:.15g} ms is longer than the {MAX_DELAY_MS} ms (one hour) any delay may be"


def _at_most_max_delay(value: _Number) -> _Number:
    if value > MAX_DELAY_MS:
        raise ValueError(too_long(value))
    return value


DelayMs = Annotated[float, Field(ge=0), AfterValidator(_at_most_max_delay), Described("a number of milliseconds")]
"""A delay in milliseconds, 0 to MAX_DELAY_MS (finite: the models forbid inf and NaN)."""
WholeDelayMs = Annotated[
    int, Field(ge=0), AfterValidator(_at_most_max_delay), Described("a whole number of milliseconds")
]
"""A delay in whole milliseconds (SSE's `retry:`), 0 to MAX_DELAY_MS."""
