"""The dashboard at /_mock/ui in a real browser: streams appear live with their timelines, findings link
to their records, and the page says what is wrong when it cannot show the journal."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from mock_server.http.server import MockServer
from mock_server.settings import Settings
from tests import wire
from tests.browser.conftest import BROWSER_SCENARIOS
from tests.browser.harness import JournalReader

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOKEN = "dashboard-s3cret"


@pytest.fixture
def dashboard(page: Page, mock: MockServer) -> Page:
    page.goto(mock.url + "/_mock/ui")
    expect(page.locator("#feed-status")).to_have_text("Live")
    return page


@pytest.fixture
def guarded() -> Iterator[MockServer]:
    """A server of its own, started with --admin-token."""
    settings = Settings(port=0, scenario_dirs=(BROWSER_SCENARIOS,), access_log=False, admin_token=TOKEN)
    with MockServer(settings=settings) as running:
        yield running


def center_x(page: Page, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box["x"] + box["width"] / 2


@pytest.mark.parametrize("how", ["query", "header"])
def test_a_dropped_stream_appears_live_with_its_timeline_cut_after_event_3(
    dashboard: Page, mock: MockServer, prompt: str, how: str
) -> None:
    url = f"{mock.url}/completions?messages={prompt.replace(' ', '+')}+one+two+three+four&chunk_ms=30"
    if how == "query":
        response = wire.fetch(url + "&fault=drop@3")
    else:
        response = wire.fetch(url, headers={"X-Mock-Fault": "drop@3"})
    record_id = response.headers["x-mock-request-id"]
    assert response.ending == wire.Ending.EOF

    row = dashboard.locator(f"#row-{record_id}")
    expect(row.locator(".outcome")).to_have_text("dropped")  # on the open page, without a reload
    expect(row.locator("td.fault")).to_have_text("drop@3")
    expect(row.locator("svg.mini g.cut")).to_have_count(1)
    row.click()

    expect(dashboard.locator("#detail-title")).to_contain_text(f"#{record_id} GET /completions")
    timeline = dashboard.locator("#timeline svg")
    writes = timeline.locator("g.write")
    # The first write holds the role chunk and chunk 1; then chunks 2 and 3; then the cut.
    expect(writes).to_have_count(3)
    assert [writes.nth(i).get_attribute("data-event") for i in range(3)] == ["2", "3", "4"]
    expect(timeline.locator("g.cut text")).to_have_text("dropped after event 4 (drop@3)")
    due = [float(writes.nth(i).get_attribute("data-due-ms") or "nan") for i in range(3)]
    assert due == sorted(due)
    assert due[2] - due[1] == pytest.approx(30, abs=1), "drawn from the record's due moments"
    cut_x = center_x(dashboard, "#timeline svg g.cut line")
    last_x = center_x(dashboard, "#timeline svg g.write:nth-of-type(3) circle.written")
    assert cut_x >= last_x, "the cut comes after the last event written"

    dashboard.click("#frames-button")
    frames = dashboard.locator("#frames")
    expect(frames).to_contain_text("connection dropped (no final chunk)")
    expect(frames).to_contain_text('"content":" said:"')
    expect(frames).to_contain_text(f"x-mock-request-id: {record_id}")
    assert "[DONE]" not in frames.inner_text()


def test_a_verdict_finding_links_to_its_record(
    dashboard: Page, mock: MockServer, prompt: str, journal: JournalReader
) -> None:
    url = f"{mock.url}/completions?messages={prompt.replace(' ', '+')}&fault=status:400"
    first = wire.fetch(url).headers["x-mock-request-id"]
    second = wire.fetch(url).headers["x-mock-request-id"]

    link = dashboard.locator(
        f"#findings li.finding:has(.code:text-is('retried_non_retryable')) a[href='#record-{second}']"
    )
    expect(link).to_be_visible(timeout=10_000)
    link.click()

    expect(dashboard.locator("#detail-title")).to_contain_text(f"#{second} ")
    expect(dashboard.locator(f"#row-{second}")).to_have_class(re.compile(r"\bselected\b"))
    expect(dashboard.locator("#record-findings")).to_contain_text("retried_non_retryable")
    expect(dashboard.locator(f"#row-{second} .badge")).to_contain_text(["retried_non_retryable"])

    dashboard.select_option("#filter-finding", "retried_non_retryable")
    expect(dashboard.locator(f"#row-{second}")).to_be_visible()
    expect(dashboard.locator(f"#row-{first}")).to_be_visible()
    dashboard.wait_for_function(
        """() => [...document.querySelectorAll("#requests tbody tr")].every((row) =>
          [...row.querySelectorAll(".badge")].some((badge) => badge.textContent === "retried_non_retryable"))"""
    )


def test_a_resumed_stream_links_back_to_the_stream_it_resumes(dashboard: Page, mock: MockServer, prompt: str) -> None:
    url = f"{mock.url}/completions?messages={prompt.replace(' ', '+')}&scenario=mid-stream-drop"
    cut = wire.fetch(url)
    last_id = [line[4:] for event in cut.events for line in event.split("\n") if line.startswith("id: ")][-1]
    resumed = wire.fetch(url, headers={"Last-Event-ID": last_id})
    cut_id, resumed_id = cut.headers["x-mock-request-id"], resumed.headers["x-mock-request-id"]

    dashboard.locator(f"#row-{resumed_id}").click()
    back = dashboard.locator(f"#timeline svg a[href='#record-{cut_id}']")
    expect(back).to_contain_text(f"resumes #{cut_id} (Last-Event-ID {last_id})")
    back.click()
    expect(dashboard.locator("#detail-title")).to_contain_text(f"#{cut_id} ")
    expect(dashboard.locator(f"#timeline svg a[href='#record-{resumed_id}']")).to_contain_text(
        f"resumed by #{resumed_id}"
    )


def test_filters_keep_the_rows_that_match(dashboard: Page, mock: MockServer, prompt: str) -> None:
    words = prompt.replace(" ", "+")
    stalled = wire.fetch(f"{mock.url}/completions?messages={words}&fault=stall@1:200&chunk_ms=0")
    stalled_id = stalled.headers["x-mock-request-id"]
    expect(dashboard.locator(f"#row-{stalled_id} .outcome")).to_have_text("completed")
    dashboard.locator(f"#row-{stalled_id}").click()
    expect(dashboard.locator("#timeline svg rect.stall")).to_have_count(1)

    dashboard.select_option("#filter-outcome", "completed")
    dashboard.select_option("#filter-scenario", "default")
    dashboard.select_option("#filter-endpoint", "/completions")
    expect(dashboard.locator(f"#row-{stalled_id}")).to_be_visible()
    expect(dashboard.locator("#requests tbody .outcome:not(.completed)")).to_have_count(0)
    limited = wire.fetch(f"{mock.url}/completions?messages={words}&scenario=rate-limited")
    limited_id = limited.headers["x-mock-request-id"]
    expect(dashboard.locator(f"#row-{limited_id}")).to_have_count(0)  # its outcome is error_status
    dashboard.select_option("#filter-outcome", "")
    dashboard.select_option("#filter-scenario", "rate-limited")
    expect(dashboard.locator(f"#row-{limited_id}")).to_be_visible()
    expect(dashboard.locator(f"#row-{stalled_id}")).to_have_count(0)


def test_the_scenarios_have_a_try_it_link_to_the_playground(dashboard: Page) -> None:
    link = dashboard.locator("#scenarios li[data-scenario='mid-stream-drop'] a.try")
    expect(link).to_have_attribute("href", "/?scenario=mid-stream-drop")
    link.click()
    expect(dashboard.locator("#scenario")).to_have_value("mid-stream-drop")


def test_a_wrong_admin_token_is_refused_and_the_page_says_so(page: Page, guarded: MockServer) -> None:
    wire.fetch(guarded.url + "/completions?messages=behind+the+token&chunk_ms=0")
    page.goto(guarded.url + "/_mock/ui")
    expect(page.locator("#feed-status")).to_have_text("Needs the admin token")
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#requests tbody tr")).to_have_count(0)

    page.fill("#token", "not-the-token")
    page.click("#token-form button")
    expect(page.locator("#token-message")).to_contain_text("The admin token was refused")
    expect(page.locator("#token-message")).to_contain_text("the token is wrong")
    expect(page.locator("#requests tbody tr")).to_have_count(0)

    page.fill("#token", TOKEN)
    page.click("#token-form button")
    expect(page.locator("#feed-status")).to_have_text("Live")
    expect(page.locator("#token-form")).to_be_hidden()
    expect(page.locator("#requests tbody tr")).to_have_count(1)
    assert TOKEN not in page.url


def test_the_feed_ends_cleanly_and_the_page_connects_again(page: Page, mock: MockServer, prompt: str) -> None:
    page.goto(mock.url + "/_mock/ui?max_s=1")
    expect(page.locator("#feed-status")).to_have_text("Live")
    expect(page.locator("#feed-status")).to_contain_text("Feed ended: the feed lasts 1 s at most", timeout=5_000)
    expect(page.locator("#feed-status")).to_have_class(re.compile(r"\bended\b"))
    expect(page.locator("#feed-status")).to_have_text("Live", timeout=5_000)
    record_id = wire.fetch(f"{mock.url}/completions?messages={prompt.replace(' ', '+')}&chunk_ms=0").headers[
        "x-mock-request-id"
    ]
    expect(page.locator(f"#row-{record_id} .outcome")).to_have_text("completed", timeout=5_000)


def test_the_page_says_when_the_server_is_gone(page: Page) -> None:
    settings = Settings(port=0, scenario_dirs=(BROWSER_SCENARIOS,), access_log=False)
    with MockServer(settings=settings) as short_lived:
        page.goto(short_lived.url + "/_mock/ui")
        expect(page.locator("#feed-status")).to_have_text("Live")
    expect(page.locator("#feed-status")).to_have_class(re.compile(r"\b(error|ended)\b"), timeout=10_000)
    expect(page.locator("#feed-status")).to_contain_text(re.compile("cannot be reached|broke off|ended"))


def test_the_page_forgets_the_records_a_clear_removed(page: Page) -> None:
    settings = Settings(port=0, scenario_dirs=(BROWSER_SCENARIOS,), access_log=False)
    with MockServer(settings=settings) as own:
        wire.fetch(own.url + "/completions?messages=soon+cleared&chunk_ms=0")
        page.goto(own.url + "/_mock/ui")
        expect(page.locator("#requests tbody tr")).to_have_count(1)
        own.reset()
        expect(page.locator("#requests tbody tr")).to_have_count(0, timeout=5_000)
        record_id = wire.fetch(own.url + "/completions?messages=after+the+clear&chunk_ms=0").headers[
            "x-mock-request-id"
        ]
        expect(page.locator("#requests tbody tr")).to_have_count(1)
        expect(page.locator(f"#row-{record_id}")).to_be_visible()
