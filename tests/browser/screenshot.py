"""Writes the README's picture of the dashboard: starts a server, opens /_mock/ui in headless Chromium,
plays a few streams with faults (a cut stream and its resume, a stall, a reset, a client that hangs
up, a retry sooner than Retry-After), picks the cut stream, shows its frames, and saves a PNG.

Usage: scripts/dashboard-screenshot [--out docs/dashboard.png] [--width 1440] [--height 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from mock_server.http.server import MockServer
from mock_server.settings import Settings
from tests import wire
from tests.browser.conftest import CHROMIUM, CHROMIUM_FLAGS

DEFAULT_OUT = Path("docs") / "dashboard.png"


def play(url: str) -> int:
    """The streams the picture shows; returns the id of the cut stream that was resumed."""
    wire.fetch(f"{url}/completions?messages=a+plain+stream+that+ends+well&chunk_ms=40")
    cut = wire.fetch(f"{url}/completions?messages=resume+me&scenario=mid-stream-drop")
    cut_id = int(cut.headers["x-mock-request-id"])
    last_id = [line[4:] for event in cut.events for line in event.split("\n") if line.startswith("id: ")][-1]
    wire.fetch(f"{url}/completions?messages=resume+me&scenario=mid-stream-drop", headers={"Last-Event-ID": last_id})
    wire.fetch(f"{url}/completions?messages=wait+for+it+a+little&fault=stall@2:600&chunk_ms=30")
    wire.fetch(f"{url}/completions?messages=this+one+is+reset+on+purpose&fault=reset@4&chunk_ms=30")
    wire.fetch(f"{url}/completions?messages=I+leave+early&scenario=slow-chunks", read_for=0.6)
    for _ in range(2):
        wire.fetch(f"{url}/completions?messages=too+soon&scenario=rate-limited")
    wire.fetch(f"{url}/completions?messages=cut+after+three&chunk_ms=25", headers={"X-Mock-Fault": "drop@3"})
    return cut_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    settings = Settings(port=0, access_log=False)
    with MockServer(settings=settings) as mock, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(f"{mock.url}/_mock/ui")
        expect(page.locator("#feed-status")).to_have_text("Live")
        cut_id = play(mock.url)
        expect(page.locator("#findings li.finding").first).to_be_visible(timeout=10_000)
        page.evaluate(f"location.hash = 'record-{cut_id}'")
        expect(page.locator("#timeline g.cut")).to_be_visible()
        page.click("#frames-button")
        expect(page.locator("#frames")).to_be_visible()
        page.wait_for_timeout(300)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(f"dashboard-screenshot: wrote {args.out}")


if __name__ == "__main__":
    main()
