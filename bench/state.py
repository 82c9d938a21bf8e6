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
import tempfile
import time
from pathlib import Path
from typing import Any

from mock_server.counters import MemoryCounters, Plan, counter_key
from mock_server.journal.journal import Journal
from mock_server.journal.log import MemoryLog
from mock_server.store import open_store
from mock_server.store.shared import SharedStore
from mock_server.wire.outcome import Outcome
from tests.stores import RedisServer

REQUESTS = 2000
HEADERS = [(b"content-type", b"application/json"), (b"authorization", b"Bearer sk-bench-key-0000")]
BODY = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hello " * 20}]}


async def per_request_us(journal: Journal, store: SharedStore | None, *, counted: bool) -> float:
    """The median over five rounds of the mean time one request's store work takes, in microseconds:
    its record kept with its counters' plan (`MockState.begin`), then finished."""
    counters = store if store is not None else MemoryCounters()
    rounds = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(REQUESTS // 5):
            entry = journal.new_entry(method="POST", path="/v1/chat/completions", query=[], headers=HEADERS, body=BODY)
            plan = Plan()
            if counted:
                plan.add((counter_key("chosen", "bench"),), _add_one)
            if store is not None:
                await store.begin(entry, plan.keys, plan.change)
            else:
                await counters.update(plan.keys, plan.change)
                await journal.keep(entry)
            entry.finish(200, Outcome.COMPLETED, 12)
            await asyncio.sleep(0)  # the end's write, begun in the background, goes out
        rounds.append((time.perf_counter() - began) / (REQUESTS // 5) * 1e6)
    return sorted(rounds)[2]


def _add_one(values: list[Any]) -> tuple[list[Any], int]:
    count = (values[0] or 0) + 1
    return [count], count


async def measure(state: str, counted: bool) -> float:
    store = open_store(state, 1000, 64 << 20)
    if store is None:
        return await per_request_us(Journal(MemoryLog()), None, counted=counted)
    try:
        await store.start()
        return await per_request_us(Journal(store), store, counted=counted)
    finally:
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="a Redis to measure (default: a redis-server started here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        states = {"memory": "memory", "sqlite": f"sqlite:{Path(workdir) / 'state.sqlite3'}"}
        started = None
        if args.redis:
            states["redis"] = args.redis
        elif shutil.which("redis-server"):
            started = RedisServer(Path(workdir)).start()
            states["redis"] = started.url
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
                started.stop()


if __name__ == "__main__":
    main()
