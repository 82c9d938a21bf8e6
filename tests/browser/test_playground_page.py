"""The playground at GET /, driven as a person would: pick, start, watch, stop."""

from __future__ import annotations

import re
import shlex

import pytest
from playwright.sync_api import Page, expect

from mock_server.http.server import MockServer
from tests import wire
from tests.browser.harness import JournalReader

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def playground(page: Page, mock: MockServer) -> Page:
    page.goto(mock.url + "/")
    expect(page.locator("#scenario option[value='default']")).to_be_attached()
    return page


def start(page: Page, *, scenario: str, prompt: str, fault: str = "", chunk_ms: str = "") -> None:
    page.select_option("#scenario", scenario)
    page.fill("#prompt", prompt)
    page.fill("#fault", fault)
    page.fill("#chunk_ms", chunk_ms)
    page.click("#start")


def timeline(page: Page) -> list[str]:
    return page.locator("#timeline td.name").all_inner_texts()


def test_playground_shows_reply_timeline_frames_and_an_equivalent_curl_command(
    playground: Page, mock: MockServer, prompt: str, journal: JournalReader
) -> None:
    start(playground, scenario="default", prompt=prompt)

    expect(playground.locator("#status")).to_contain_text("ended cleanly")
    expect(playground.locator("#reply")).to_have_text(f"You said: {prompt}")
    names = timeline(playground)
    assert names[:3] == ["request", "response", "role"]
    assert names[-3:] == ["finish", "done", "end"]
    assert names.count("chunk") == len(f"You said: {prompt}".split())
    times = playground.locator("#timeline td.time").all_inner_texts()
    assert all(re.fullmatch(r"\+\d+ ms", time) for time in times), times
    assert [int(t[1:-3]) for t in times] == sorted(int(t[1:-3]) for t in times), "times since the request, in order"
    expect(playground.locator("#raw")).to_contain_text('"delta":{"role":"assistant"')
    expect(playground.locator("#raw")).to_contain_text("data: [DONE]")
    command = shlex.split(playground.locator("#curl").inner_text())
    assert command[:2] == ["curl", "-N"]
    assert wire.fetch(command[2]).content() == f"You said: {prompt}", "the command streams the same reply"
    (record, _) = journal.wait_for(prompt, 2)
    assert (record["scenario"], record["outcome"]) == ("default", "completed")


@pytest.mark.parametrize(
    ("fault", "event", "status"),
    [
        ("drop@2", "network error", "the connection broke"),
        ("close@2", "close", "ended cleanly"),
        ("malformed@1", "malformed", "ended cleanly"),
        ("status:429", "response", "HTTP 429"),
    ],
)
def test_playground_timeline_shows_the_fault(
    playground: Page, prompt: str, fault: str, event: str, status: str
) -> None:
    start(playground, scenario="default", prompt=prompt, fault=fault)

    expect(playground.locator("#status")).to_contain_text(status)
    expect(playground.locator("#timeline tr.fault td.name")).to_have_text([event])
    expect(playground.locator("#curl")).to_contain_text(f"fault={fault}")


def test_playground_stop_hangs_up_and_the_journal_says_so(
    playground: Page, prompt: str, journal: JournalReader
) -> None:
    start(playground, scenario="slow-chunks", prompt=prompt)
    expect(playground.locator("#timeline td.name", has_text="chunk").first).to_be_visible()

    playground.click("#stop")

    expect(playground.locator("#status")).to_contain_text("stopped by you")
    assert timeline(playground)[-1] == "stopped"
    (record,) = journal.wait_for(prompt, 1)
    assert record["outcome"] == "client_disconnected"
