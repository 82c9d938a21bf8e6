"""The proxy's cost: one upstream measured directly and through `serve --upstream`, in the same run.

The upstream is a mock-llm-sse server in a process of its own; the proxy is a second one, started
with `--upstream URL --upstream-only` so that it forwards every model request. Each figure is taken
from the upstream directly, then through the proxy, and reported as a value and as a ratio to the
direct figure. Both servers and the load client share the machine's cores; when `taskset` can, the
figures are taken again with the upstream on one core and the proxy on another.

`python -m bench` includes them; `python -m bench.proxy [--quick]` takes them alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import uvloop

from bench import load, procs
from bench.measures import (
    CHUNK_MS,
    CHUNKS,
    LONG_CHUNKS,
    Fidelity,
    Figure,
    fidelity,
    print_table,
    requests_per_second,
    schedule_of,
    throughput,
    write_scenarios,
)

# The model names the scenario: the proxy forwards a request as it came, less `scenario=` and the
# other parameters that speak to the proxy itself.
LONG = "/completions?model=bench-long&messages=x"
BURST = "/completions?model=bench-burst&messages=x"
PACED = "/completions?model=bench-stream&messages=x"
STREAMS = 500
T = TypeVar("T")


@dataclass(frozen=True)
class Pair:
    """An upstream and a proxy to it: their ports and processes."""

    upstream: int
    proxy: int
    upstream_pid: int
    proxy_pid: int


@contextmanager
def upstream_and_proxy(scenarios: Path, cores: tuple[str, str] | None) -> Iterator[Pair]:
    """The upstream (serving `scenarios`) and a proxy to it, each in its own process, on a core each
    with `cores`."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        upstream_port = procs.free_port()
        upstream = procs.start_mock(upstream_port, scenarios, cpus=cores[0] if cores else None)
        started.append(upstream)
        procs.wait_until_answering(f"http://127.0.0.1:{upstream_port}/_mock/health", upstream)
        proxy_port = procs.free_port()
        options = ("--upstream", f"http://127.0.0.1:{upstream_port}", "--upstream-only")
        proxy = procs.start_mock(proxy_port, scenarios, *options, cpus=cores[1] if cores else None)
        started.append(proxy)
        procs.wait_until_answering(f"http://127.0.0.1:{proxy_port}/_mock/health", proxy)
        yield Pair(upstream_port, proxy_port, upstream.pid, proxy.pid)
    finally:
        for process in started:
            procs.stop(process)


async def measure_proxy(quick: bool, scenarios: Path) -> list[Figure]:
    """The proxy's figures with the cores shared, then (when it can) with the upstream and the proxy
    pinned to a core each."""
    setups: list[tuple[str, tuple[str, str] | None]] = [("proxy", None)]
    if procs.can_pin():
        first, second = sorted(os.sched_getaffinity(0))[:2]
        setups.append((f"proxy, cores {first}|{second}", (str(first), str(second))))
    figures: list[Figure] = []
    for label, cores in setups:
        with upstream_and_proxy(scenarios, cores) as pair:
            figures += await compare(label, pair, quick)
    return figures


async def compare(label: str, pair: Pair, quick: bool) -> list[Figure]:
    """Throughput, requests a second and the lateness of paced streams, directly and through the
    proxy; and what each costs the proxy's CPU against what it costs the upstream's when asked directly."""
    figures = [
        vs_direct(
            f"{label}: throughput, {LONG_CHUNKS:,} chunks",
            "events/s",
            await throughput(pair.proxy, load.http_request(LONG)),
            await throughput(pair.upstream, load.http_request(LONG)),
            "higher",
            ">= 0.8x",
        )
    ]
    requests, concurrency = (400, 20) if quick else (2000, 50)
    proxied_cpu, proxied_rps = await on_cpu(
        pair.proxy_pid, requests_per_second(pair.proxy, BURST, requests, concurrency)
    )
    direct_cpu, direct_rps = await on_cpu(
        pair.upstream_pid, requests_per_second(pair.upstream, BURST, requests, concurrency)
    )
    per_request = 1000 / (3 * requests)  # requests_per_second takes the best of 3 rounds
    figures += [
        vs_direct(
            f"{label}: streams of {CHUNKS} chunks, {concurrency} at a time",
            "req/s",
            proxied_rps,
            direct_rps,
            "higher",
            ">= 0.8x",
        ),
        vs_direct(
            f"{label}: CPU per stream of {CHUNKS} chunks", "ms CPU", proxied_cpu * per_request, direct_cpu * per_request
        ),
    ]
    # The machine is shared and one round's p99 swings by tens of milliseconds: the median of rounds
    # taken in turn, through the proxy and directly.
    paced = load.http_request(PACED)
    schedule = await schedule_of(pair.upstream, paced)
    rounds: list[tuple[Fidelity, Fidelity]] = []
    cpu = [0.0, 0.0]
    for _ in range(1 if quick else 3):
        spent, ours = await on_cpu(pair.proxy_pid, fidelity(pair.proxy, paced, STREAMS, schedule))
        cpu[0] += spent
        spent, theirs = await on_cpu(pair.upstream_pid, fidelity(pair.upstream, paced, STREAMS, schedule))
        cpu[1] += spent
        rounds.append((ours, theirs))
    ours, theirs = (median_round([r[i] for r in rounds]) for i in (0, 1))
    per_stream = 1000 / (2 * STREAMS * len(rounds))  # fidelity plays a warm-up round first
    streams = f"{label}: {STREAMS} streams at {CHUNK_MS} ms"
    return [
        *figures,
        vs_direct(f"{streams}: completed", "streams", ours.completed, theirs.completed, "higher", f"= {STREAMS}"),
        vs_direct(f"{streams}: gap p99", "ms", ours.gap_p99_ms, theirs.gap_p99_ms, "lower"),
        vs_direct(f"{streams}: lateness p99", "ms", ours.lateness_p99_ms, theirs.lateness_p99_ms, "lower", "<= +1 ms"),
        vs_direct(f"{streams}: CPU per stream", "ms CPU", cpu[0] * per_stream, cpu[1] * per_stream),
    ]


async def on_cpu(pid: int, measuring: Awaitable[T]) -> tuple[float, T]:
    """The CPU seconds process `pid` spends while `measuring` runs, and its result."""
    before = procs.cpu_seconds(pid)
    result = await measuring
    return procs.cpu_seconds(pid) - before, result


def median_round(rounds: list[Fidelity]) -> Fidelity:
    """Each figure's median over `rounds`; completed streams: the fewest."""
    return Fidelity(
        min(r.completed for r in rounds),
        statistics.median(r.gap_p50_ms for r in rounds),
        statistics.median(r.gap_p99_ms for r in rounds),
        statistics.median(r.lateness_p99_ms for r in rounds),
    )


def vs_direct(name: str, unit: str, proxied: float, direct: float, better: str = "lower", target: str = "") -> Figure:
    return Figure(name, unit, proxied, direct, better, target, against="direct")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenarios = Path(tmp)
        write_scenarios(scenarios)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            figures = runner.run(measure_proxy(args.quick, scenarios))
    print_table(figures)


if __name__ == "__main__":
    main()
