"""The proxy's cost: one upstream measured directly and through `serve --upstream`, in the same run.

The upstream is a mock-llm-sse server in a process of its own; the proxy is a second one, started
with `--upstream URL --upstream-only` so that it forwards every model request. Each figure is taken
from the upstream directly, then through the proxy, and reported as a value and as a ratio to the
direct figure. Both servers and the load client share the machine's cores; when `taskset` can, the
figures are taken again with the upstream on one core and the proxy on another.

Any proxy adds a hop: a third busy process, and a read and a write for each event. So that what
the hop costs on this machine is told apart from what this proxy adds to it, every figure is also
taken through a bare TCP relay (`bench/relay.py`, on the proxy's core when pinned; rows "relay"),
and a paced stream's CPU is split into its request's share and its events' (`CPU per event`).

`python -m bench` includes them; `python -m bench.proxy [--quick]` takes them alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
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
    THROUGHPUT_RUNS,
    Fidelity,
    Figure,
    client_gc_paused,
    fidelity,
    print_table,
    requests_per_second,
    schedule_of,
    throughput_runs,
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
    relay: int
    upstream_pid: int
    proxy_pid: int
    relay_pid: int


@contextmanager
def upstream_and_proxy(scenarios: Path, cores: tuple[str, str] | None) -> Iterator[Pair]:
    """The upstream (serving `scenarios`), a proxy to it and a bare TCP relay to it, each in its own
    process; with `cores`, the upstream on the first, the proxy and the relay on the second."""
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
        relay_port = procs.free_port()
        relay = start_relay(relay_port, upstream_port, cpus=cores[1] if cores else None)
        started.append(relay)
        procs.wait_until_answering(f"http://127.0.0.1:{relay_port}/_mock/health", relay)
        yield Pair(upstream_port, proxy_port, relay_port, upstream.pid, proxy.pid, relay.pid)
    finally:
        for process in started:
            procs.stop(process)


def start_relay(port: int, upstream_port: int, cpus: str | None) -> subprocess.Popen[bytes]:
    """`bench/relay.py` in a process of its own, on the cores `cpus` (taskset's list) when given."""
    pinned = ["taskset", "--cpu-list", cpus] if cpus is not None else []
    command = [*pinned, sys.executable, "-m", "bench.relay", "--port", str(port), "--upstream-port", str(upstream_port)]
    return subprocess.Popen(command, cwd=procs.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def measure_proxy(quick: bool, scenarios: Path) -> list[Figure]:
    """The proxy's figures with the cores shared, then (when it can) with the upstream and the proxy
    pinned to a core each, the load client on the upstream's."""
    setups: list[tuple[str, tuple[str, str] | None]] = [("proxy", None)]
    if procs.can_pin():
        first, second = sorted(os.sched_getaffinity(0))[:2]
        setups.append((f"proxy, cores {first}|{second}", (str(first), str(second))))
    figures: list[Figure] = []
    for label, cores in setups:
        with upstream_and_proxy(scenarios, cores) as pair, client_on(cores[0] if cores else None):
            figures += await compare(label, pair, quick)
    return figures


@contextmanager
def client_on(core: str | None) -> Iterator[None]:
    """This process (the load client) on `core` alone meanwhile, when given. Left to the scheduler, it
    ran beside the proxy in some runs and beside the upstream in others: a stream read directly had a
    core to itself, one read through the proxy shared one, and which one decided the figure."""
    if core is None:
        yield
        return
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(core)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)


@dataclass
class Way:
    """One way to the upstream's streams: through the proxy, through the relay, or directly."""

    port: int
    pid: int
    """The process whose CPU the way costs: the proxy's, the relay's, the upstream's."""
    cpu_burst: float = 0.0
    cpu_paced: float = 0.0


async def compare(label: str, pair: Pair, quick: bool) -> list[Figure]:
    """Throughput, requests a second and the lateness of paced streams, directly, through the proxy and
    through the relay; and what each costs the proxy's (the relay's) CPU against what it costs the
    upstream's when asked directly."""
    proxy, relay, direct = (
        Way(pair.proxy, pair.proxy_pid),
        Way(pair.relay, pair.relay_pid),
        Way(pair.upstream, pair.upstream_pid),
    )
    ways = (proxy, relay, direct)
    # Each way's runs in turn, so that a stretch of the shared machine's load falls on one run of each
    # way, not on all the runs of one; and the client's own collector kept out of them.
    long_stream = load.http_request(LONG)
    rates: tuple[list[float], ...] = ([], [], [])
    with client_gc_paused():
        for _ in range(THROUGHPUT_RUNS):
            for way, runs in zip(ways, rates, strict=True):
                runs += await throughput_runs(way.port, long_stream, 1)
    requests, concurrency = (400, 20) if quick else (2000, 50)
    per_second = []
    for way in ways:
        way.cpu_burst, rps = await on_cpu(way.pid, requests_per_second(way.port, BURST, requests, concurrency))
        per_second.append(rps)
    per_request = 1000 / (3 * requests)  # requests_per_second takes the best of 3 rounds
    # The machine is shared and one round's p99 swings by tens of milliseconds: the median of rounds
    # taken in turn, through the proxy, the relay and directly.
    paced = load.http_request(PACED)
    schedule = await schedule_of(pair.upstream, paced)
    rounds: list[list[Fidelity]] = [[], [], []]
    for _ in range(1 if quick else 3):
        for way, taken in zip(ways, rounds, strict=True):
            spent, fidelity_ = await on_cpu(way.pid, fidelity(way.port, paced, STREAMS, schedule))
            way.cpu_paced += spent
            taken.append(fidelity_)
    ours, relayed, theirs = (median_round(taken) for taken in rounds)
    per_stream = 1000 / (2 * STREAMS * len(rounds[0]))  # fidelity plays a warm-up round first

    def per_event(way: Way) -> float:
        # A paced stream costs what an unpaced one does, plus a write (through a hop, a read and a
        # write) for each of its events on its own: that difference, per event, is the hop's own cost.
        return (way.cpu_paced * per_stream - way.cpu_burst * per_request) * 1000 / CHUNKS

    figures: list[Figure] = []
    for name, way, fidelity_, rate, rps in (
        (label, proxy, ours, rates[0], per_second[0]),
        (label.replace("proxy", "relay", 1), relay, relayed, rates[1], per_second[1]),
    ):
        # The targets are the proxy's; the relay's figures are there to set them beside.
        more, late = (">= 0.8x", "<= +1 ms") if way is proxy else ("", "")
        streams = f"{name}: {STREAMS} streams at {CHUNK_MS} ms"
        figures += [
            vs_direct(
                f"{name}: throughput, {LONG_CHUNKS:,} chunks",
                "events/s",
                statistics.median(rate),
                statistics.median(rates[2]),
                "higher",
                more,
                spread=(min(rate), max(rate)),
            ),
            vs_direct(
                f"{name}: streams of {CHUNKS} chunks, {concurrency} at a time",
                "req/s",
                rps,
                per_second[2],
                "higher",
                more,
            ),
            vs_direct(
                f"{name}: CPU per stream of {CHUNKS} chunks",
                "ms CPU",
                way.cpu_burst * per_request,
                direct.cpu_burst * per_request,
            ),
            vs_direct(
                f"{streams}: completed", "streams", fidelity_.completed, theirs.completed, "higher", f"= {STREAMS}"
            ),
            vs_direct(f"{streams}: gap p99", "ms", fidelity_.gap_p99_ms, theirs.gap_p99_ms, "lower"),
            vs_direct(
                f"{streams}: lateness p99",
                "ms",
                fidelity_.lateness_p99_ms,
                theirs.lateness_p99_ms,
                "lower",
                late,
            ),
            vs_direct(
                f"{streams}: CPU per stream", "ms CPU", way.cpu_paced * per_stream, direct.cpu_paced * per_stream
            ),
            vs_direct(f"{streams}: CPU per event, request aside", "us CPU", per_event(way), per_event(direct)),
        ]
    return figures


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


def vs_direct(
    name: str,
    unit: str,
    proxied: float,
    direct: float,
    better: str = "lower",
    target: str = "",
    spread: tuple[float, float] | None = None,
) -> Figure:
    return Figure(name, unit, proxied, direct, better, target, against="direct", spread=spread)


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
