"""Calls: a client's first request and the retries and reconnects that repeat it.

A request joins the call whose last attempt it repeats, when it arrives after that attempt ended
and no later than the wait the server asked for (`Retry-After`, or the `retry:` in effect) plus the
scenario's `grace_ms`. It repeats the attempt when it has the same method, path, query and body
(headers do not matter: a new token or a `Last-Event-ID` changes nothing), or the same method and
path and a `Last-Event-ID` that the attempt sent. Any other request starts a call of its own.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from mock_server.journal import RequestRecord
from mock_server.ops import Outcome
from mock_server.timeline import Ending

OVERLAP_S = 0.25
"""How much earlier than the server saw an attempt end its repeat may arrive: the client's hang-up
and its next request can reach the server in either order."""


@dataclass(frozen=True, slots=True)
class Retry:
    """An attempt of a call and the one that repeated it, `gap_s` after it ended, with the `retry:`
    in effect between them."""

    attempt: RequestRecord
    repeat: RequestRecord
    gap_s: float
    retry_ms: int | None


@dataclass(frozen=True, slots=True)
class Call:
    """The attempts of one call, oldest first; every attempt but the last has ended."""

    attempts: tuple[RequestRecord, ...]

    @property
    def last(self) -> RequestRecord:
        return self.attempts[-1]

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(attempt.id for attempt in self.attempts)

    def retries(self) -> Iterator[Retry]:
        """Every attempt but the last, with the one that repeated it."""
        for index, (attempt, repeat) in enumerate(itertools.pairwise(self.attempts)):
            ended = attempt.ended_at
            assert ended is not None, "an attempt that was repeated has ended"
            yield Retry(attempt, repeat, repeat.received_at - ended, self.retry_ms(index))

    def retry_ms(self, index: int) -> int | None:
        """The reconnection time (`retry:`) in effect after attempt `index`."""
        return _retry_in_effect(self.attempts[: index + 1])

    @property
    def window_end(self) -> float | None:
        """The latest moment a repeat of the last attempt still belongs to this call (None while that
        attempt is in flight)."""
        return _window_end(self.attempts)


def _retry_in_effect(attempts: Sequence[RequestRecord]) -> int | None:
    """The latest `retry:` the attempts set: EventSource keeps it from one connection to the next."""
    return next((a.retry_ms for a in reversed(attempts) if a.retry_ms is not None), None)


def _window_end(attempts: Sequence[RequestRecord]) -> float | None:
    """When the last attempt ended, plus the wait the server asked for (`Retry-After`, else the
    `retry:` in effect) and the scenario's grace."""
    last = attempts[-1]
    if last.ended_at is None:
        return None
    asked = retry_after_s(last)
    if asked is None:
        retry = _retry_in_effect(attempts)
        asked = retry / 1000 if retry is not None else 0.0
    return last.ended_at + asked + last.thresholds.grace_ms / 1000


def group_calls(records: Sequence[RequestRecord]) -> list[Call]:
    """The records grouped into calls (module docstring), in the order their first attempts arrived."""
    calls: list[list[RequestRecord]] = []
    # Only calls with an attempt of the same request (or, for a resume, on the same endpoint) can take
    # a record; indexing them keeps a full journal quick to judge.
    by_request: dict[tuple[object, ...], list[int]] = {}
    by_endpoint: dict[tuple[str, str], list[int]] = {}
    for record in sorted(records, key=lambda r: r.id):
        candidates = set(by_request.get(_request_key(record), ()))
        if record.last_event_id is not None:
            candidates.update(by_endpoint.get((record.method, record.path), ()))
        index = next((i for i in sorted(candidates, reverse=True) if _repeats(record, calls[i])), None)
        if index is None:
            index = len(calls)
            calls.append([])
            by_endpoint.setdefault((record.method, record.path), []).append(index)
        calls[index].append(record)
        known = by_request.setdefault(_request_key(record), [])
        if index not in known:
            known.append(index)
    return [Call(tuple(attempts)) for attempts in calls]


def _request_key(record: RequestRecord) -> tuple[object, ...]:
    body = json.dumps(record.body, sort_keys=True, default=str)
    return (record.method, record.path, tuple(sorted(record.query.items())), body)


def _repeats(record: RequestRecord, attempts: Sequence[RequestRecord]) -> bool:
    last, window_end = attempts[-1], _window_end(attempts)
    if last.ended_at is None or window_end is None:
        return False
    if not last.ended_at - OVERLAP_S <= record.received_at <= window_end:
        return False
    return same_request(record, last) or _resumes(record, last)


def same_request(a: RequestRecord, b: RequestRecord) -> bool:
    """Whether two records asked for the same thing (headers aside)."""
    return (a.method, a.path, a.query, a.body) == (b.method, b.path, b.query, b.body)


def _resumes(record: RequestRecord, attempt: RequestRecord) -> bool:
    """Whether `record` asks to resume `attempt`'s stream after an id that stream sent."""
    resumed_after = event_number(record.last_event_id)
    return (
        (record.method, record.path) == (attempt.method, attempt.path)
        and resumed_after is not None
        and attempt.last_id_sent is not None
        and 1 <= resumed_after <= attempt.last_id_sent
    )


def event_number(last_event_id: str | None) -> int | None:
    """A `Last-Event-ID` as the number of one of our events, else None."""
    if last_event_id is None or not last_event_id.strip().isdigit():
        return None
    return int(last_event_id)


def retry_after_s(record: RequestRecord) -> float | None:
    """The wait an HTTP error's `Retry-After` asked for, in seconds (delay-seconds or an HTTP date)."""
    value = (record.retry_after or "").strip()
    if record.status is None or record.status < 400 or not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, moment - (record.ended_at or record.received_at))


def was_cut(record: RequestRecord) -> bool:
    """Whether a stream ended before its end marker by the server's doing: dropped, reset, or a clean
    end without the marker."""
    if record.status != 200 or record.ending is None:
        return False
    return record.outcome in (Outcome.DROPPED, Outcome.RESET) or (
        record.outcome is Outcome.COMPLETED and record.ending is Ending.NO_DONE
    )
