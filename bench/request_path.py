"""The server's own time from a request to its first write, per streaming endpoint:
`python -m bench.request_path [--requests N] [--profile FILE] [--cpu]`.

The app is called directly in this process (no socket, no uvicorn), with the request `python -m bench
--endpoints` sends for the time to first event (an unpaced stream of `bench-burst`), so that what it
prints moves with the request path alone, far less with the machine's load. Each request is timed
from calling the app to its first `send`; the endpoints take turns, 100 requests at a time, and the
median of each is printed in microseconds. With `--profile`, the same requests run under cProfile
and its statistics are written to FILE (`python -m pstats FILE`).

With `--cpu`, each request is given a `Connection` as our protocol gives one, so its stream plays
straight onto it as under `serve`, and what is timed is CPU time (`time.thread_time`), which another
process's load moves far less than the clock: from the call to the write of the first event, and the
whole request. Each endpoint plays its requests in 5 rounds with the cyclic collector paused (it runs
between them); printed: the least, median and most of the rounds' medians (the whole request: of
their means).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.endpoints import ENDPOINTS, BenchEndpoint
from bench.measures import write_scenarios
from mock_server.http.app import MockApp, create_app
from mock_server.settings import Settings
from mock_server.wire.tcp import CONNECTION_KEY, Connection

SCENARIO = "bench-burst"
TURN = 100
"""Requests of one endpoint before the next takes its turn."""
Message = MutableMapping[str, Any]


@asynccontextmanager
async def running(app: MockApp) -> AsyncIterator[None]:
    """The app between its lifespan's start-up (the tokenizer it builds in the background) and shutdown."""
    loop = asyncio.get_running_loop()
    messages: asyncio.Queue[Message] = asyncio.Queue()
    done: dict[str, asyncio.Future[None]] = {kind: loop.create_future() for kind in ("startup", "shutdown")}

    async def send(message: Message) -> None:
        done[message["type"].split(".")[1]].set_result(None)

    task = loop.create_task(app({"type": "lifespan"}, messages.get, send))
    await messages.put({"type": "lifespan.startup"})
    await done["startup"]
    try:
        yield
    finally:
        await messages.put({"type": "lifespan.shutdown"})
        await done["shutdown"]
        await task


def scope_of(endpoint: BenchEndpoint) -> tuple[dict[str, Any], bytes]:
    """The ASGI scope and body of the bench's request to `endpoint`, as uvicorn would give them."""
    target = urlsplit(endpoint.target(SCENARIO))
    body = endpoint.body(SCENARIO)
    payload = json.dumps(body).encode() if body is not None else b""
    headers = [(b"host", b"127.0.0.1"), (b"connection", b"close")]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": endpoint.route.method,
        "root_path": "",
        "path": target.path,
        "raw_path": target.path.encode(),
        "query_string": target.query.encode(),
        "headers": headers,
    }
    return scope, payload


def body_once(payload: bytes) -> Callable[[], Awaitable[Message]]:
    """An ASGI `receive` that gives `payload` as the whole body, then waits: the client stays until
    the response ends (its watcher is then cancelled)."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await asyncio.Future()
        raise AssertionError("unreachable")

    return receive


async def first_write_us(app: MockApp, scope: dict[str, Any], payload: bytes) -> float:
    """One request's time from calling the app to its first `send`, in microseconds; the response is
    played to its end before this returns."""
    first: list[float] = []

    async def send(message: Message) -> None:
        if not first:
            first.append(time.perf_counter())

    started = time.perf_counter()
    await app({**scope, "state": {}}, body_once(payload), send)
    return (first[0] - started) * 1_000_000


class _Transport:
    """What a stream writes its bytes to, noting the CPU time of the first write (nothing is kept)."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.closing = False

    def write(self, data: bytes) -> None:
        if self.first is None:
            self.first = time.thread_time()

    def writelines(self, parts: list[bytes]) -> None:
        self.write(b"".join(parts))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0


