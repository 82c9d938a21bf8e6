"""GET / serves the playground: one self-contained page, shipped inside the package."""

from __future__ import annotations

import re

import httpx

from mock_server.http.playground import playground_html
from mock_server.http.server import MockServer


def test_root_serves_the_playground_page(server: MockServer) -> None:
    response = httpx.get(server.url + "/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>mock-llm-sse playground</title>" in response.text


def test_playground_loads_nothing_from_other_hosts() -> None:
    html = playground_html()

    external = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"'\s>]+""", html, flags=re.IGNORECASE)
    assert external == []
    assert "<script src" not in html, "the script is inline: no build step, no second request"
    assert "@import" not in html
