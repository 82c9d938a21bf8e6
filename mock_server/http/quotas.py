"""Rate limits: requests and tokens per minute, requests per day, counted per client (the API key a
request carries, else its address), server-wide (`--rpm`, `--tpm`, `--rpd`) and per scenario
(`limits:`, counted per client and scenario). A request must pass both.

Each limit is a token bucket, as providers describe theirs ("continuously replenished"; OpenAI's
`x-ratelimit-reset-requests: 12ms` at 5,000 per minute is the time one request takes to come back):
a bucket holds up to `limit` units, refills at `limit` per window, and a request passes while every
bucket it counts against holds at least one unit. `remaining` is what a bucket holds, `reset` the time
until it is full again, `Retry-After` the time until every bucket lets one more request through.
A request takes one unit of each requests bucket when it is let through, and its tokens (the whole
answer's usage, known once its timeline is compiled) from each tokens bucket when it is answered:
they may take a tokens bucket below zero, as providers take the output they could only estimate
when a request began, and the next request waits until it has refilled to one. A refused request
takes nothing (providers do not count them) and moves nothing on: no reply of a sequence, no `times`.

Time is `Settings.wall_clock`, so a test can move it instead of sleeping; a clock that steps back
refills nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mock_server.counters import Counters, Plan, counter_key
from mock_server.dialects.quota import DAY_S, MINUTE_S, Quota, QuotaExceeded, Quotas, Unit

_EPSILON = 1e-9
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Limit:
    """One rate limit: `limit` units of `unit` per `period_s`, set by `source` (for messages)."""

    unit: Unit
    period_s: float
    limit: int
    source: str


def limits_of(rpm: int | None, tpm: int | None, rpd: int | None, source: Callable[[str], str]) -> tuple[Limit, ...]:
    """The limits the numbers given set; `source(name)` says where each is set (`--rpm`)."""
    given: tuple[tuple[str, Unit, float, int | None], ...] = (
        ("rpm", "requests", MINUTE_S, rpm),
        ("tpm", "tokens", MINUTE_S, tpm),
        ("rpd", "requests", DAY_S, rpd),
    )
    return tuple(Limit(unit, period, value, source(name)) for name, unit, period, value in given if value is not None)


class OverQuotaError(Exception):
    """A request over a rate limit: answered with its dialect's 429."""

    def __init__(self, exceeded: QuotaExceeded, scenario: str, *, server_wide: bool = True) -> None:
        super().__init__(f"over the {exceeded.source} limit of {exceeded.limit} {exceeded.unit} per {exceeded.per}")
        self.exceeded = exceeded
        self.scenario = scenario
        """The scenario the request selected."""
        self.server_wide = server_wide
        """Whether the limit is the server's (every scenario's requests count), not the scenario's own."""


class _Meter:
    """A limit's bucket for one client, brought up to date: `level` units it holds at Unix time `at`."""

    __slots__ = ("at", "level", "limit")

    def __init__(self, limit: Limit, stored: list[float] | None, now: float) -> None:
        self.limit = limit
        self.level, self.at = (float(limit.limit), now) if stored is None else (stored[0], stored[1])

    def refill(self, now: float) -> None:
        limit = self.limit
        elapsed = max(0.0, now - self.at)
        self.level = min(float(limit.limit), self.level + elapsed * limit.limit / limit.period_s)
        self.at = max(self.at, now)

    def stored(self) -> list[float]:
        """The bucket as the counters keep it."""
        return [self.level, self.at]

    def wait_s(self) -> float:
        """How long until the bucket holds one unit (0: it does)."""
        short = 1.0 - self.level
        return 0.0 if short <= _EPSILON else short * self.limit.period_s / self.limit.limit

    def quota(self) -> Quota:
        limit, level = self.limit, self.level
        reset_s = max(0.0, (limit.limit - level) * limit.period_s / limit.limit)
        return Quota(limit.limit, max(0, math.floor(level + _EPSILON)), reset_s)


