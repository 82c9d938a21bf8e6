"""`python -m bench --workers N`: how many paced streams 1 and N worker processes hold on time.

Each server is `mock-llm-sse serve --workers W` in a process of its own (its workers are its
children), measured in the same run at the same stream counts, so the N-worker figures are given
as a ratio to the 1-worker baseline rather than as absolute numbers that drift between runs.
"""

from __future__ import annotations

import functools
from pathlib import Path

import httpx

from bench import load, procs
from bench.measures import Fidelity, Figure, fidelity, schedule_of

COUNTS = (1000, 2000, 4000)
STREAM = "/completions?scenario=bench-stream&messages=x"
AGAINST = "1 worker"


async def measure_workers(workers: int, scenarios: Path) -> list[Figure]:
    """Completed streams, p99 lateness and the servers' CPU per stream (all their processes, during
    the measured streams) of `COUNTS` paced streams (20 ms apart) on 1 and `workers` worker
    processes, the N-worker figure against the 1-worker one, and the load client's own read lag
    and CPU per event beside them. Both servers run throughout and
    are measured in turn at each count, so that a change in the machine's other load between two
    counts strikes both alike."""
    request = load.http_request(STREAM)
    ports = {1: procs.free_port(), workers: procs.free_port()}
    servers = {w: procs.start_mock(port, scenarios, "--workers", str(w)) for w, port in ports.items()}
    measured: dict[int, dict[int, Fidelity]] = {1: {}, workers: {}}
    try:
        for w, port in ports.items():
            procs.wait_until_answering(f"http://127.0.0.1:{port}/_mock/health", servers[w], timeout=60)
            _wait_for_every_worker(port, w)
        schedule = await schedule_of(ports[1], request)
        for count in COUNTS:
            for w, port in ports.items():
                server_cpu = functools.partial(procs.tree_cpu_seconds, servers[w].pid)
                measured[w][count] = await fidelity(port, request, count, schedule, server_cpu)
    finally:
        for server in servers.values():
            procs.stop(server)
    figures = []
    for count in COUNTS:
        ours, one = measured[workers][count], measured[1][count]
        name = f"{count:,} streams, {workers} workers"
        target = "<= 20 ms" if count == 2000 else ""
        figures += [
            Figure(f"{name}: completed", "streams", ours.completed, one.completed, "higher", f"= {count}", AGAINST),
            Figure(f"{name}: lateness p99", "ms", ours.lateness_p99_ms, one.lateness_p99_ms, "lower", target, AGAINST),
            Figure(
                f"{name}: CPU per stream",
                "ms",
                ours.server_cpu_s / count * 1000,
                one.server_cpu_s / count * 1000,
                "lower",
                "",
                AGAINST,
            ),
            Figure(
                f"{name}: client's read lag p99", "ms", ours.read_lag_p99_ms, one.read_lag_p99_ms, "lower", "", AGAINST
            ),
            Figure(
                f"{name}: client's CPU per event",
                "us",
                ours.client_cpu_us_per_event,
                one.client_cpu_us_per_event,
                "lower",
                "",
                AGAINST,
            ),
        ]
    return figures


def _wait_for_every_worker(port: int, workers: int, attempts: int = 500) -> None:
    """Until each worker has answered the health check (a new connection each time): the banner
    comes when they listen, a moment before the last of them serves."""
    seen: set[int] = set()
    for _ in range(attempts):
        seen.add(httpx.get(f"http://127.0.0.1:{port}/_mock/health", timeout=10).json()["worker"])
        if len(seen) == workers:
            return
    raise TimeoutError(f"only workers {sorted(seen)} of {workers} answered in {attempts} health checks")
