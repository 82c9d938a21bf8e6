"""What the browser tests stand on: the client bundles, the test page's own origin, the journal.

The test page is served from a second origin (another port), so every request the page makes to
the mock server is a real cross-origin request, preflights and all.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
PAGES = HERE / "pages"
INSTALL_HINT = "run scripts/install-test-deps to install Chromium and the npm packages"


def build_bundles(outdir: Path) -> Path:
    """Bundle the npm clients into `outdir` with esbuild; fails loudly when Node or the packages are missing."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(f"node is not on PATH; the browser tests bundle npm packages with it ({INSTALL_HINT})")
    if not (HERE / "node_modules" / "esbuild").is_dir():
        raise RuntimeError(f"tests/browser/node_modules is missing ({INSTALL_HINT})")
    result = subprocess.run(
        [node, str(HERE / "build_bundles.mjs"), str(outdir)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the browser bundles failed:\n{result.stdout}{result.stderr}")
    return outdir


class _PageHandler(SimpleHTTPRequestHandler):
    """Serves tests/browser/pages/, and the bundles under /dist/; quietly."""

    def __init__(self, *args: Any, bundles: Path, **kwargs: Any) -> None:
        self.bundles = bundles
        super().__init__(*args, directory=str(PAGES), **kwargs)

    def translate_path(self, path: str) -> str:
        if path.startswith("/dist/"):
            return str(self.bundles / Path(path.split("?")[0]).name)
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PageServer:
    """The test page's origin: a static file server on 127.0.0.1 in a thread."""

    def __init__(self, bundles: Path) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_PageHandler, bundles=bundles))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="browser-test-pages", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


Record = dict[str, Any]


class JournalReader:
    """Reads the mock server's journal (`GET /_mock/requests`), a test's records picked by its prompt,
    and its verdict on the clients (`GET /_mock/verdict`)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def last_id(self) -> int:
        """The newest record's id (0 when there is none): a `since` for what comes after."""
        response = httpx.get(f"{self.url}/_mock/requests", params={"settle_ms": 0}, timeout=5)
        response.raise_for_status()
        records = response.json()
        return int(records[-1]["id"]) if records else 0

    def verdict(self, since: int, wait_ms: int = 10_000) -> Record:
        """The verdict on the records after `since`, once its pending checks are decided."""
        params = {"since": since, "wait_ms": wait_ms}
        response = httpx.get(f"{self.url}/_mock/verdict", params=params, timeout=wait_ms / 1000 + 10)
        response.raise_for_status()
        verdict: Record = response.json()
        return verdict

    def records(self, prompt: str) -> list[Record]:
        response = httpx.get(f"{self.url}/_mock/requests", timeout=5)
        response.raise_for_status()
        return [record for record in response.json() if record["prompt"] == prompt]

    def wait_for(
        self, prompt: str, count: int, *, until: Callable[[list[Record]], bool] | None = None, timeout: float = 10
    ) -> list[Record]:
        """The prompt's records once there are `count` of them, all finished (and `until` holds)."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.records(prompt)
            finished = len(records) == count and all(r["outcome"] is not None for r in records)
            if finished and (until is None or until(records)):
                return records
            if time.monotonic() > deadline:
                summary = [(r["method"], r["status"], r["outcome"], r["last_event_id"]) for r in records]
                raise AssertionError(f"expected {count} finished record(s) for {prompt!r} in {timeout}s; got {summary}")
            time.sleep(0.05)
