"""The verdict on EventSource pages in Chromium: the article's page that closes only on error, and
pages that reopen their EventSource by hand, against pages that close at `[DONE]` and let the
browser reconnect by itself."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from mock_server.http.server import MockServer
from tests.browser.harness import JournalReader, Record

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RESUMABLE_REPLY = "Every event carries an id, so a client that reconnects resumes exactly where it stopped."
DROPPING_REPLY = "one two three four five six seven eight"


@pytest.fixture
def since(journal: JournalReader) -> int:
    """The journal's newest id before the test: the verdict looks only at what the test adds."""
    return journal.last_id()


def stream(page: Page, query: dict[str, str], **options: Any) -> Any:
    return page.evaluate("([query, options]) => streamWithEventSource({query, ...options})", [query, options])


def codes(verdict: Record) -> list[str]:
    return [finding["code"] for finding in verdict["findings"]]


def dropping_once(mock: MockServer) -> str:
    """A new scenario (so `times` counts from its first request) that drops after three chunks once."""
    faults = [{"kind": "drop", "at": 3, "times": 1}]
    return mock.add_scenario(reply=DROPPING_REPLY, chunk_ms=30, ids=True, retry_ms=200, faults=faults)


def test_a_page_closing_only_on_error_reconnects_after_done(
    clients: Page, prompt: str, journal: JournalReader, since: int
) -> None:
    seen = stream(clients, {"messages": prompt, "scenario": "resumable"}, closeOnDone=False)

    assert seen["errors"] == ["reconnecting", "closed"]  # the end of the body, then the 204
    journal.wait_for(prompt, 2)
    verdict = journal.verdict(since)
    assert codes(verdict) == ["reconnect_after_done"]
    assert "(answered 204 No Content: nothing was left)" in verdict["findings"][0]["detail"]


def test_a_page_closing_at_done_gets_no_finding(clients: Page, prompt: str, journal: JournalReader, since: int) -> None:
    seen = stream(clients, {"messages": prompt, "scenario": "resumable"}, closeOnDone=True)

    assert (seen["done"], seen["text"]) == (True, RESUMABLE_REPLY)
    journal.wait_for(prompt, 1)
    assert journal.verdict(since)["findings"] == []


def test_a_page_reopening_a_closed_eventsource_ignores_the_204_and_shows_the_answer_twice(
    clients: Page, prompt: str, journal: JournalReader, since: int
) -> None:
    seen = stream(
        clients, {"messages": prompt, "scenario": "resumable"}, closeOnDone=False, reopen="closed", maxOpens=2
    )

    assert seen["text"] == RESUMABLE_REPLY * 2
    records = journal.wait_for(prompt, 4)
    assert [(r["status"], r["last_event_id"] is None) for r in records] == [(200, True), (204, False)] * 2
    verdict = journal.verdict(since)
    assert codes(verdict) == ["reconnect_after_done", "ignored_204"]
    assert verdict["calls"] == [[r["id"] for r in records]]


def test_a_page_reopening_on_error_restarts_the_answer_without_last_event_id(
    clients: Page, prompt: str, journal: JournalReader, since: int, mock: MockServer
) -> None:
    query = {"messages": prompt, "scenario": dropping_once(mock)}
    seen = stream(clients, query, reopen="error", reopenDelayMs=400, maxOpens=3)

    assert (seen["done"], seen["sources"]) == (True, 2)
    assert seen["text"].endswith(DROPPING_REPLY)
    assert seen["text"] != DROPPING_REPLY, "the words before the drop are shown twice"
    dropped, restarted = journal.wait_for(prompt, 2)
    assert (dropped["outcome"], restarted["last_event_id"]) == ("dropped", None)
    assert codes(journal.verdict(since)) == ["resume_without_last_event_id"]


def test_the_browser_reconnecting_by_itself_resumes_and_gets_no_finding(
    clients: Page, prompt: str, journal: JournalReader, since: int, mock: MockServer
) -> None:
    seen = stream(clients, {"messages": prompt, "scenario": dropping_once(mock)}, closeOnDone=True)

    assert (seen["done"], seen["text"], seen["sources"]) == (True, DROPPING_REPLY, 1)
    dropped, resumed = journal.wait_for(prompt, 2)
    assert dropped["outcome"] == "dropped"
    assert resumed["last_event_id"] is not None
    assert journal.verdict(since)["findings"] == []
