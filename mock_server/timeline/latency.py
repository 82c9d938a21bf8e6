"""Drawing one stream's waits from a scenario's `latency:`, before the stream starts.

Each wait is drawn from a random stream of its own, seeded by the scenario's seed (or the request's):
the same seed gives the same waits, and neither other draws (jitter, a fault's probability) nor a
change to the other distribution shift them.
"""

from __future__ import annotations

import random

from mock_server.scenarios import steps
from mock_server.scenarios.delays import MAX_DELAY_MS
from mock_server.scenarios.latency import Distribution, Fixed, Latency, LogNormal, Normal, Uniform
from mock_server.timeline.tokens import count_tokens


def draw(distribution: Distribution, rng: random.Random) -> float:
    """One delay in milliseconds from `distribution`, within 0 to MAX_DELAY_MS."""
    match distribution:
        case Fixed(ms=ms):
            value = ms
        case Uniform(min=low, max=high):
            value = rng.uniform(low, high)
        case Normal(mean=mean, sd=sd):
            value = rng.gauss(mean, sd)
        case LogNormal():
            value = rng.lognormvariate(distribution.mu, distribution.sigma)
    return min(max(value, 0.0), MAX_DELAY_MS)


def step_tokens(step: steps.Step, model: str | None, counted: dict[str, int] | None = None) -> int:
    """How many tokens a paced step stands for, at least one (the finish: the end-of-text token);
    `counted` remembers the count of each text, as a reply's words come again and again."""
    match step:
        case steps.Text(text) | steps.Reasoning(text) | steps.ToolCallArguments(arguments=text):
            pass
        case steps.ToolCallStart(name=text):
            pass
        case _:
            return 1
    if counted is None:
        return max(1, count_tokens(text, model))
    found = counted.get(text)
    if found is None:
        found = counted[text] = max(1, count_tokens(text, model))
    return found


class LatencyDraws:
    """The waits of one stream: `first()` before its first chunk, `between(step)` before each later
    chunk (and the finish)."""

    def __init__(self, latency: Latency, seed: int, model: str | None) -> None:
        self._latency = latency
        self._model = model
        self._first = random.Random(f"latency-ttft:{seed}")
        self._between = random.Random(f"latency-itl:{seed}")
        self._counted: dict[str, int] = {}

    def first(self) -> float:
        ttft = self._latency.ttft_ms
        return draw(ttft, self._first) if ttft is not None else 0.0

    def between(self, step: steps.Step) -> float:
        latency = self._latency
        if latency.tokens_per_s is not None:
            return min(step_tokens(step, self._model, self._counted) * 1000 / latency.tokens_per_s, MAX_DELAY_MS)
        return draw(latency.itl_ms, self._between) if latency.itl_ms is not None else 0.0
