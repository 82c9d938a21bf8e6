"""A light load client on raw asyncio sockets: no HTTP library, so the client is never the bottleneck.

Each probe sends one HTTP/1.1 request and records, per read, the time and how many events have
arrived so far (by the end each event's framing has: `\\n\\n` for SSE, `\\r\\n\\r\\n` for Google's,
`\\n` for NDJSON), plus whether the chunked body ended with its terminating chunk.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import cast

SSE_END = b"\n\n"


@dataclass(frozen=True)
class Request:
    """The bytes of one HTTP/1.1 request and the bytes each event of its answer ends with."""

    raw: bytes
    counted: bytes = SSE_END
    """What the chunked body holds once per event (SSE's blank line; see bench.endpoints.events_of)."""


@dataclass
class Probe:
    started: float = 0.0
    head_at: float | None = None
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    events: int = 0
    completed: bool = False
    closed: asyncio.Future[None] | None = None

    def event_time(self, index: int) -> float | None:
        """When event `index` (0-based) had fully arrived."""
        for at, count in self.arrivals:
            if count > index:
                return at
        return None


class _ProbeProtocol(asyncio.Protocol):
    def __init__(self, request: Request, probe: Probe, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.probe = probe
        self.loop = loop
        self.head = True
        self.tail = b""
        self.end = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.transport.write(self.request.raw)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()  # uvloop's loop.time() counts whole milliseconds
        probe = self.probe
        if self.head:
            data = self.tail + data  # what came of the head so far
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.tail = data
                return
            probe.head_at = now
            self.head = False
            self.tail = b""
            data = data[end + 4 :]
        window = self.tail + data
        counted = self.request.counted
        count = window.count(counted)
        if count:
            probe.events += count
            probe.arrivals.append((now, probe.events))
            # No byte of a counted end is counted again.
            window = window[window.rfind(counted) + len(counted) :]
        self.tail = window[-(len(counted) - 1) :] if len(counted) > 1 else b""
        # The terminating chunk may come in two reads when the client lags (a send the receive window cut).
        self.end = (self.end + data)[-5:]
        if self.end == b"0\r\n\r\n":
            probe.completed = True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.probe.closed is not None and not self.probe.closed.done():
            self.probe.closed.set_result(None)


def http_request(
    path: str, *, method: str = "GET", body: dict[str, object] | None = None, counted: bytes = SSE_END
) -> Request:
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return Request(head.encode() + b"\r\n" + payload, counted)


async def open_probe(port: int, request: Request) -> tuple[Probe, asyncio.Transport]:
    loop = asyncio.get_running_loop()
    probe = Probe(started=time.perf_counter(), closed=loop.create_future())
    transport, _ = await loop.create_connection(lambda: _ProbeProtocol(request, probe, loop), "127.0.0.1", port)
    return probe, transport


async def run_streams(port: int, request: Request, count: int, *, timeout: float = 60.0) -> list[Probe]:
    """Open `count` streams at once (in bursts the listen backlog can take) and read them to the end."""
    probes: list[Probe] = []
    for start in range(0, count, 250):
        opened = await asyncio.gather(*(open_probe(port, request) for _ in range(min(250, count - start))))
        probes.extend(p for p, _ in opened)
    await asyncio.wait_for(asyncio.gather(*(p.closed for p in probes if p.closed is not None)), timeout)
    return probes
