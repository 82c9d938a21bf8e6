"""Native EventSource against the faults it meets in production: it reconnects by itself after a
drop and resumes with Last-Event-ID, stops at a 204, and gives up on an HTTP error."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.harness import JournalReader

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MID_STREAM_DROP_REPLY = "The quick brown fox jumps over the lazy dog, and then jumps back again."
RESUMABLE_REPLY = "Every event carries an id, so a client that reconnects resumes exactly where it stopped."
RESUMABLE_RETRY_S = 0.2


def stream(page: Page, query: dict[str, str], *, close_on_done: bool) -> Any:
    return page.evaluate(
        "([query, closeOnDone]) => streamWithEventSource({query, closeOnDone})", [query, close_on_done]
    )


def test_drop_makes_eventsource_resume_with_last_event_id_without_gap_or_duplicate(
    clients: Page, prompt: str, journal: JournalReader
) -> None:
    seen = stream(clients, {"messages": prompt, "scenario": "mid-stream-drop"}, close_on_done=False)

    expect(clients.locator("#reply")).to_have_text(MID_STREAM_DROP_REPLY)
    ids = [int(event_id) for event_id in seen["ids"]]
    assert ids == list(range(1, len(ids) + 1)), "every event arrives once, in order"
    assert seen["errors"] == ["reconnecting", "reconnecting", "closed"]  # the drop, the clean end, the 204
    dropped, resumed, stopped = journal.wait_for(prompt, 3)
    assert (dropped["outcome"], dropped["last_event_id"]) == ("dropped", None)
    assert (resumed["status"], resumed["outcome"]) == (200, "completed")
    # The browser resumes after the last event it dispatched, which may be before the last one the
    # server wrote: Chromium drops what it had not yet parsed when the connection fails.
    assert resumed["last_event_id"] == seen["lastIdAtErrors"][0]
    assert 0 < int(resumed["last_event_id"]) <= dropped["events_sent"] < ids[-1]
    assert (stopped["status"], stopped["last_event_id"]) == (204, str(ids[-1]))


def test_204_at_the_end_stops_eventsource_reconnecting(clients: Page, prompt: str, journal: JournalReader) -> None:
    seen = stream(clients, {"messages": prompt, "scenario": "resumable"}, close_on_done=False)

    assert (seen["done"], seen["text"]) == (True, RESUMABLE_REPLY)
    assert seen["errors"] == ["reconnecting", "closed"]  # the stream's clean end, then the 204
    # A browser that kept reconnecting would have come back several times by now.
    clients.wait_for_timeout(RESUMABLE_RETRY_S * 5 * 1000)
    completed, stopped = journal.wait_for(prompt, 2)
    assert (completed["outcome"], completed["last_event_id"]) == ("completed", None)
    assert (stopped["status"], stopped["last_event_id"]) == (204, seen["ids"][-1])


def test_status_fault_fires_onerror_and_eventsource_does_not_retry(
    clients: Page, prompt: str, journal: JournalReader
) -> None:
    seen = stream(clients, {"messages": prompt, "scenario": "resumable", "fault": "status:503"}, close_on_done=False)

    assert (seen["opens"], seen["errors"], seen["text"]) == (0, ["closed"], "")
    (record,) = journal.wait_for(prompt, 1)
    assert (record["status"], record["outcome"]) == (503, "error_status")
