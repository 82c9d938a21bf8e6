"""The rules: each looks at one call (its attempts, what the server told the client, and when) and
reports the findings it sees, or a check it cannot decide until a moment has passed."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from mock_server.journal import RequestRecord
from mock_server.timeline import Ending
from mock_server.transport import Outcome
from mock_server.verdict.calls import Call, event_number, group_calls, retry_after_s, was_cut
from mock_server.verdict.findings import KINDS, Finding, Pending, Verdict

EARLY_S = 0.05
"""How much sooner than it was asked a client may come back: timer and clock granularity."""
NON_RETRYABLE = frozenset({400, 401, 403, 404, 422})
BACKOFF_GROWTH = 1.2
"""A delay grows when it is at least this many times the one before (plus BACKOFF_SLACK_S)."""
BACKOFF_SLACK_S = 0.02
SERVER_ENDINGS = (Outcome.COMPLETED, Outcome.DROPPED, Outcome.RESET)


@dataclass(frozen=True, slots=True)
class _Scene:
    """Everything a rule may look at besides its call: every record judged, and the moment of judging."""

    records: Sequence[RequestRecord]
    now: float


Result = Finding | Pending
Rule = Callable[[Call, _Scene], Iterator[Result]]


def judge(records: Sequence[RequestRecord], now: float) -> Verdict:
    """The verdict on `records` (journal snapshots) as of `now` (Unix time): findings in the order of
    the calls they concern, then of the kinds in KINDS."""
    calls = group_calls(records)
    scene = _Scene(records, now)
    results = [result for call in calls for rule in RULES for result in rule(call, scene)]
    order = list(KINDS)
    findings = sorted((r for r in results if isinstance(r, Finding)), key=lambda f: (f.records[0], order.index(f.code)))
    return Verdict(
        judged_at=now,
        findings=tuple(findings),
        pending=tuple(r for r in results if isinstance(r, Pending)),
        calls=tuple(call.ids for call in calls),
        records=tuple(records),
        judged=len(records),
    )


def _ids(*records: RequestRecord) -> str:
    return ", ".join(f"#{record.id}" for record in records)


def _also(count: int) -> str:
    return f"; {count} more time(s) in this call" if count else ""


def _retry_after_ignored(call: Call, scene: _Scene) -> Iterator[Result]:
    early = []
    for index, attempt, repeat in call.retries():
        wait = retry_after_s(attempt)
        if wait is not None and call.gap_s(index) < wait - EARLY_S:
            early.append((index, attempt, repeat, wait))
    if early:
        index, attempt, repeat, wait = early[0]
        detail = (
            f"#{repeat.id} came {call.gap_s(index):.2f} s after #{attempt.id} was answered {attempt.status} "
            f"with Retry-After: {attempt.retry_after} ({wait:g} s){_also(len(early) - 1)}."
        )
        yield Finding.of("retry_after_ignored", detail, [r for _, a, b, _ in early for r in (a, b)])


def _retried_non_retryable(call: Call, scene: _Scene) -> Iterator[Result]:
    repeated = [(attempt, repeat) for _, attempt, repeat in call.retries() if attempt.status in NON_RETRYABLE]
    if repeated:
        attempt, repeat = repeated[0]
        more = _also(len(repeated) - 1)
        detail = f"#{attempt.id} was answered {attempt.status}, and #{repeat.id} asked the same again{more}."
        yield Finding.of("retried_non_retryable", detail, [r for pair in repeated for r in pair])


def _retry_storm(call: Call, scene: _Scene) -> Iterator[Result]:
    # A resume that gets further than the attempt before it is progress, not a storm.
    counted = [call.attempts[0]] + [
        repeat
        for _, attempt, repeat in call.retries()
        if (event_number(repeat.last_event_id) or 0) <= (event_number(attempt.last_event_id) or 0)
    ]
    limit = call.attempts[0].thresholds.max_attempts
    if len(counted) > limit:
        detail = (
            f"One call took {len(counted)} attempts ({_ids(call.attempts[0])} to {_ids(call.last)}); "
            f"the scenario allows {limit} (thresholds.max_attempts)."
        )
        yield Finding.of("retry_storm", detail, call.attempts)


def _no_backoff(call: Call, scene: _Scene) -> Iterator[Result]:
    # Runs of retries after retryable HTTP errors whose delay the client chose (the server named none);
    # retrying the others at all is retried_non_retryable.
    runs: list[list[float]] = [[]]
    for index, attempt, repeat in call.retries():
        chosen = retry_after_s(attempt) is None and call.retry_ms(index) is None and repeat.last_event_id is None
        retryable = attempt.status is not None and attempt.status >= 400 and attempt.status not in NON_RETRYABLE
        if retryable and chosen:
            runs[-1].append(call.gap_s(index))
        elif runs[-1]:
            runs.append([])
    for gaps in runs:
        grew = any(later >= earlier * BACKOFF_GROWTH + BACKOFF_SLACK_S for earlier, later in itertools.pairwise(gaps))
        if len(gaps) >= 2 and not grew:
            shown = ", ".join(f"{gap:.2f} s" for gap in gaps)
            detail = f"The client retried after HTTP errors {len(gaps)} times, {shown} apart: the delay never grew."
            yield Finding.of("no_backoff", detail, call.attempts)
            return


def _truncated_stream_accepted(call: Call, scene: _Scene) -> Iterator[Result]:
    attempt = call.last
    ended = attempt.ended_at
    deadline = call.window_end(len(call.attempts) - 1)
    if not was_cut(attempt) or ended is None or deadline is None:
        return
    followed = any(
        r.id > attempt.id and (r.method, r.path) == (attempt.method, attempt.path) and r.received_at <= deadline
        for r in scene.records
    )
    if followed:
        return
    if scene.now < deadline:
        yield Pending("truncated_stream_accepted", (attempt.id,), deadline)
        return
    how = {
        Outcome.DROPPED: "the connection closed without the end of the body",
        Outcome.RESET: "the connection was reset",
    }.get(attempt.outcome or Outcome.COMPLETED, "it ended cleanly without its end marker")
    detail = (
        f"#{attempt.id}'s stream was cut after {attempt.events_sent} event(s) ({how}), and no request to "
        f"{attempt.method} {attempt.path} followed within {deadline - ended:.1f} s."
    )
    yield Finding.of("truncated_stream_accepted", detail, [attempt])


def _reconnect_after_done(call: Call, scene: _Scene) -> Iterator[Result]:
    again = [
        (index, attempt, repeat)
        for index, attempt, repeat in call.retries()
        if attempt.status == 200 and attempt.outcome is Outcome.COMPLETED and attempt.ending is Ending.DONE
    ]
    if again:
        index, attempt, repeat = again[0]
        got = "204 No Content: nothing was left" if repeat.status == 204 else f"{repeat.status}"
        detail = (
            f"#{attempt.id}'s stream ended with its end marker, yet #{repeat.id} asked for it again "
            f"{call.gap_s(index):.2f} s later (answered {got}){_also(len(again) - 1)}."
        )
        yield Finding.of("reconnect_after_done", detail, [r for _, a, b in again for r in (a, b)])


def _ignored_204(call: Call, scene: _Scene) -> Iterator[Result]:
    again = [(attempt, repeat) for _, attempt, repeat in call.retries() if attempt.status == 204]
    if again:
        attempt, repeat = again[0]
        detail = f"#{attempt.id} was answered 204 No Content, yet #{repeat.id} asked again{_also(len(again) - 1)}."
        yield Finding.of("ignored_204", detail, [r for pair in again for r in pair])


def _resume_without_last_event_id(call: Call, scene: _Scene) -> Iterator[Result]:
    restarted = []
    for _, attempt, repeat in call.retries():
        had = attempt.last_id_sent if attempt.last_id_sent is not None else event_number(attempt.last_event_id)
        if was_cut(attempt) and attempt.ids and had is not None and repeat.last_event_id is None:
            restarted.append((attempt, repeat, had))
    if restarted:
        attempt, repeat, had = restarted[0]
        detail = (
            f"#{attempt.id} was cut after the event with id {had}, and #{repeat.id} asked again without "
            f"Last-Event-ID: the answer started over{_also(len(restarted) - 1)}."
        )
        yield Finding.of("resume_without_last_event_id", detail, [r for a, b, _ in restarted for r in (a, b)])


def _retry_field_ignored(call: Call, scene: _Scene) -> Iterator[Result]:
    early = []
    for index, attempt, repeat in call.retries():
        retry = call.retry_ms(index)
        # Only reconnects after the server ended the stream: a client that hung up chose to ask again.
        ended_by_server = attempt.status == 200 and attempt.outcome in SERVER_ENDINGS
        if retry is not None and ended_by_server and call.gap_s(index) < retry / 1000 - EARLY_S:
            early.append((index, attempt, repeat, retry))
    if early:
        index, attempt, repeat, retry = early[0]
        detail = (
            f"#{repeat.id} came {call.gap_s(index):.2f} s after #{attempt.id} ended, though the stream set "
            f"retry: {retry}{_also(len(early) - 1)}."
        )
        yield Finding.of("retry_field_ignored", detail, [r for _, a, b, _ in early for r in (a, b)])


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
    _truncated_stream_accepted,
    _reconnect_after_done,
    _ignored_204,
    _resume_without_last_event_id,
    _retry_field_ignored,
    _no_read_timeout,
    _close_event_ignored,
)
