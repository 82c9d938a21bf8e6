"""The rules: each looks at one call (its attempts, what the server told the client, and when) and
reports the findings it sees, or a check it cannot decide until a moment has passed; `judge` runs
them, and those that look across calls (`across.py`)."""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from mock_server.journal.journal import RequestRecord
from mock_server.journal.verdict.across import ACROSS_CALLS
from mock_server.journal.verdict.calls import EARLY_S, Call, Retry, group_calls, retry_after_s, was_cut
from mock_server.journal.verdict.findings import FINDING_KINDS, Finding, Pending, Verdict
from mock_server.scenarios.steps import Ending
from mock_server.wire.frames import event_number
from mock_server.wire.outcome import Outcome

NON_RETRYABLE = frozenset({400, 401, 403, 404, 422})
BACKOFF_GROWTH = 1.25
"""Retries back off when the last delay is at least this many times the first (plus BACKOFF_SLACK_S):
low enough for exponential backoff with jitter (each step at least x1.5), high enough that the
noise of a steady pace does not pass for it."""
BACKOFF_SLACK_S = 0.1
SERVER_ENDINGS = (Outcome.COMPLETED, Outcome.DROPPED, Outcome.RESET)


@dataclass(frozen=True, slots=True)
class _Scene:
    """Everything a rule may look at besides its call: every record judged, and the moment of judging."""

    records: Sequence[RequestRecord]
    now: float
    _later: dict[tuple[str, str], tuple[list[int], list[float]]] = field(default_factory=dict)
    """For each endpoint: its records' ids in order, and the earliest arrival from each on."""

    @classmethod
    def of(cls, records: Sequence[RequestRecord], now: float) -> _Scene:
        by_endpoint: dict[tuple[str, str], list[RequestRecord]] = defaultdict(list)
        for record in sorted(records, key=lambda r: r.id):
            by_endpoint[(record.method, record.path)].append(record)
        later = {
            endpoint: (
                [r.id for r in these],
                list(itertools.accumulate(reversed([r.received_at for r in these]), min))[::-1],
            )
            for endpoint, these in by_endpoint.items()
        }
        return cls(records, now, later)

    def next_arrival(self, record: RequestRecord) -> float | None:
        """The earliest arrival of a later request (a higher id) to the endpoint `record` went to."""
        ids, earliest = self._later.get((record.method, record.path), ([], []))
        position = bisect.bisect_right(ids, record.id)
        return earliest[position] if position < len(ids) else None


Result = Finding | Pending
Rule = Callable[[Call, _Scene], Iterator[Result]]


def judge(records: Sequence[RequestRecord], now: float) -> Verdict:
    """The verdict on `records` (journal snapshots) as of `now` (Unix time): findings in the order of
    the calls they concern, then of the kinds in FINDING_KINDS."""
    calls = group_calls(records)
    scene = _Scene.of(records, now)
    results: list[Result] = [result for call in calls for rule in RULES for result in rule(call, scene)]
    results += [finding for across in ACROSS_CALLS for finding in across(calls)]
    order = list(FINDING_KINDS)
    findings = sorted((r for r in results if isinstance(r, Finding)), key=lambda f: (f.records[0], order.index(f.code)))
    return Verdict(
        judged_at=now,
        findings=tuple(findings),
        pending=tuple(r for r in results if isinstance(r, Pending)),
        calls=tuple(call.ids for call in calls),
        records=tuple(records),
        judged=len(records),
    )


def _on_retries(code: str, when: Callable[[Retry], bool], describe: Callable[[Retry], str]) -> Rule:
    """A rule that finds the retries of a call for which `when` holds: one finding for them all,
    its detail the first one's `describe`."""

    def rule(call: Call, scene: _Scene) -> Iterator[Result]:
        found = [retry for retry in call.retries() if when(retry)]
        if found:
            more = f"; {len(found) - 1} more time(s) in this call" if len(found) > 1 else ""
            records = [record for retry in found for record in (retry.attempt, retry.repeat)]
            yield Finding.of(code, f"{describe(found[0])}{more}.", records)

    return rule


def _sooner_than_retry_after(retry: Retry) -> bool:
    wait = retry_after_s(retry.attempt)
    return wait is not None and retry.gap_s < wait - EARLY_S


