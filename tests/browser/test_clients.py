"""The three client styles a chat UI uses, each in headless Chromium on a page of another origin."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.harness import JournalReader

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLIENTS = ["eventsource", "fetch-event-source", "axios"]
CHINESE_REPLY = "你好！这是一个测试回答，每个字都是多字节字符。"


def stream(page: Page, client: str, prompt: str, scenario: str, token: str = "sk-browser-test") -> Any:
    """Stream one reply with `client`, choosing the scenario the way that client's users would."""
    options = {"prompt": prompt, "scenario": scenario, "token": token}
    calls = {
        "eventsource": "o => streamWithEventSource({query: {messages: o.prompt, scenario: o.scenario}})",
        "fetch-event-source": "o => streamWithFetchEventSource({request: o.prompt, model: o.scenario, token: o.token})",
        "axios": "o => streamWithAxios({request: o.prompt, query: {scenario: o.scenario}, token: o.token})",
    }
    return page.evaluate(calls[client], options)


@pytest.mark.parametrize("client", CLIENTS)
def test_client_renders_the_full_reply_across_origins(
    clients: Page, client: str, prompt: str, journal: JournalReader, page_origin: str
) -> None:
    seen = stream(clients, client, prompt, "default")

    expect(clients.locator("#reply")).to_have_text(f"You said: {prompt}")
    assert seen["text"] == f"You said: {prompt}"
    (record,) = journal.wait_for(prompt, 1)
    assert (record["status"], record["outcome"]) == (200, "completed")
    assert record["headers"]["origin"] == page_origin


@pytest.mark.parametrize("client", CLIENTS)
def test_client_renders_split_utf8_reply_without_replacement_characters(
    clients: Page, client: str, prompt: str
) -> None:
    stream(clients, client, prompt, "split-utf8")

    expect(clients.locator("#reply")).to_have_text(CHINESE_REPLY)
    assert "\ufffd" not in clients.locator("#reply").inner_text()


@pytest.mark.parametrize("client", ["fetch-event-source", "axios"])
def test_journal_shows_the_authorization_header_the_page_sent(
    clients: Page, client: str, prompt: str, journal: JournalReader
) -> None:
    token = f"sk-page-{uuid.uuid4().hex}"

    stream(clients, client, prompt, "default", token=token)

    (record,) = journal.wait_for(prompt, 1)
    assert record["headers"]["authorization"] == f"Bearer {token}"
