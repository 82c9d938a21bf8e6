"""A stream's objects are freed as it ends, by reference counting: none is left in a cycle for the
cyclic collector, whose full passes pause every open stream (66-235 ms were measured with the
cycles a day of requests used to leave)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from mock_server.http.server import MockServer
from tests.wire import fetch

REQUESTS = 20
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """What the cyclic collector finds after the test's requests (kept, not freed, for a look)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[object] = []
    try:
        yield found
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("GET", "/completions?messages=hi", None),
        (
            "POST",
            "/v1/chat/completions",
            {"model": "default", "stream": True, "messages": HI},
        ),
        (
            "POST",
            "/v1/messages",
            {"model": "default", "max_tokens": 9, "stream": True, "messages": HI},
        ),
    ],
    ids=["completions", "chat", "messages"],
)
def test_paced_streams_leave_no_cyclic_garbage(
    server: MockServer, saved_garbage: list[object], method: str, target: str, body: dict[str, Any] | None
) -> None:
    for _ in range(REQUESTS):
        response = fetch(server.url + target, method=method, body=body, headers={"X-Mock-Chunk-Ms": "1"})
        assert response.status == 200
    gc.collect()
    ours = [o for o in gc.garbage if type(o).__module__.startswith(("mock_server", "asyncio", "uvloop"))]
    assert not ours, f"{len(ours)} objects left in cycles, e.g. {sorted({type(o).__name__ for o in ours})[:8]}"
