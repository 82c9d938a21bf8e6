"""A scenario's `latency:`: how long the first token takes and how long each one after it, as
distributions of milliseconds (or a rate of tokens), or a named preset of measured figures.

The model only says what a user wrote and checks it; the timeline draws from it (timeline/latency.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from mock_server.scenarios.delays import DelayMs

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

P95_Z = 1.6448536269514722
"""The 95th percentile of the standard normal: a lognormal's p95 is exp(mu + P95_Z * sigma)."""
MAX_TOKENS_PER_S = 100_000.0


class Fixed(BaseModel):
    """Always `ms`."""

    model_config = _STRICT
    dist: Literal["fixed"]
    ms: DelayMs


class Uniform(BaseModel):
    """Any value from `min` to `max`, equally likely."""

    model_config = _STRICT
    dist: Literal["uniform"]
    min: DelayMs
    max: DelayMs

    @model_validator(mode="after")
    def _check_order(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g} ms) is more than max ({self.max:g} ms); give min <= max")
        return self


class Normal(BaseModel):
    """Around `mean`, `sd` apart; a draw below 0 counts as 0."""

    model_config = _STRICT
    dist: Literal["normal"]
    mean: DelayMs
    sd: DelayMs


class LogNormal(BaseModel):
    """Skewed right, as measured latencies are: half the draws below `median`, 95 % below `p95`."""

    model_config = _STRICT
    dist: Literal["lognormal"]
    median: Annotated[DelayMs, Field(gt=0)]
    p95: DelayMs

    @model_validator(mode="after")
    def _check_tail(self) -> Self:
        if self.p95 <= self.median:
            raise ValueError(
                f"p95 ({self.p95:g} ms) must be more than the median ({self.median:g} ms): 95 % of draws fall "
                "below p95, half below the median; for a delay that never varies use {dist: fixed, ms}"
            )
        return self

    @property
    def mu(self) -> float:
        return math.log(self.median)

    @property
    def sigma(self) -> float:
        return (math.log(self.p95) - math.log(self.median)) / P95_Z


_DISTRIBUTIONS: dict[str, type[BaseModel]] = {
    "fixed": Fixed,
    "uniform": Uniform,
    "normal": Normal,
    "lognormal": LogNormal,
}
DISTRIBUTIONS = tuple(_DISTRIBUTIONS)


def _known_dist(value: object) -> object:
    """A distribution must name a known `dist` first, so that the message is about that, not about
    every other field of every distribution."""
    if isinstance(value, Mapping):
        dist = value.get("dist")
        if not isinstance(dist, str) or dist not in _DISTRIBUTIONS:
            given = "no dist" if dist is None else f"unknown dist {dist!r}"
            raise ValueError(
                f"{given}; known: {', '.join(DISTRIBUTIONS)} (e.g. {{dist: lognormal, median: 800, p95: 2000}})"
            )
    return value


Distribution = Annotated[
    Fixed | Uniform | Normal | LogNormal,
    Field(discriminator="dist"),
    BeforeValidator(_known_dist),
]
"""A distribution of milliseconds."""


class Latency(BaseModel):
    """The time to first token (`ttft_ms`) and between tokens: `itl_ms` between chunks, or
    `tokens_per_s`, a chunk then taking as long as its tokens do at that rate."""

    model_config = _STRICT

    ttft_ms: Distribution | None = None
    itl_ms: Distribution | None = None
    tokens_per_s: Annotated[float, Field(gt=0, le=MAX_TOKENS_PER_S)] | None = None
    preset: str | None = None
    """The preset's name, when the latency is one (for the README and the journal to name it)."""

    @model_validator(mode="after")
    def _check_one_rate(self) -> Self:
        if self.itl_ms is not None and self.tokens_per_s is not None:
            raise ValueError("itl_ms and tokens_per_s both say how long each token takes; keep one of them")
        return self


def _lognormal(median: float, p95: float) -> LogNormal:
    return LogNormal(dist="lognormal", median=median, p95=p95)


PRESETS: dict[str, Latency] = {
    # The figures and where they come from: README, "Latency".
    "fast": Latency(ttft_ms=_lognormal(645, 1094), tokens_per_s=105, preset="fast"),
    "typical": Latency(ttft_ms=_lognormal(1000, 1700), tokens_per_s=45, preset="typical"),
    "overloaded": Latency(ttft_ms=_lognormal(2735, 10852), tokens_per_s=26, preset="overloaded"),
}


def preset(name: str) -> Latency:
    """The preset `name`; raises ValueError naming the presets when there is none by that name."""
    found = PRESETS.get(name)
    if found is None:
        raise ValueError(f"unknown latency preset {name!r}; known: {', '.join(PRESETS)}")
    return found


def _preset_by_name(value: object) -> object:
    if isinstance(value, str):
        return preset(value)
    if isinstance(value, Mapping) and "preset" in value:
        raise ValueError("name a preset on its own (latency: typical), or give ttft_ms, itl_ms or tokens_per_s")
    if not isinstance(value, Mapping | Latency):
        raise ValueError(
            f"{value!r} is not a latency; give a preset ({', '.join(PRESETS)}) or a mapping of ttft_ms, itl_ms "
            "or tokens_per_s"
        )
    return value


LatencyField = Annotated[Latency, BeforeValidator(_preset_by_name)]
"""What a scenario's `latency:` may be: a preset's name, or a mapping of ttft_ms, itl_ms, tokens_per_s."""