def _sooner_than_retry_field(retry: Retry) -> bool:
    # Only reconnects after the server ended the stream: a client that hung up chose to ask again.
    ended_by_server = retry.attempt.status == 200 and retry.attempt.outcome in SERVER_ENDINGS
    return ended_by_server and retry.retry_ms is not None and retry.gap_s < retry.retry_ms / 1000 - EARLY_S


def _after_complete_stream(retry: Retry) -> bool:
    attempt = retry.attempt
    return attempt.status == 200 and attempt.outcome is Outcome.COMPLETED and attempt.ending is Ending.DONE


def _answer(record: RequestRecord) -> str:
    return "204 No Content: nothing was left" if record.status == 204 else str(record.status)


def _last_id_known(attempt: RequestRecord) -> int | None:
    """The last event id the client of `attempt` can have: the last one sent, else the one it resumed from."""
    return attempt.last_id_sent if attempt.last_id_sent is not None else event_number(attempt.last_event_id)


def _restarted_after_cut(retry: Retry) -> bool:
    attempt = retry.attempt
    return (
        was_cut(attempt) and attempt.ids and _last_id_known(attempt) is not None and retry.repeat.last_event_id is None
    )


_retry_after_ignored = _on_retries(
    "retry_after_ignored",
    _sooner_than_retry_after,
    lambda r: (
        f"#{r.repeat.id} came {r.gap_s:.2f} s after #{r.attempt.id} was answered {r.attempt.status} "
        f"with Retry-After: {r.attempt.retry_after}"
    ),
)
_retried_non_retryable = _on_retries(
    "retried_non_retryable",
    lambda r: r.attempt.status in NON_RETRYABLE,
    lambda r: f"#{r.attempt.id} was answered {r.attempt.status}, and #{r.repeat.id} asked the same again",
)
_reconnect_after_done = _on_retries(
    "reconnect_after_done",
    _after_complete_stream,
    lambda r: (
        f"#{r.attempt.id}'s stream ended with its end marker, yet #{r.repeat.id} asked for it again "
        f"{r.gap_s:.2f} s later (answered {_answer(r.repeat)})"
    ),
)
_ignored_204 = _on_retries(
    "ignored_204",
    lambda r: r.attempt.status == 204,
    lambda r: f"#{r.attempt.id} was answered 204 No Content, yet #{r.repeat.id} asked again",
)
_resume_without_last_event_id = _on_retries(
    "resume_without_last_event_id",
    _restarted_after_cut,
    lambda r: (
        f"#{r.attempt.id} was cut after the event with id {_last_id_known(r.attempt)}, and #{r.repeat.id} "
        "asked again without Last-Event-ID: the answer started over"
    ),
)
_retry_field_ignored = _on_retries(
    "retry_field_ignored",
    _sooner_than_retry_field,
    lambda r: (
        f"#{r.repeat.id} came {r.gap_s:.2f} s after #{r.attempt.id} ended, though the stream set retry: {r.retry_ms}"
    ),
)


def _retry_storm(call: Call, scene: _Scene) -> Iterator[Result]:
    # A resume that gets further than the attempt before it is progress, not a storm.
    counted = [call.attempts[0]] + [
        retry.repeat
        for retry in call.retries()
        if (event_number(retry.repeat.last_event_id) or 0) <= (event_number(retry.attempt.last_event_id) or 0)
    ]
    limit = call.attempts[0].thresholds.max_attempts
    if len(counted) > limit:
        detail = (
            f"One call took {len(counted)} attempts (#{call.attempts[0].id} to #{call.last.id}); "
            f"the scenario allows {limit} (thresholds.max_attempts)."
        )
        yield Finding.of("retry_storm", detail, call.attempts)


