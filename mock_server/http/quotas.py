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
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mock_server.dialects.quota import DAY_S, MINUTE_S, Quota, QuotaExceeded, Quotas, Unit

MAX_BUCKETS = 100_000
"""How many buckets (client, scenario, limit) are kept; past it the least recently used is forgotten
(full again on its next request), so that clients sending a new key each time cannot grow the server's
memory without bound."""
_EPSILON = 1e-9


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


class _Bucket:
    __slots__ = ("at", "level")

    def __init__(self, level: float, at: float) -> None:
        self.level = level
        self.at = at


class _Meter:
    """A limit's bucket for one client, brought up to date."""

    __slots__ = ("bucket", "limit")

    def __init__(self, limit: Limit, bucket: _Bucket) -> None:
        self.limit = limit
        self.bucket = bucket

    def refill(self, now: float) -> None:
        bucket, limit = self.bucket, self.limit
        elapsed = max(0.0, now - bucket.at)
        bucket.level = min(float(limit.limit), bucket.level + elapsed * limit.limit / limit.period_s)
        bucket.at = max(bucket.at, now)

    def wait_s(self) -> float:
        """How long until the bucket holds one unit (0: it does)."""
        short = 1.0 - self.bucket.level
        return 0.0 if short <= _EPSILON else short * self.limit.period_s / self.limit.limit

    def quota(self) -> Quota:
        limit, level = self.limit, self.bucket.level
        reset_s = max(0.0, (limit.limit - level) * limit.period_s / limit.limit)
        return Quota(limit.limit, max(0, math.floor(level + _EPSILON)), reset_s)


class Admission:
    """A request let through: its tokens are taken when its answer is known (`count_tokens`)."""

    def __init__(self, meters: list[_Meter], clock: Callable[[], float]) -> None:
        self._meters = meters
        self._clock = clock

    def count_tokens(self, tokens: int) -> Quotas:
        """Take `tokens` from each tokens bucket; returns the quotas the response reports."""
        now = self._clock()
        for meter in self._meters:
            meter.refill(now)
            if meter.limit.unit == "tokens":
                meter.bucket.level -= tokens
        return _quotas(self._meters, now)


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
    """The buckets of every client, for the server's limits and each scenario's."""

    def __init__(self, server: tuple[Limit, ...], clock: Callable[[], float], max_buckets: int = MAX_BUCKETS) -> None:
        self.server = server
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str | None, Limit], _Bucket] = OrderedDict()
        self.max_buckets = max_buckets

    def admit(self, client: str, scenario: str, limits: tuple[Limit, ...], model: str) -> Admission | None:
        """Let a request of `client` to `scenario` (whose own `limits` count per client and scenario)
        through, taking one request from each requests bucket; None when no limit applies. Raises
        OverQuotaError, taking nothing, when a bucket has less than one unit left."""
        if not self.server and not limits:
            return None
        now = self._clock()
        meters = [self._meter(client, None, limit) for limit in self.server]
        meters += [self._meter(client, scenario, limit) for limit in limits]
        for meter in meters:
            meter.refill(now)
        waits = [(meter.wait_s(), index) for index, meter in enumerate(meters)]
        wait, index = max(waits, key=lambda pair: pair[0])
        blocking = meters[index]
        if wait > 0:
            limit, level = blocking.limit, blocking.bucket.level
            used = limit.limit - math.floor(level + _EPSILON)
            quotas = _quotas(meters, now)
            raise OverQuotaError(
                QuotaExceeded(limit.unit, limit.period_s, limit.limit, used, wait, limit.source, model, quotas),
                scenario,
                server_wide=index < len(self.server),
            )
        for meter in meters:
            if meter.limit.unit == "requests":
                meter.bucket.level -= 1
        return Admission(meters, self._clock)

    def clear(self) -> None:
        """Every bucket full again (`POST /_mock/reset`)."""
        self._buckets.clear()

    def _meter(self, client: str, scenario: str | None, limit: Limit) -> _Meter:
        key = (client, scenario, limit)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(limit.limit), self._clock())
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        return _Meter(limit, bucket)


def client_of(api_key: str | None, address: str | None) -> str:
    """Who a request's quotas are counted for: its API key, else its address."""
    return f"key {api_key}" if api_key else f"address {address or 'unknown'}"
