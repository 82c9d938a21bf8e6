"""What each state store costs a request: `python -m bench.state [--redis URL]`.

A request's store work is timed as the server does it: its journal record opened and finished,
and (for a scenario that counts) one atomic update of its counters. Each store is measured in the
same run, and reported as microseconds per request and as a ratio to the in-process memory store.
Without `--redis`, a redis-server is started on a free port when the binary is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from mock_server.journal.journal import Journal, MemoryLog
from mock_server.store import open_store
from mock_server.store.counters import Counters, MemoryCounters, counter_key
from mock_server.wire.outcome import Outcome

REQUESTS = 2000
HEADERS = [(b"content-type", b"application/json"), (b"authorization", b"Bearer sk-bench-key-0000")]
BODY = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hello " * 20}]}


async def per_request_us(journal: Journal, counters: Counters, requests: int, *, counted: bool) -> float:
    """The median over five rounds of the mean time one request's store work takes, in microseconds."""

    def add_one(values: list[Any]) -> tuple[list[Any], int]:
        count = (values[0] or 0) + 1
        return [count], count

    rounds = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(requests // 5):
            entry = await journal.open(method="POST", path="/v1/chat/completions", query=[], headers=HEADERS, body=BODY)
            if counted:
                await counters.update((counter_key("chosen", "bench"),), add_one)
            entry.finish(200, Outcome.COMPLETED, 12)
            await asyncio.sleep(0)  # the end's write, begun in the background, goes out
        rounds.append((time.perf_counter() - began) / (requests // 5) * 1e6)
    return sorted(rounds)[2]


async def measure(state: str, counted: bool) -> float:
    store = open_store(state, 1000, 64 << 20)
    if store is None:
        return await per_request_us(Journal(MemoryLog()), MemoryCounters(), REQUESTS, counted=counted)
    try:
        await store.start()
        return await per_request_us(Journal(store), store, REQUESTS, counted=counted)
    finally:
        await store.aclose()


def _redis_server() -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return process, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="a Redis to measure (default: a redis-server started here)")
    args = parser.parse_args()
    started = None if args.redis else _redis_server()
    redis_url = args.redis or (started[1] if started else None)
    with tempfile.TemporaryDirectory() as workdir:
        states = {"memory": "memory", "sqlite": f"sqlite:{Path(workdir) / 'state.sqlite3'}"}
        if redis_url:
            states["redis"] = redis_url
        try:
            print(f"{'store':8} {'record only us':>15} {'ratio':>7} {'with counters us':>17} {'ratio':>7}")
            base: dict[bool, float] = {}
            for name, state in states.items():
                figures = []
                for counted in (False, True):
                    us = asyncio.run(measure(state, counted))
                    base.setdefault(counted, us)
                    figures.append(f"{us:15.1f} {us / base[counted]:6.1f}x")
                print(f"{name:8} {figures[0]} {figures[1]:>25}")
        finally:
            if started is not None:
                started[0].terminate()
                started[0].wait(10)


if __name__ == "__main__":
    main()