def _no_backoff(call: Call, scene: _Scene) -> Iterator[Result]:
    # Runs of retries after retryable HTTP errors whose delay the client chose (the server named none);
    # retrying the others at all is retried_non_retryable.
    runs: list[list[float]] = [[]]
    for retry in call.retries():
        status = retry.attempt.status
        retryable = status is not None and status >= 400 and status not in NON_RETRYABLE
        chosen = retry_after_s(retry.attempt) is None and retry.retry_ms is None and retry.repeat.last_event_id is None
        if retryable and chosen:
            runs[-1].append(retry.gap_s)
        elif runs[-1]:
            runs.append([])
    for gaps in runs:
        if len(gaps) >= 2 and gaps[-1] < gaps[0] * BACKOFF_GROWTH + BACKOFF_SLACK_S:
            shown = ", ".join(f"{gap:.2f} s" for gap in gaps)
            detail = f"The client retried after HTTP errors {len(gaps)} times, {shown} apart: the delay never grew."
            yield Finding.of("no_backoff", detail, call.attempts)
            return


def _cut_stream_not_retried(call: Call, scene: _Scene) -> Iterator[Result]:
    attempt = call.last
    ended = attempt.ended_at
    deadline = call.window_end
    if not was_cut(attempt) or ended is None or deadline is None:
        return
    next_arrival = scene.next_arrival(attempt)
    if next_arrival is not None and next_arrival <= deadline:
        return  # followed by a request to the same endpoint
    if scene.now < deadline:
        yield Pending("cut_stream_not_retried", (attempt.id,), deadline)
        return
    how = {
        Outcome.DROPPED: "the connection closed without the end of the body",
        Outcome.RESET: "the connection was reset",
    }.get(attempt.outcome or Outcome.COMPLETED, "it ended cleanly without its end marker")
    if attempt.ending is Ending.CLOSE:
        how = "the server sent a `close` event"
    detail = (
        f"#{attempt.id}'s stream was cut after {attempt.events_sent} event(s) ({how}), and no request to "
        f"{attempt.method} {attempt.path} followed within {deadline - ended:.1f} s."
    )
    yield Finding.of("cut_stream_not_retried", detail, [attempt])


def _no_read_timeout(call: Call, scene: _Scene) -> Iterator[Result]:
    for attempt in call.attempts:
        if attempt.stall_at_ms is None:
            continue
        start = attempt.received_at + attempt.stall_at_ms / 1000
        patience = attempt.thresholds.patience_ms / 1000
        silence = float("inf") if attempt.stall_ms is None else attempt.stall_ms / 1000
        if silence <= patience:
            continue  # a client may wait this stall out
        present = attempt.ended_at if attempt.ended_at is not None else scene.now
        waited = min(present, start + silence) - start
        if waited > patience:
            still = ", and is still waiting" if attempt.ended_at is None else ""
            detail = (
                f"#{attempt.id}'s stream fell silent {attempt.stall_at_ms / 1000:.1f} s in; the client waited "
                f"{waited:.1f} s{still} (thresholds.patience_ms: {attempt.thresholds.patience_ms:g})."
            )
            yield Finding.of("no_read_timeout", detail, [attempt])
        elif attempt.ended_at is None:
            yield Pending("no_read_timeout", (attempt.id,), start + patience)


def _close_event_ignored(call: Call, scene: _Scene) -> Iterator[Result]:
    for attempt in call.attempts:
        if attempt.close_at_ms is None or attempt.ending is not Ending.CLOSE:
            continue
        closed_at = attempt.received_at + attempt.close_at_ms / 1000
        grace = attempt.thresholds.close_grace_ms / 1000
        present = attempt.ended_at if attempt.ended_at is not None else scene.now
        if present - closed_at > grace:
            still = ", and still does" if attempt.ended_at is None else ""
            detail = (
                f"#{attempt.id} sent a close event {attempt.close_at_ms / 1000:.1f} s in; the client kept the "
                f"connection open {present - closed_at:.1f} s after it{still} "
                f"(thresholds.close_grace_ms: {attempt.thresholds.close_grace_ms:g})."
            )
            yield Finding.of("close_event_ignored", detail, [attempt])
        elif attempt.ended_at is None:
            yield Pending("close_event_ignored", (attempt.id,), closed_at + grace)


RULES: tuple[Rule, ...] = (
    _retry_after_ignored,
    _retried_non_retryable,
    _retry_storm,
    _no_backoff,
    _cut_stream_not_retried,
    _reconnect_after_done,
    _ignored_204,
    _resume_without_last_event_id,
    _retry_field_ignored,
    _no_read_timeout,
    _close_event_ignored,
)
