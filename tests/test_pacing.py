"""Exact timing: waits are scheduled against one deadline per stream, so lateness does not accumulate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

from mock_server.http.server import MockServer
from mock_server.wire.actions import Wait, Write
from mock_server.wire.transport import StreamResponse
from tests.wire import fetch

LATE_S = 0.002


class SlowClock:
    """A clock whose every sleep wakes `LATE_S` late, as a busy event loop would."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + LATE_S
        await asyncio.sleep(0)


def play_with(clock: SlowClock, ops: tuple[Any, ...], keepalive_s: float | None = None) -> list[tuple[float, bytes]]:
    sent: list[tuple[float, bytes]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        if message.get("body"):
            sent.append((clock(), message["body"]))

    response = StreamResponse(ops, headers=[], keepalive_s=keepalive_s, clock=clock, sleep=clock.sleep)
    asyncio.run(response({"type": "http", "state": {}}, receive, send))
    return sent


def test_lateness_does_not_accumulate_over_a_long_stream() -> None:
    clock = SlowClock()
    ops = tuple(op for i in range(1000) for op in (Wait(0.010), Write(b"x", 1)))
    sent = play_with(clock, ops)
    assert len(sent) == 1000
    for index, (at, _) in enumerate(sent):
        due = (index + 1) * 0.010
        assert due <= at <= due + LATE_S + 1e-9  # late by one wake-up at most, never by the sum


def test_keepalive_pings_fill_a_long_wait() -> None:
    clock = SlowClock()
    sent = play_with(clock, (Wait(1.0), Write(b"data: x\n\n", 1)), keepalive_s=0.3)
    assert [body for _, body in sent] == [b": ping\n\n"] * 3 + [b"data: x\n\n"]
    assert 1.0 <= sent[-1][0] <= 1.0 + LATE_S


def test_a_paced_stream_on_the_wire_keeps_its_schedule(server: MockServer) -> None:
    start = time.monotonic()
    response = fetch(server.url + "/completions?messages=x&scenario=long-reply&chunk_ms=2")
    elapsed = time.monotonic() - start
    chunks = len(response.data) - 3  # role chunk, finish chunk, [DONE]
    assert chunks >= 700
    assert elapsed >= chunks * 0.002
    assert elapsed < chunks * 0.002 * 2 + 1  # generous: the schedule does not drift by a wake-up per chunk