def _meters(limits: tuple[Limit, ...], values: list[Any], now: float) -> list[_Meter]:
    meters = [_Meter(limit, value, now) for limit, value in zip(limits, values, strict=True)]
    for meter in meters:
        meter.refill(now)
    return meters


class Admission:
    """A request let through: its tokens are taken when its answer is known (`count_tokens`)."""

    def __init__(self, counters: Counters, keys: tuple[str, ...], limits: tuple[Limit, ...], clock: Clock) -> None:
        self._counters = counters
        self._keys = keys
        self._limits = limits
        self._clock = clock

    async def count_tokens(self, tokens: int) -> Quotas:
        """Take `tokens` from each tokens bucket; returns the quotas the response reports."""
        now = self._clock()

        def change(values: list[Any]) -> tuple[list[Any], Quotas]:
            meters = _meters(self._limits, values, now)
            for meter in meters:
                if meter.limit.unit == "tokens":
                    meter.level -= tokens
            return [meter.stored() for meter in meters], _quotas(meters, now)

        return await self._counters.update(self._keys, change)


def _quotas(meters: Iterable[_Meter], now: float) -> Quotas:
    """For each unit, the quota of the meter with the least left (the soonest to refuse)."""
    tightest: dict[Unit, Quota] = {}
    for meter in meters:
        quota = meter.quota()
        known = tightest.get(meter.limit.unit)
        if known is None or (quota.remaining, -quota.reset_s) < (known.remaining, -known.reset_s):
            tightest[meter.limit.unit] = quota
    return Quotas(tightest.get("requests"), tightest.get("tokens"), now)


class RateLimiter:
    """The buckets of every client, for the server's limits and each scenario's, kept in `counters`
    (this process's, or the state every worker shares)."""

    def __init__(self, server: tuple[Limit, ...], clock: Clock, counters: Counters) -> None:
        self.server = server
        self._clock = clock
        self._counters = counters

    def count(
        self, plan: Plan, client: str, scenario: str, limits: tuple[Limit, ...], model: str
    ) -> Callable[[list[Any]], Admission] | None:
        """Add to `plan` letting a request of `client` to `scenario` (whose own `limits` count per
        client and scenario) through, taking one request from each requests bucket; None when no
        limit applies. Returns what reads the plan's results: the Admission, or it raises
        OverQuotaError when a bucket had less than one unit left (and the plan took nothing)."""
        if not self.server and not limits:
            return None
        now = self._clock()
        every = (*self.server, *limits)
        keys = tuple(
            counter_key("rate", client, None if index < len(self.server) else scenario, _limit_key(limit))
            for index, limit in enumerate(every)
        )

        def change(values: list[Any]) -> tuple[list[Any], OverQuotaError | None]:
            meters = _meters(every, values, now)
            wait, index = max(((meter.wait_s(), index) for index, meter in enumerate(meters)), key=lambda p: p[0])
            if wait > 0:
                limit, level = meters[index].limit, meters[index].level
                used = limit.limit - math.floor(level + _EPSILON)
                exceeded = QuotaExceeded(
                    limit.unit, limit.period_s, limit.limit, used, wait, limit.source, model, _quotas(meters, now)
                )
                return values, OverQuotaError(exceeded, scenario, server_wide=index < len(self.server))
            for meter in meters:
                if meter.limit.unit == "requests":
                    meter.level -= 1
            return [meter.stored() for meter in meters], None

        index = plan.add(keys, change)

        def admitted(results: list[Any]) -> Admission:
            refused = results[index]
            if refused is not None:
                raise refused
            return Admission(self._counters, keys, every, self._clock)

        return admitted


def _limit_key(limit: Limit) -> str:
    return f"{limit.unit}/{limit.period_s}/{limit.limit}"


def client_of(api_key: str | None, address: str | None) -> str:
    """Who a request's quotas are counted for: its API key, else its address."""
    return f"key {api_key}" if api_key else f"address {address or 'unknown'}"