async def first_write_cpu_us(app: MockApp, scope: dict[str, Any], payload: bytes) -> tuple[float, float]:
    """One request played onto a `Connection` as under our protocol (the head held for the first
    chunk, uvicorn's writes of the head and the body's end made as it makes them): the CPU time from
    calling the app to the first write, and to the request's end, in microseconds."""
    transport = _Transport()
    connection = Connection(transport)  # type: ignore[arg-type]  # a transport's writes, no socket

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            fields = b"".join(b"%s: %s\r\n" % field for field in message["headers"])
            connection.write(b"HTTP/1.1 %d OK\r\n%btransfer-encoding: chunked\r\n\r\n" % (message["status"], fields))
            return
        body = message.get("body", b"")
        if body:
            connection.write(b"%x\r\n%b\r\n" % (len(body), body))
        if not message.get("more_body", False):
            connection.write(b"0\r\n\r\n")

    started = time.thread_time()
    await app({**scope, "state": {CONNECTION_KEY: connection}}, body_once(payload), send)
    ended = time.thread_time()
    assert transport.first is not None
    return (transport.first - started) * 1_000_000, (ended - started) * 1_000_000


async def measure_cpu(requests: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per endpoint, the medians of 5 rounds of CPU time to the first write, and the rounds' mean CPU
    time per request (`first_write_cpu_us`)."""
    rounds = 5
    with tempfile.TemporaryDirectory() as folder:
        write_scenarios(Path(folder))
        app = create_app(Settings(scenario_dirs=(Path(folder),), access_log=False))
        results: dict[str, tuple[list[float], list[float]]] = {}
        async with running(app):
            for endpoint in ENDPOINTS:
                scope, payload = scope_of(endpoint)
                for _ in range(TURN):  # warm: caches filled, modules loaded
                    await first_write_cpu_us(app, scope, payload)
                firsts, wholes = [], []
                per_round = max(1, requests // rounds)
                for _ in range(rounds):
                    gc.collect()
                    gc.disable()
                    try:
                        samples = [await first_write_cpu_us(app, scope, payload) for _ in range(per_round)]
                    finally:
                        gc.enable()
                    firsts.append(statistics.median(first for first, _ in samples))
                    wholes.append(statistics.mean(whole for _, whole in samples))
                results[endpoint.label] = (firsts, wholes)
    return results


async def measure(requests: int, profile: Path | None) -> dict[str, float]:
    """The median time to the first write of each endpoint, over `requests` requests each."""
    with tempfile.TemporaryDirectory() as folder:
        write_scenarios(Path(folder))
        app = create_app(Settings(scenario_dirs=(Path(folder),), access_log=False))
        async with running(app):
            samples = await sample(app, requests, profile)
    return {label: statistics.median(values) for label, values in samples.items()}


async def sample(app: MockApp, requests: int, profile: Path | None) -> dict[str, list[float]]:
    """`requests` times to the first write of each endpoint, the endpoints taking turns."""
    requests_of = {endpoint.label: scope_of(endpoint) for endpoint in ENDPOINTS}
    for scope, payload in requests_of.values():  # warm: caches filled, modules loaded
        for _ in range(TURN):
            await first_write_us(app, scope, payload)
    samples: dict[str, list[float]] = {label: [] for label in requests_of}
    profiler = cProfile.Profile() if profile is not None else None
    gc.collect()
    if profiler is not None:
        profiler.enable()
    for _ in range(max(1, requests // TURN)):
        for label, (scope, payload) in requests_of.items():
            for _ in range(TURN):
                samples[label].append(await first_write_us(app, scope, payload))
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per endpoint (default 3000)")
    parser.add_argument("--profile", type=Path, help="run under cProfile and write its statistics here")
    parser.add_argument("--cpu", action="store_true", help="CPU time to the first write, played on a connection")
    options = parser.parse_args()
    import uvloop

    if options.cpu:
        spread = uvloop.run(measure_cpu(options.requests))
        width = max(map(len, spread))
        print(f"{'':<{width}}  to the first write (us)   whole request (us)   least/median/most of 5 rounds")
        for label, (firsts, wholes) in spread.items():
            shown = [f"{min(v):5.1f}/{statistics.median(v):5.1f}/{max(v):5.1f}" for v in (firsts, wholes)]
            print(f"{label:<{width}}  {shown[0]:>24}   {shown[1]:>18}")
        return

    medians = uvloop.run(measure(options.requests, options.profile))
    width = max(map(len, medians))
    for label, median in medians.items():
        print(f"{label:<{width}}  {median:7.1f} us")


if __name__ == "__main__":
    main()
