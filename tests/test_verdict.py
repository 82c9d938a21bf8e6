"""The verdict's rules on hand-made journal records and an injected "now": no server, no waiting.

Each finding is shown on both sides: the client that earns it, and the one that does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from mock_server.journal.journal import RequestRecord
from mock_server.journal.trail import ToolCall, ToolTrail
from mock_server.journal.verdict import FINDING_KINDS, Finding, Severity, Verdict, group_calls, judge
from mock_server.journal.verdict.reports import Judged, junit_xml
from mock_server.scenarios.model import Thresholds
from mock_server.scenarios.steps import Ending
from mock_server.wire.outcome import Outcome

T0 = 1_800_000_000.0
README = Path(__file__).parent.parent / "README.md"


def record(number: int, at: float, ms: float | None = 100, **fields: Any) -> RequestRecord:
    """Record `number`, arriving `at` seconds after T0 and lasting `ms` (None: still in flight); by
    default a complete GET /completions stream."""
    values: dict[str, Any] = {
        "id": number,
        "received_at": T0 + at,
        "method": "GET",
        "path": "/completions",
        "query": {"messages": "hi"},
        "headers": {},
        "body": None,
        "prompt": "hi",
        "scenario": "s",
        "dialect": "openai-chat",
        "status": 200,
        "events_sent": 5,
        "outcome": Outcome.COMPLETED,
        "last_event_id": None,
        "duration_ms": ms,
        "ids": False,
        "last_id_sent": None,
        "retry_ms": None,
        "retry_after": None,
        "ending": Ending.DONE,
        "close_at_ms": None,
        "stall_at_ms": None,
        "stall_ms": None,
        "thresholds": Thresholds(),
    }
    if ms is None:
        values["outcome"] = None
    values.update(fields)
    return RequestRecord(**values)


def error(number: int, at: float, status: int = 503, **fields: Any) -> RequestRecord:
    """An HTTP error before the stream."""
    defaults = {"status": status, "outcome": Outcome.ERROR_STATUS, "ending": None, "events_sent": 0}
    return record(number, at, ms=1, **{**defaults, **fields})


def codes(records: list[RequestRecord], now: float = T0 + 3600) -> list[str]:
    return [finding.code for finding in judge(records, now).findings]


# Calls


def test_a_repeat_of_the_same_request_joins_its_call_and_another_body_starts_one() -> None:
    first = error(1, 0)
    retry = error(2, 0.5)
    other = error(3, 0.6, query={"messages": "something else"})
    assert [call.ids for call in group_calls([first, retry, other])] == [(1, 2), (3,)]


def test_headers_do_not_matter_but_method_path_and_body_do() -> None:
    post: dict[str, Any] = {"method": "POST", "body": {"messages": [{"role": "user", "content": "hi"}]}}
    first = error(1, 0, **post)
    new_token = error(2, 0.5, **post, headers={"authorization": "Bearer other"})
    other_path = error(3, 1.0, **post, path="/v1/chat/completions")
    assert [call.ids for call in group_calls([first, new_token, other_path])] == [(1, 2), (3,)]


def test_a_repeat_later_than_the_asked_wait_plus_grace_starts_a_new_call() -> None:
    grace = Thresholds(grace_ms=1000)
    assert len(group_calls([error(1, 0, thresholds=grace), error(2, 1.5)])) == 2
    # Retry-After extends the window: the client was told to wait 2 s.
    told = error(1, 0, thresholds=grace, status=429, retry_after="2")
    assert len(group_calls([told, error(2, 2.9, status=429)])) == 1


def test_a_last_event_id_that_the_attempt_sent_joins_its_call_whatever_the_query() -> None:
    dropped = record(1, 0, outcome=Outcome.DROPPED, ending=Ending.DROP, ids=True, last_id_sent=4)
    resumed = record(2, 0.5, query={"messages": "hi", "v": "2"}, last_event_id="4", ids=True)
    stranger = record(3, 1.0, query={"messages": "hi", "v": "3"}, last_event_id="9")
    assert [call.ids for call in group_calls([dropped, resumed, stranger])] == [(1, 2), (3,)]


def test_a_duplicate_sent_while_the_first_is_in_flight_is_a_call_of_its_own() -> None:
    assert len(group_calls([record(1, 0, ms=5000), record(2, 0.1)])) == 2


# Findings, both sides


def test_retry_after_ignored_when_the_retry_comes_sooner_than_asked() -> None:
    asked = error(1, 0, status=429, retry_after="2")
    assert codes([asked, error(2, 0.5, status=429)]) == ["retry_after_ignored"]
    assert codes([asked, record(2, 2.1)]) == []


def test_retry_after_as_an_http_date_counts_from_the_response() -> None:
    asked = error(1, 0, status=503, retry_after="Fri, 15 Jan 2027 08:00:03 GMT")  # T0 + 3 s
    assert codes([asked, error(2, 1)]) == ["retry_after_ignored"]
    assert codes([asked, record(2, 3.2)]) == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_retrying_a_request_that_cannot_succeed_is_retried_non_retryable(status: int) -> None:
    assert codes([error(1, 0, status), error(2, 1, status)]) == ["retried_non_retryable"]


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_retrying_a_retryable_status_is_fine(status: int) -> None:
    assert codes([error(1, 0, status), record(2, 1)]) == []


def test_more_attempts_than_max_attempts_is_a_retry_storm() -> None:
    arrivals = [0, 0.2, 0.6, 1.4, 3.0, 6.2]  # backing off, yet one attempt too many
    storm = [error(n, at) for n, at in enumerate(arrivals, start=1)]
    assert codes(storm) == ["retry_storm"]
    assert codes(storm[:5]) == []
    assert codes([error(1, 0, thresholds=Thresholds(max_attempts=1)), record(2, 0.5)]) == ["retry_storm"]


def test_resumes_that_get_further_are_not_a_storm() -> None:
    cut: dict[str, Any] = {"outcome": Outcome.DROPPED, "ending": Ending.DROP, "ids": True}
    attempts = [record(1, 0, **cut, last_id_sent=2)]
    attempts += [record(n, n, **cut, last_id_sent=2 * n, last_event_id=str(2 * n - 2)) for n in range(2, 9)]
    attempts.append(record(9, 9, ids=True, last_id_sent=20, last_event_id="16"))
    assert codes(attempts) == []


def test_retries_at_a_steady_pace_after_errors_have_no_backoff() -> None:
    steady = [error(1, 0), error(2, 0.2), error(3, 0.4), record(4, 0.6)]
    assert codes(steady) == ["no_backoff"]
    noisy = [error(1, 0), error(2, 0.1), error(3, 0.25), error(4, 0.35), record(5, 0.53)]
    assert codes(noisy) == ["no_backoff"]
    growing = [error(1, 0), error(2, 0.5), error(3, 1.5), record(4, 3.5)]
    assert codes(growing) == []
    jittered_sdk = [error(1, 0), error(2, 0.5), record(3, 1.25)]  # 0.5 s, then 1 s x 0.75
    assert codes(jittered_sdk) == []
    one_retry = [error(1, 0), record(2, 0.1)]
    assert codes(one_retry) == []


def test_a_steady_pace_the_server_asked_for_is_not_missing_backoff() -> None:
    told = [error(n, 1.1 * (n - 1), status=429, retry_after="1") for n in (1, 2, 3)]
    assert codes([*told, record(4, 3.3)]) == []


@pytest.mark.parametrize(
    "cut",
    [
        {"outcome": Outcome.DROPPED, "ending": Ending.DROP},
        {"outcome": Outcome.RESET, "ending": Ending.RESET},
        {"outcome": Outcome.COMPLETED, "ending": Ending.NO_DONE},
    ],
    ids=["drop", "reset", "no_done"],
)
def test_a_cut_stream_nobody_asked_again_for_is_cut_stream_not_retried(cut: dict[str, Any]) -> None:
    grace = Thresholds(grace_ms=2000)
    cut_stream = record(1, 0, ms=500, thresholds=grace, **cut)
    assert codes([cut_stream], now=T0 + 2.6) == ["cut_stream_not_retried"]
    assert codes([cut_stream, record(2, 1.5)]) == [], "retried within the grace"
    continuation = record(2, 1.5, query={"messages": "hi, and go on"})
    assert codes([cut_stream, continuation]) == [], "any further request to the endpoint is a reaction"


def test_cut_stream_not_retried_is_pending_until_the_grace_has_passed() -> None:
    cut_stream = record(1, 0, ms=500, outcome=Outcome.DROPPED, ending=Ending.DROP, retry_ms=1000)
    early = judge([cut_stream], now=T0 + 3)
    assert early.findings == ()
    # It ended at 0.5 s; the stream's retry: 1000 and the default 5 s grace give the client until 6.5 s.
    assert [(p.code, p.records, p.decided_at) for p in early.pending] == [("cut_stream_not_retried", (1,), T0 + 6.5)]
    late = judge([cut_stream], now=T0 + 6.6)
    assert ([f.code for f in late.findings], late.pending) == (["cut_stream_not_retried"], ())


@pytest.mark.parametrize("ending", [Ending.ERROR, Ending.DONE])
def test_streams_the_server_ended_on_purpose_need_no_retry(ending: Ending) -> None:
    assert judge([record(1, 0, ending=ending)], now=T0 + 3600).findings == ()


@pytest.mark.parametrize("outcome", [Outcome.COMPLETED, Outcome.CLIENT_DISCONNECTED])
def test_a_close_event_is_a_cut_stream_whether_the_client_stayed_or_left(outcome: Outcome) -> None:
    closed = record(1, 0, ending=Ending.CLOSE, outcome=outcome, close_at_ms=50, ms=60)
    (finding,) = judge([closed], now=T0 + 3600).findings
    assert (finding.code, finding.severity) == ("cut_stream_not_retried", Severity.WARNING)
    assert "the server sent a `close` event" in finding.detail
    left_before_it = record(1, 0, ending=Ending.CLOSE, outcome=Outcome.CLIENT_DISCONNECTED, close_at_ms=50, ms=20)
    assert judge([left_before_it], now=T0 + 3600).findings == ()


def test_asking_again_after_a_complete_stream_is_reconnect_after_done() -> None:
    done = record(1, 0, ids=True, last_id_sent=7, retry_ms=200)
    stopped = record(2, 0.4, status=204, ending=None, events_sent=0, last_event_id="7")
    assert codes([done, stopped]) == ["reconnect_after_done"]
    assert codes([done]) == []
    replayed = [record(1, 0), record(2, 3.2), record(3, 6.4)]
    assert codes(replayed) == ["reconnect_after_done"]
    assert "#2 asked for it again" in judge(replayed, T0 + 60).findings[0].detail


def test_asking_again_after_a_204_is_ignored_204() -> None:
    dropped = record(1, 0, outcome=Outcome.DROPPED, ending=Ending.DROP, ids=True, last_id_sent=7)
    stopped = record(2, 1.2, status=204, ending=None, events_sent=0, last_event_id="7")
    again = record(3, 2.4, status=204, ending=None, events_sent=0, last_event_id="7")
    assert codes([dropped, stopped, again]) == ["ignored_204"]
    assert codes([dropped, stopped]) == []


def test_reconnecting_after_a_cut_without_last_event_id_is_resume_without_last_event_id() -> None:
    dropped = record(1, 0, outcome=Outcome.DROPPED, ending=Ending.DROP, ids=True, last_id_sent=3)
    assert codes([dropped, record(2, 1.1)]) == ["resume_without_last_event_id"]
    assert codes([dropped, record(2, 1.1, last_event_id="3")]) == []
    without_ids = record(1, 0, outcome=Outcome.DROPPED, ending=Ending.DROP)
    assert codes([without_ids, record(2, 1.1)]) == [], "nothing to resume from"


def test_reconnecting_sooner_than_retry_is_retry_field_ignored() -> None:
    dropped = record(1, 0, ms=300, outcome=Outcome.DROPPED, ending=Ending.DROP, retry_ms=1000)
    assert codes([dropped, record(2, 0.5)]) == ["retry_field_ignored"]
    assert codes([dropped, record(2, 1.35)]) == []
    hung_up = record(1, 0, ms=300, outcome=Outcome.CLIENT_DISCONNECTED, ending=Ending.DONE, retry_ms=1000)
    assert codes([hung_up, record(2, 0.5)]) == [], "a client that hung up chose to ask again"


def test_waiting_on_a_stall_beyond_patience_is_no_read_timeout() -> None:
    patience = Thresholds(patience_ms=2000)
    stalled = {"ending": Ending.STALL, "stall_at_ms": 500, "thresholds": patience}
    waiting = record(1, 0, ms=None, **stalled)
    assert judge([waiting], now=T0 + 2).findings == ()
    assert [(p.code, p.decided_at) for p in judge([waiting], now=T0 + 2).pending] == [("no_read_timeout", T0 + 2.5)]
    assert codes([waiting], now=T0 + 2.6) == ["no_read_timeout"]
    gave_up_late = record(1, 0, ms=4000, outcome=Outcome.STALLED, **stalled)
    assert codes([gave_up_late]) == ["no_read_timeout"]
    gave_up_in_time = record(1, 0, ms=1500, outcome=Outcome.STALLED, **stalled)
    assert codes([gave_up_in_time]) == []


def test_a_stall_shorter_than_patience_may_be_waited_out() -> None:
    short = record(1, 0, ms=3000, ending=Ending.DONE, stall_at_ms=500, stall_ms=1500)
    assert codes([short]) == []
    long = record(1, 0, ms=40_000, ending=Ending.DONE, stall_at_ms=500, stall_ms=35_000)
    assert codes([long]) == ["no_read_timeout"]


def test_staying_connected_after_a_close_event_is_close_event_ignored() -> None:
    closing = {"ending": Ending.CLOSE, "close_at_ms": 300}
    # Whatever it did about the close, it did not ask again: that is a warning of its own.
    assert codes([record(1, 0, ms=2300, **closing)]) == ["cut_stream_not_retried", "close_event_ignored"]
    assert codes([record(1, 0, ms=400, outcome=Outcome.CLIENT_DISCONNECTED, **closing)]) == ["cut_stream_not_retried"]
    open_still = record(1, 0, ms=None, **closing)
    assert [p.decided_at for p in judge([open_still], now=T0 + 1).pending] == [T0 + 1.3]
    assert codes([open_still], now=T0 + 1.4) == ["close_event_ignored"]


def test_a_well_behaved_client_gets_no_finding() -> None:
    journal = [
        error(1, 0, status=429, retry_after="1"),  # rate limited, waits as told
        record(2, 1.2, outcome=Outcome.DROPPED, ending=Ending.DROP, ids=True, last_id_sent=4, retry_ms=500),
        record(3, 1.9, last_event_id="4", ids=True, last_id_sent=9, retry_ms=500),  # resumes, closes at [DONE]
        record(4, 30, query={"messages": "next"}, ending=Ending.CLOSE, close_at_ms=50, ms=60),
        record(5, 30.5, query={"messages": "next"}),  # asks again after the close
        record(6, 40, query={"messages": "stall"}, ending=Ending.STALL, stall_at_ms=10, ms=5000),
    ]
    verdict = judge(journal, now=T0 + 3600)
    assert (verdict.findings, verdict.pending) == ((), ())
    assert verdict.calls == ((1, 2, 3), (4, 5), (6,))


# Agent loops: a conversation's tool calls and their results

WEATHER = ToolCall("call_1", "get_weather")


def chat(number: int, at: float, conversation: str | None = None, **tools: Any) -> RequestRecord:
    """A POST /v1/chat/completions of its own body, with the tool trail `tools` gives."""
    body = {"messages": [{"role": "user", "content": f"request {number}"}]}
    trail = ToolTrail(**tools) if tools else None
    return record(
        number,
        at,
        method="POST",
        path="/v1/chat/completions",
        query={},
        body=body,
        tools=trail,
        conversation=conversation,
    )


def test_tool_result_missing_when_a_request_holds_the_call_without_its_result() -> None:
    answer = chat(1, 0, calls=(WEATHER,))
    dropped = chat(2, 1, history=("call_1",), unanswered=("call_1",))
    again = chat(3, 2, history=("call_1",), unanswered=("call_1",))
    (finding,) = judge([answer, dropped, again], T0 + 10).findings
    assert (finding.code, finding.records) == ("tool_result_missing", (1, 2, 3))
    assert finding.detail.startswith("#1 answered with a tool call, get_weather (call_1); #2 went on with the call")
    assert "1 more request(s) did too" in finding.detail
    answered = chat(2, 1, history=("call_1",), results=("call_1",))
    assert codes([answer, answered]) == []


def test_a_request_without_the_call_in_its_history_is_a_fresh_start_not_a_missing_result() -> None:
    answer = chat(1, 0, conversation="c1", calls=(WEATHER,))
    assert codes([answer, chat(2, 1, conversation="c1")]) == []


def test_a_call_is_continued_only_in_its_own_conversation() -> None:
    answer = chat(1, 0, conversation="a", calls=(WEATHER,))
    elsewhere = chat(2, 1, conversation="b", history=("call_1",), unanswered=("call_1",))
    assert codes([answer, elsewhere]) == []
    unkeyed = chat(2, 1, history=("call_1",), unanswered=("call_1",))
    assert codes([answer, unkeyed]) == ["tool_result_missing"]


def test_tool_call_repeated_when_a_result_comes_again_for_an_answered_call() -> None:
    answer = chat(1, 0, calls=(WEATHER,))
    first = chat(2, 1, history=("call_1",), results=("call_1",))
    history_only = chat(3, 2, history=("call_1",))  # the earlier result, kept in the history: fine
    assert codes([answer, first, history_only]) == []
    twice = chat(3, 2, history=("call_1",), results=("call_1",), repeated=("call_1",))
    (finding,) = judge([answer, first, twice], T0 + 10).findings
    assert (finding.code, finding.severity, finding.records) == ("tool_call_repeated", Severity.ERROR, (1, 3))
    assert "#3 sent a result for the tool call get_weather (call_1), which #1 handed out," in finding.detail


def test_junit_puts_a_finding_about_several_calls_in_the_call_that_went_wrong() -> None:
    verdict = judge([chat(1, 0, calls=(WEATHER,)), chat(2, 1, history=("call_1",), unanswered=("call_1",))], T0 + 9)
    cases = ElementTree.fromstring(junit_xml([Judged("agent", verdict)])).iter("testcase")
    assert [(case.get("name"), case.find("failure") is not None) for case in cases] == [
        ("call 1 (#1)", False),
        ("call 2 (#2)", True),
    ]


# Rate limits: every request of a refused client


def limited(
    number: int, at: float, key: str = "key sk-...1234#aa", scope: str | None = "server", **fields: Any
) -> RequestRecord:
    """A 429 from a rate limit with Retry-After: 2 (a scripted 429 when `scope` is None)."""
    prompt = {"messages": f"prompt {number}"}
    return error(number, at, 429, retry_after="2", rate_limit_key=key, rate_limited=scope, query=prompt, **fields)


def test_rate_limit_ignored_when_the_client_sends_something_else_before_retry_after() -> None:
    hammer = [limited(1, 0), limited(2, 0.5), limited(3, 0.9)]
    (finding,) = judge(hammer, T0 + 10).findings
    assert (finding.code, finding.records) == ("rate_limit_ignored", (1, 2, 3))
    assert finding.detail.startswith("#2 came 0.50 s after #1 was refused 429 by a rate limit with Retry-After: 2")
    assert codes([limited(1, 0), limited(2, 2.2)]) == []  # waited as told
    assert codes([limited(1, 0), limited(2, 0.05)]) == []  # sent with it, before the 429 was read


def test_rate_limit_ignored_counts_the_same_client_and_the_refusing_limit_only() -> None:
    assert codes([limited(1, 0), limited(2, 0.5, key="key sk-...9999#bb")]) == []
    assert codes([limited(1, 0, scope=None), limited(2, 0.5, scope=None)]) == []  # scripted 429s
    own = limited(1, 0, scope="scenario", scenario="a")
    assert codes([own, record(2, 0.5, scenario="b", rate_limit_key="key sk-...1234#aa")]) == []
    assert codes([own, limited(2, 0.5, scope="scenario", scenario="a")]) == ["rate_limit_ignored"]


def test_a_retry_of_the_refused_request_is_judged_by_retry_after_ignored_alone() -> None:
    refused = limited(1, 0)
    retry = error(2, 0.5, 429, retry_after="2", rate_limit_key=refused.rate_limit_key, query=refused.query)
    assert codes([refused, retry]) == ["retry_after_ignored"]


# The verdict as data and text


def test_every_kind_has_a_stable_code_a_severity_a_title_and_advice() -> None:
    assert list(FINDING_KINDS) == [
        "retry_after_ignored",
        "retried_non_retryable",
        "retry_storm",
        "no_backoff",
        "cut_stream_not_retried",
        "reconnect_after_done",
        "ignored_204",
        "resume_without_last_event_id",
        "retry_field_ignored",
        "no_read_timeout",
        "close_event_ignored",
        "tool_result_missing",
        "tool_call_repeated",
        "rate_limit_ignored",
    ]
    for kind in FINDING_KINDS.values():
        assert kind.severity in Severity
        assert kind.title
        assert "\n" not in kind.title
        assert len(kind.advice) > 40


def test_verdict_json_round_trips_and_counts_by_severity() -> None:
    verdict = judge(
        [error(1, 0, 401), error(2, 0.1, 401), record(3, 10, ms=None, ending=Ending.CLOSE, close_at_ms=1)], T0 + 12
    )
    data = verdict.to_json()
    assert (data["errors"], data["warnings"], data["requests"], data["calls"]) == (1, 1, 3, [[1, 2], [3]])
    assert data["findings"][0] == {
        "code": "retried_non_retryable",
        "severity": "error",
        "title": "Retried a request that cannot succeed",
        "detail": "#1 was answered 401, and #2 asked the same again.",
        "advice": FINDING_KINDS["retried_non_retryable"].advice,
        "records": [1, 2],
    }
    assert Verdict.from_json(data) == verdict


def test_table_and_report_show_every_finding_with_advice_and_records() -> None:
    verdict = judge([error(1, 0, 401), error(2, 0.1, 401)], T0 + 1)
    table = verdict.table().splitlines()
    assert table[0].split() == ["CODE", "SEVERITY", "TITLE", "RECORDS"]
    assert table[1].split()[:2] == ["retried_non_retryable", "error"]
    assert table[1].endswith("#1 #2")
    report = verdict.report()
    assert report.startswith("The client misbehaved: 1 finding(s), 1 error(s) and 0 warning(s), in 2 request(s)")
    assert "Fix: Do not retry 400, 401" in report
    assert "#2 GET /completions scenario='s' status=401 outcome='error_status'" in report
    assert judge([], T0).table() == "No findings in 0 request(s) in 0 call(s)."


def test_the_readme_lists_every_kind_with_its_severity_in_order() -> None:
    section = README.read_text(encoding="utf-8").split("\n## Client verdicts\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    assert [(row[0].strip("|` "), row[1]) for row in rows] == [
        (k.code, k.severity.value) for k in FINDING_KINDS.values()
    ]


def test_the_verdict_types_are_public() -> None:
    import mock_server

    assert (mock_server.Verdict, mock_server.Finding) == (Verdict, Finding)
