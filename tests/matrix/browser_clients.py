"""The browser rows: tests/browser/pages/matrix.js in headless Chromium, on a page of its own origin."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_FLAGS
from tests.browser.harness import HERE as BROWSER_DIR
from tests.browser.harness import INSTALL_HINT, PageServer, build_bundles
from tests.matrix.node_clients import installed_version
from tests.matrix.observation import Observation

PRIME_SETTLE_MS = 6_000
"""How long a primed job waits after its prime: uvicorn closes a kept-alive connection after 5 s idle
(its `timeout_keep_alive`), and Chromium drops a connection the server closed before reusing it."""


def browser_versions(packages: list[str]) -> dict[str, str]:
    return {package: installed_version(BROWSER_DIR, package) for package in packages}


def run_browser(jobs: list[dict[str, Any]], warmup: list[dict[str, Any]], timeout_s: float) -> dict[str, Observation]:
    """Each job's observation, by its key. No warm-up: no browser client retries by itself, and an
    EventSource waits seconds to reconnect. The jobs marked `alone` each play in a browser context of
    their own (its own connections), at the same time as the page that plays all the others."""
    if not jobs:
        return {}
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing ({INSTALL_HINT})")
    shared = [job for job in jobs if not job.get("alone")]
    groups = [shared] if shared else []
    groups += [[_primed(job)] for job in jobs if job.get("alone")]
    with (
        tempfile.TemporaryDirectory(prefix="matrix-bundles-") as bundles,
        PageServer(build_bundles(Path(bundles))) as pages,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            started = [_start(browser.new_context(), pages.url, group, timeout_s) for group in groups]
            seen: dict[str, dict[str, Any]] = {}
            for page in started:
                page.wait_for_function("window.matrixResults !== undefined", timeout=timeout_s * 1000)
                seen.update(page.evaluate("window.matrixResults"))
        finally:
            browser.close()
    return {key: Observation.from_json(observation) for key, observation in seen.items()}


def _primed(job: dict[str, Any]) -> dict[str, Any]:
    """`job`, first played once with another prompt when its client sends a CORS preflight (all but
    EventSource): on the cell's own request the preflight's answer is cached and no connection is
    open. Without it, Chromium may have the preflight's kept-alive connection, and one it opened
    while the preflight was still being read, to resend the request on: one to three attempts."""
    if job["client"] == "eventsource":
        return job
    return {**job, "prime": {"prompt": f"{job['prompt']} (prime)", "settleMs": PRIME_SETTLE_MS}}


def _start(context: BrowserContext, url: str, jobs: list[dict[str, Any]], timeout_s: float) -> Page:
    """A page of `context` playing `jobs`; window.matrixResults holds what they saw once all have ended."""
    page = context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    page.goto(f"{url}/matrix.html")
    page.wait_for_function("window.matrixReady === true")
    page.evaluate("jobs => { runMatrix(jobs).then((results) => { window.matrixResults = results; }); }", jobs)
    return page
