"""axios in the browser: onDownloadProgress reads the reply while it streams."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.harness import JournalReader

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_axios_download_progress_reads_the_reply_as_it_grows(
    clients: Page, prompt: str, journal: JournalReader
) -> None:
    words = f"{prompt} with a few more words to stream"
    seen = clients.evaluate(
        "request => streamWithAxios({request, query: {chunk_ms: 100}})",
        words,
    )

    full = f"You said: {words}"
    expect(clients.locator("#reply")).to_have_text(full)
    assert (seen["status"], seen["text"]) == (200, full)
    partials = seen["partials"]
    assert all(full.startswith(partial) for partial in partials), "each progress event shows a prefix"
    assert partials == sorted(partials, key=len), "the text only grows"
    growing = {partial for partial in partials if partial and partial != full}
    assert len(growing) >= 3, f"expected several partial texts before the end, got {partials}"
    (record,) = journal.wait_for(words, 1)
    assert record["outcome"] == "completed"
