"""Calls: a client's first request and the retries and reconnects that repeat it.

A request joins the call whose last attempt it repeats, when it arrives after that attempt ended
and no later than the wait the server asked for (`Retry-After`, or the `retry:` in effect) plus the
scenario's `grace_ms`. It repeats the attempt when it has the same method, path, query and body
(headers do not matter: a new token or a `Last-Event-ID` changes nothing), or the same method and
path and a `Last-Event-ID` that the attempt sent. Any other request starts a call of its own.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from mock_server.journal.journal import RequestRecord
from mock_server.scenarios.steps import Ending
from mock_server.wire.frames import event_number
from mock_server.wire.outcome import Outcome

EARLY_S = 0.05
"""How much sooner than it was asked a client may come back: timer and clock granularity."""
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
        retry: int | None = None
        for attempt, repeat in itertools.pairwise(self.attempts):
            ended = attempt.ended_at
            assert ended is not None, "an attempt that was repeated has ended"
            retry = _retry_after(attempt, retry)
            yield Retry(attempt, repeat, repeat.received_at - ended, retry)

    def retry_ms(self, index: int) -> int | None:
        """The reconnection time (`retry:`) in effect after attempt `index`."""
        return _retry_in_effect(self.attempts[: index + 1])

    @property
    def window_end(self) -> float | None:
        """The latest moment a repeat of the last attempt still belongs to this call (None while that
        attempt is in flight)."""
        return _window_end(self.last, _retry_in_effect(self.attempts))


def _retry_after(attempt: RequestRecord, before: int | None) -> int | None:
    """The `retry:` in effect after `attempt`, given the one in effect before it: EventSource keeps
    it from one connection to the next."""
    return attempt.retry_ms if attempt.retry_ms is not None else before


def _retry_in_effect(attempts: Sequence[RequestRecord]) -> int | None:
    """The latest `retry:` the attempts set."""
    return next((a.retry_ms for a in reversed(attempts) if a.retry_ms is not None), None)


def _window_end(last: RequestRecord, retry: int | None) -> float | None:
    """When the last attempt ended, plus the wait the server asked for (`Retry-After`, else the
    `retry:` in effect) and the scenario's grace."""
    if last.ended_at is None:
        return None
    asked = retry_after_s(last)
    if asked is None:
        asked = retry / 1000 if retry is not None else 0.0
    return last.ended_at + asked + last.thresholds.grace_ms / 1000


@dataclass(slots=True)
class _Forming:
    """A call while records are grouped: its attempts so far, the `retry:` in effect after the last,
    and a version that changes with the last attempt (so that stale index entries can be told)."""

    attempts: list[RequestRecord]
    retry_ms: int | None = None
    version: int = 0

    def take(self, record: RequestRecord) -> None:
        self.attempts.append(record)
        self.retry_ms = _retry_after(record, self.retry_ms)
        self.version += 1

    def window(self) -> tuple[float, float] | None:
        """When a repeat of the last attempt may arrive (module docstring); None while it is in flight."""
        last = self.attempts[-1]
        end = _window_end(last, self.retry_ms)
        if last.ended_at is None or end is None:
            return None
        return last.ended_at - OVERLAP_S, end


class _Candidates:
    """The calls a record may join, of one request (or, for resumes, one endpoint), newest first.

    A call waits here until its window opens, and is dropped once its window has closed for every
    record still to come. As a journal's records arrive in the order of their ids, each call is then
    looked at a few times, not once per later record: grouping a full journal takes linear time."""

    def __init__(self) -> None:
        self._waiting: list[tuple[float, int, int]] = []  # (opens, call, version), earliest first
        self._open: list[tuple[int, int]] = []  # (-call, version), newest first

    def add(self, index: int, call: _Forming) -> None:
        window = call.window()
        if window is not None:
            heapq.heappush(self._waiting, (window[0], index, call.version))

    def newest_repeated(self, record: RequestRecord, calls: list[_Forming], horizon: float) -> int | None:
        """The newest call whose last attempt `record` repeats; `horizon` is the earliest arrival of this
        and every later record."""
        arrival = record.received_at
        while self._waiting and self._waiting[0][0] <= arrival:
            _, index, version = heapq.heappop(self._waiting)
            heapq.heappush(self._open, (-index, version))
        kept: list[tuple[int, int]] = []
        found = None
        while self._open and found is None:
            entry = heapq.heappop(self._open)
            call = calls[-entry[0]]
            window = call.window()
            if entry[1] != call.version or window is None or window[1] < horizon:
                continue  # it took another attempt since, or no record to come can join it
            kept.append(entry)
            opens, closes = window
            if opens <= arrival <= closes and _repeats(record, call.attempts[-1]):
                found = -entry[0]
        for entry in kept:
            heapq.heappush(self._open, entry)
        return found


def group_calls(records: Sequence[RequestRecord]) -> list[Call]:
    """The records grouped into calls (module docstring), in the order their first attempts arrived."""
    ordered = sorted(records, key=lambda r: r.id)
    horizons = list(itertools.accumulate(reversed([r.received_at for r in ordered]), min))[::-1]
    calls: list[_Forming] = []
    # Only a call whose last attempt is the same request (or, for a resume, on the same endpoint) can
    # take a record; indexing them keeps a full journal quick to judge.
    by_request: dict[tuple[object, ...], _Candidates] = defaultdict(_Candidates)
    by_endpoint: dict[tuple[str, str], _Candidates] = defaultdict(_Candidates)
    for record, horizon in zip(ordered, horizons, strict=True):
        key, endpoint = _request_key(record), (record.method, record.path)
        # A resume may join any call on its endpoint (those of the same request among them).
        candidates = by_endpoint[endpoint] if record.last_event_id is not None else by_request[key]
        index = candidates.newest_repeated(record, calls, horizon)
        if index is None:
            index = len(calls)
            calls.append(_Forming([]))
        calls[index].take(record)
        by_request[key].add(index, calls[index])
        by_endpoint[endpoint].add(index, calls[index])
    return [Call(tuple(call.attempts)) for call in calls]


def _request_key(record: RequestRecord) -> tuple[object, ...]:
    """Equal for two records exactly when `same_request` says so."""
    return (record.method, record.path, frozenset(record.query.items()), _hashable(record.body))


def _hashable(value: object) -> object:
    """A JSON value as a hashable one that compares as the value does ({"n": 1} == {"n": 1.0})."""
    if isinstance(value, dict):
        return frozenset((key, _hashable(item)) for key, item in value.items())
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    return value


def _repeats(record: RequestRecord, last: RequestRecord) -> bool:
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
    """Whether a stream ended before its end marker by the server's doing: dropped, reset, a clean end
    without the marker, or a `close` event the client got (whether it then hung up or not)."""
    if record.status != 200 or record.ending is None:
        return False
    if record.outcome in (Outcome.DROPPED, Outcome.RESET):
        return True
    if record.ending is Ending.CLOSE:
        closed = record.close_at_ms is not None and (record.duration_ms or 0.0) >= record.close_at_ms
        return record.outcome is Outcome.COMPLETED or (record.outcome is Outcome.CLIENT_DISCONNECTED and closed)
    return record.outcome is Outcome.COMPLETED and record.ending is Ending.NO_DONE
