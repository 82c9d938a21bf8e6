"""Fixtures for the browser tests: a mock server, the test page on a second origin, Debian's Chromium.

Playwright's sync API keeps an event loop running on the main thread while it is started, which
would break `asyncio.run()` in other tests sharing a worker; so the browser lives for one module at
a time, and pytest stops it before moving to a module of another kind.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from mock_server.http.server import MockServer
from mock_server.settings import Settings
from tests.browser.harness import INSTALL_HINT, JournalReader, PageServer, build_bundles

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BROWSER_SCENARIOS = Path(__file__).parent / "scenarios"
SCREENSHOTS = Path("test-artifacts") / "screenshots"
PLAYWRIGHT_TIMEOUT_MS = 20_000
_console_key = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def mock() -> Iterator[MockServer]:
    """A mock server with the bundled scenarios and the browser tests' own, keeping the tokens the pages
    send as sent (`journal_secrets="keep"`): the tests assert on them."""
    settings = Settings(port=0, scenario_dirs=(BROWSER_SCENARIOS,), access_log=False, journal_secrets="keep")
    with MockServer(settings=settings) as running:
        yield running


@pytest.fixture(scope="session")
def journal(mock: MockServer) -> JournalReader:
    return JournalReader(mock.url)


@pytest.fixture(scope="session")
def page_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the test page's own origin (another port than the mock server's)."""
    bundles = build_bundles(tmp_path_factory.mktemp("bundles"))
    with PageServer(bundles) as pages:
        yield pages.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing ({INSTALL_HINT})")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page in its own browser context; its console is kept for the failure report."""
    context = browser.new_context()
    context.set_default_timeout(PLAYWRIGHT_TIMEOUT_MS)
    page = context.new_page()
    console = request.node.stash.setdefault(_console_key, [])
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield page
    context.close()


@pytest.fixture
def clients(page: Page, page_origin: str, mock: MockServer) -> Page:
    """The test page with the three clients loaded, pointed at the mock server."""
    page.goto(f"{page_origin}/clients.html?api={mock.url}")
    page.wait_for_function("window.clientsReady === true")
    return page


@pytest.fixture
def prompt(request: pytest.FixtureRequest) -> str:
    """A prompt no other test sends, to find this test's records in the shared journal."""
    return f"{request.node.name} {uuid.uuid4().hex[:8]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed browser test, save a screenshot and add it and the page's console to the report."""
    report: pytest.TestReport = yield
    if report.when != "call" or not report.failed:
        return report
    pages = [value for value in getattr(item, "funcargs", {}).values() if isinstance(value, Page)]
    for page in pages[:1]:
        path = item.config.rootpath / SCREENSHOTS / (re.sub(r"[^\w.-]+", "_", item.nodeid) + ".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(path), full_page=True)
            report.sections.append(("browser screenshot", str(path)))
        except Exception as exc:  # the page may be gone; the failure itself matters more
            report.sections.append(("browser screenshot", f"not taken: {exc}"))
    console = item.stash.get(_console_key, [])
    if console:
        report.sections.append(("browser console", "\n".join(console)))
    return report
