"""What a provider says about its rate limits: the headers that count a request's quotas down, and
the 429 of a request over one. The numbers come from the server's meters (http/quotas.py); each
dialect names the family of headers it sends (`Dialect.quota_headers`) and words its 429
(`Dialect.quota_refusal`) with its own error body."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from mock_server.scenarios import steps

Headers = tuple[tuple[str, str], ...]
Unit = Literal["requests", "tokens"]
ErrorBody = Callable[[int, steps.ErrorEvent | None], dict[str, Any]]

MINUTE_S = 60.0
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Quota:
    """One limit as a response reports it, after the request was counted."""

    limit: int
    remaining: int
    reset_s: float
    """How long until the limit is whole again (all of it replenished)."""


@dataclass(frozen=True, slots=True)
class Quotas:
    """The quotas a request counted against: for each unit, the one with the least left (None: no
    limit on that unit)."""

    requests: Quota | None
    tokens: Quota | None
    now: float
    """The wall clock when the request was counted, for providers that give absolute resets."""


@dataclass(frozen=True, slots=True)
class QuotaExceeded:
    """A request refused because a limit has nothing left: which one, and when to come back."""

    unit: Unit
    period_s: float
    """The limit's window: a minute (rpm, tpm) or a day (rpd)."""
    limit: int
    used: int
    retry_after_s: float
    """How long until every limit the request counts against lets one more through."""
    source: str
    """Where the limit is set (`--rpm`, the scenario's `limits.tpm`), for the message."""
    model: str
    quotas: Quotas

    @property
    def per(self) -> Literal["minute", "day"]:
        return "day" if self.period_s >= DAY_S else "minute"

    @property
    def abbreviation(self) -> str:
        """RPM, TPM, RPD."""
        return f"{self.unit[0]}p{self.per[0]}".upper()


def no_quota_headers(quotas: Quotas) -> Headers:
    """No rate-limit headers (Gemini and Ollama report none)."""
    return ()


def go_duration(seconds: float) -> str:
    """A duration as Go's `time.Duration.String()` writes it, in whole milliseconds rounded up
    (`12ms`, `1s`, `6m0s`, `1h0m0s`): how OpenAI writes its `x-ratelimit-reset-*`."""
    ms = max(0, math.ceil(seconds * 1000 - 1e-6))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def rfc3339(at: float) -> str:
    """A moment as an RFC 3339 UTC time in whole seconds, rounded up (`2025-08-21T12:40:59Z`)."""
    return datetime.fromtimestamp(math.ceil(at - 1e-6), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def retry_after(seconds: float) -> Headers:
    """`Retry-After` in whole seconds, rounded up so that a client that waits it is let through."""
    return (("retry-after", str(max(1, math.ceil(seconds - 1e-6)))),)


def retry_after_ms(seconds: float) -> Headers:
    """`retry-after-ms` (which the openai SDK reads first) and `retry-after`."""
    return (("retry-after-ms", str(max(1, math.ceil(seconds * 1000 - 1e-6)))), *retry_after(seconds))


def openai_quota_headers(quotas: Quotas) -> Headers:
    """`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the resets as Go durations (OpenAI, Azure)."""
    headers: list[tuple[str, str]] = []
    for unit, quota in (("requests", quotas.requests), ("tokens", quotas.tokens)):
        if quota is not None:
            headers += [
                (f"x-ratelimit-limit-{unit}", str(quota.limit)),
                (f"x-ratelimit-remaining-{unit}", str(quota.remaining)),
                (f"x-ratelimit-reset-{unit}", go_duration(quota.reset_s)),
            ]
    return tuple(headers)


def anthropic_quota_headers(quotas: Quotas) -> Headers:
    """`anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, the resets as RFC 3339 times."""
    headers: list[tuple[str, str]] = []
    for unit, quota in (("requests", quotas.requests), ("tokens", quotas.tokens)):
        if quota is not None:
            headers += [
                (f"anthropic-ratelimit-{unit}-limit", str(quota.limit)),
                (f"anthropic-ratelimit-{unit}-remaining", str(quota.remaining)),
                (f"anthropic-ratelimit-{unit}-reset", rfc3339(quotas.now + quota.reset_s)),
            ]
    return tuple(headers)


def plain_quota_refusal(exceeded: QuotaExceeded, error_body: ErrorBody) -> tuple[dict[str, Any], Headers]:
    """The error body for 429 with a message saying which limit and when, and `Retry-After` (Ollama,
    which has no limits of its own: the shape a server in front of it answers in)."""
    message = (
        f"rate limit exceeded: {exceeded.limit} {exceeded.unit} per {exceeded.per} ({exceeded.source}); "
        f"retry in {go_duration(exceeded.retry_after_s)}"
    )
    return error_body(429, steps.ErrorEvent(message)), retry_after(exceeded.retry_after_s)
