"""A page of another origin in a real browser: it streams from the model endpoints, but can neither
read the journal (which holds the keys clients sent) nor reset the server or install a scenario."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page

from mock_server.http.server import MockServer
from mock_server.settings import Settings
from tests.browser.conftest import BROWSER_SCENARIOS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ATTEMPTS = """async api => {
  const outcome = async request => {
    try {
      const response = await request();
      return response.type === "opaque" ? "opaque" : `${response.status} ${await response.text()}`;
    } catch (error) {
      return `failed: ${error}`;
    }
  };
  const form = document.createElement("form");  // a simple request: no preflight protects it
  form.method = "POST";
  form.action = `${api}/_mock/reset`;
  form.target = "sink";
  const sink = document.createElement("iframe");
  sink.name = "sink";
  document.body.append(sink, form);
  form.submit();
  await new Promise(resolve => sink.addEventListener("load", resolve, {once: true}));
  return {
    journal: await outcome(() => fetch(`${api}/_mock/requests`)),
    verdict: await outcome(() => fetch(`${api}/_mock/verdict`)),
    reset: await outcome(() => fetch(`${api}/_mock/reset`, {method: "POST", mode: "no-cors"})),
    clear: await outcome(() => fetch(`${api}/_mock/requests`, {method: "DELETE"})),
    install: await outcome(() => fetch(`${api}/_mock/scenarios/hijack`, {
      method: "PUT",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({reply: "hijacked", match: {prompt: ".*"}}),
    })),
    stream: await outcome(() => fetch(`${api}/completions?messages=hi&chunk_ms=0`)),
  };
}"""


def test_a_page_of_another_origin_cannot_read_the_journal_or_change_the_server(page: Page, page_origin: str) -> None:
    with MockServer(settings=Settings(port=0, scenario_dirs=(BROWSER_SCENARIOS,), access_log=False)) as mock:
        secret = {"Authorization": "Bearer sk-live-0123456789abcdef"}
        httpx.get(mock.url + "/completions?messages=before&chunk_ms=0", headers=secret).raise_for_status()
        page.goto(f"{page_origin}/clients.html?api={mock.url}")
        results = page.evaluate(ATTEMPTS, mock.url)

        assert results["journal"].startswith("failed: TypeError")  # no CORS headers: the page reads nothing
        assert results["verdict"].startswith("failed: TypeError")
        assert results["reset"] == "opaque"  # sent, but refused by the server (below)
        assert results["clear"].startswith("failed: TypeError")  # its preflight was refused
        assert results["install"].startswith("failed: TypeError")
        assert results["stream"].startswith("200 data: ")  # the model endpoints stay open to pages

        records = mock.requests
        assert [r.prompt for r in records] == ["before", "hi"]  # neither reset nor cleared
        assert "hijack" not in [e["name"] for e in httpx.get(mock.url + "/_mock/scenarios").json()]
        assert records[0].headers["authorization"] == "Bearer sk-...cdef"


def test_a_page_of_an_origin_named_by_cors_origins_may_use_the_control_api(page: Page, page_origin: str) -> None:
    settings = Settings(port=0, scenario_dirs=(BROWSER_SCENARIOS,), access_log=False, cors_origins=(page_origin,))
    with MockServer(settings=settings) as mock:
        page.goto(f"{page_origin}/clients.html?api={mock.url}")
        results = page.evaluate(ATTEMPTS, mock.url)
        assert results["journal"].startswith("200 [")
        assert results["install"].startswith("201 ")
        assert "hijack" in [e["name"] for e in httpx.get(mock.url + "/_mock/scenarios").json()]
