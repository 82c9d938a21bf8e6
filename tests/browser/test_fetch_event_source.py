"""@microsoft/fetch-event-source as a chat UI uses it: POST, a bearer token, a JSON body, retries."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.harness import JournalReader

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MID_STREAM_DROP_REPLY = "The quick brown fox jumps over the lazy dog, and then jumps back again."


def stream(page: Page, **options: Any) -> Any:
    return page.evaluate("options => streamWithFetchEventSource(options)", options)


def test_fetch_event_source_posts_json_body_with_bearer_token(
    clients: Page, prompt: str, journal: JournalReader
) -> None:
    seen = stream(clients, request=prompt, model="default", token="sk-posted")

    assert (seen["text"], seen["closed"], seen["errors"]) == (f"You said: {prompt}", True, [])
    assert seen["events"][-1]["data"] == "[DONE]"
    (record,) = journal.wait_for(prompt, 1)
    assert record["method"] == "POST"
    assert record["body"] == {"model": "default", "stream": True, "request": prompt}
    assert record["headers"]["authorization"] == "Bearer sk-posted"
    assert record["headers"]["accept"] == "text/event-stream"


def test_close_event_reaches_onmessage_with_its_name(clients: Page, prompt: str, journal: JournalReader) -> None:
    seen = stream(clients, request=prompt, model="close-event")

    names = [event["event"] for event in seen["events"]]
    assert (names.count("close"), names[-1]) == (1, "close")
    assert seen["events"][-1]["data"] == '{"reason": "upstream closed"}'
    assert seen["text"] == "Streaming along nicely until the", "the five chunks before the close event"
    assert seen["closed"], "the stream ends cleanly after the close event"
    (record,) = journal.wait_for(prompt, 1)
    assert record["outcome"] == "completed"


def test_wrong_content_type_makes_onopen_throw(clients: Page, prompt: str, journal: JournalReader) -> None:
    seen = stream(clients, request=prompt, model="wrong-content-type", retries=0)

    refusal = "Error: Expected content-type to be text/event-stream, Actual: text/plain; charset=utf-8"
    assert (seen["errors"], seen["failure"]) == ([refusal], refusal)
    assert (seen["events"], seen["text"]) == ([], "")
    expect(clients.locator("#reply")).to_have_text("")
    (record,) = journal.wait_for(prompt, 1)
    assert record["scenario"] == "wrong-content-type"


def test_retry_after_drop_resends_the_post_with_last_event_id(
    clients: Page, prompt: str, journal: JournalReader
) -> None:
    seen = stream(clients, request=prompt, model="mid-stream-drop", retries=1)

    assert (len(seen["errors"]), seen["closed"], seen["failure"]) == (1, True, None)
    expect(clients.locator("#reply")).to_have_text(MID_STREAM_DROP_REPLY)
    first, retry = journal.wait_for(prompt, 2)
    assert (first["outcome"], first["last_event_id"]) == ("dropped", None)
    assert (retry["outcome"], retry["last_event_id"]) == ("completed", seen["lastIdAtErrors"][0])
    assert 0 < int(retry["last_event_id"]) <= first["events_sent"]
    assert (retry["method"], retry["body"]) == ("POST", first["body"]), "the retry re-sends the POST"
    assert all(event["data"] for event in seen["events"]), "the `retry:` line fires no empty message"


def test_abort_mid_stream_is_recorded_as_client_disconnected(
    clients: Page, prompt: str, journal: JournalReader
) -> None:
    # A second between chunks: the server has surely seen the hang-up before it has more to send.
    seen = stream(clients, request=prompt, model="slow-chunks", query={"chunk_ms": 1000}, abortAfterChunks=1)

    assert (seen["aborted"], seen["closed"], seen["failure"]) == (True, False, None)
    (record,) = journal.wait_for(prompt, 1)
    assert record["outcome"] == "client_disconnected"
    assert record["events_sent"] == len(seen["events"]), "the journal tells where the client hung up"
