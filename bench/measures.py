"""What `python -m bench` measures on any server, and the figure each measurement becomes: the
stream scenarios every server under test plays, events per second of one long stream, and how
on time the chunks of many paced streams arrive."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import load

CHUNK_MS = 20
CHUNKS = 50
LONG_CHUNKS = 20_000
THROUGHPUT_RUNS = 5
"""Runs of the zero-delay stream for each server measured: the median is the figure, and every run should
meet the target."""


@dataclass
class Figure:
    name: str
    unit: str
    mock: float
    baseline: float
    better: str  # "higher" or "lower"
    target: str = ""
    against: str = "baseline"
    """What `baseline` holds: the raw ASGI baseline, for the workers' figures 1 worker ("1 worker"), for
    the comparison of the endpoints the fastest one ("fastest endpoint"; `mock` is the slowest), or for
    the proxy's figures the upstream measured directly ("direct")."""
    spread: tuple[float, float] | None = None
    """The least and the most of mock-llm-sse's runs, when `mock` is their median."""

    @property
    def ratio(self) -> float:
        return self.mock / self.baseline if self.baseline else float("nan")

    @property
    def added(self) -> float:
        return self.mock - self.baseline


def slowest_against_fastest(name: str, unit: str, by_endpoint: dict[str, float], target: str) -> Figure:
    """The endpoint with the highest figure against the one with the lowest, both named."""
    slowest = max(by_endpoint, key=by_endpoint.__getitem__)
    fastest = min(by_endpoint, key=by_endpoint.__getitem__)
    return Figure(
        f"{name}: {slowest} / {fastest}",
        unit,
        by_endpoint[slowest],
        by_endpoint[fastest],
        "lower",
        target,
        against="fastest endpoint",
    )


@contextmanager
def client_gc_paused() -> Iterator[None]:
    """The load client's own cyclic collector kept out of a measurement (collected before it): a full
    pass over what the bench holds (captured streams, the probes of hundreds of streams) took longer
    than a whole unpaced stream, which then read as the server's slowness."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def write_scenarios(folder: Path) -> None:
    words = " ".join(f"w{i}" for i in range(CHUNKS))
    (folder / "bench-stream.yaml").write_text(f'reply: "{words}"\nchunk_ms: {CHUNK_MS}\n')
    long_words = " ".join(f"token{i}" for i in range(LONG_CHUNKS))
    (folder / "bench-long.yaml").write_text(f'reply: "{long_words}"\n')
    (folder / "bench-burst.yaml").write_text(f'reply: "{words}"\n')
    (folder / "bench-idle.yaml").write_text('reply: "late"\nfirst_chunk_ms: 600000\nkeepalive_ms: 1000\n')


async def throughput_runs(port: int, request: load.Request, runs: int) -> list[float]:
    """Events a second a client reads from the long stream `request` asks for, in each of `runs` runs."""
    rates = []
    for _ in range(runs):
        (probe,) = await load.run_streams(port, request, 1)
        assert probe.completed
        assert probe.head_at is not None
        rates.append(probe.events / (probe.arrivals[-1][0] - probe.head_at))
    return rates


async def requests_per_second(port: int, path: str, requests: int, concurrency: int) -> float:
    """Requests a second for `requests` streams read to their end, `concurrency` of them open at a
    time, each on a connection of its own; best of 3."""
    request = load.http_request(path)

    async def client(count: int) -> None:
        for _ in range(count):
            (probe,) = await load.run_streams(port, request, 1)
            assert probe.completed

    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        share, extra = divmod(requests, concurrency)
        await asyncio.gather(*(client(share + (i < extra)) for i in range(concurrency)))
        best = max(best, requests / (time.perf_counter() - started))
    return best


@dataclass
class Fidelity:
    completed: int
    gap_p50_ms: float
    gap_p99_ms: float
    lateness_p99_ms: float
    window: tuple[float, float] = (0.0, 0.0)
    """When the measured streams were asked for and when the last ended (Unix times)."""
    read_lag_p99_ms: float = float("nan")
    """How long after reaching the client's socket the client read it (bench.load): its own delay,
    which the lateness does not count."""
    client_cpu_us_per_event: float = float("nan")
    """The load client's CPU time per event read."""
    server_cpu_s: float = float("nan")
    """The server's CPU time during the measured streams, when `fidelity` was told how to read it."""


@dataclass(frozen=True)
class Schedule:
    """How a paced stream is written: after each write, how many events have been sent (`ends`) and
    when that write is due from the first (`due_ms`, a multiple of the pacing)."""

    ends: list[int]
    due_ms: list[float]


async def schedule_of(port: int, request: load.Request) -> Schedule:
    """The writes of one paced stream read alone: reads less than half a chunk apart are one write."""
    (probe,) = await load.run_streams(port, request, 1)
    assert probe.completed, "the paced stream did not complete"
    start = probe.arrivals[0][0]
    ends: list[int] = []
    due_ms: list[float] = []
    last = float("-inf")
    for at, count in probe.arrivals:
        if at - last < CHUNK_MS / 2000 and ends:
            ends[-1] = count
        else:
            ends.append(count)
            due_ms.append(round((at - start) * 1000 / CHUNK_MS) * CHUNK_MS)
        last = at
    return Schedule(ends, due_ms)


async def fidelity(
    port: int,
    request: load.Request,
    streams: int,
    schedule: Schedule,
    server_cpu: Callable[[], float] | None = None,
    warm_up: bool = True,
) -> Fidelity:
    """How on time the writes of `streams` paced streams arrive, all asked for at once by `request`:
    the gap between writes, and each write's lateness against `schedule` from the stream's first.
    `server_cpu` reads the server's CPU seconds so far, for its CPU time during the measured streams.
    With `warm_up`, as many streams are played first and not measured."""
    if warm_up:
        await load.run_streams(port, request, streams, timeout=120)
    # The client's own collector is kept out too: a full pass over what a long bench holds pauses it
    # for tens of milliseconds, and an event it reads late in the same read as the next one is
    # stamped with the next one's arrival, a whole chunk late (p99 at 1,000 streams: 2 ms -> 33-80 ms).
    with client_gc_paused():
        server_before = server_cpu() if server_cpu is not None else float("nan")
        client_before = time.process_time()
        started = time.time()
        probes = await load.run_streams(port, request, streams, timeout=120, stamped=True)
        window = (started, time.time())
        client_cpu_s = time.process_time() - client_before
        server_cpu_s = server_cpu() - server_before if server_cpu is not None else float("nan")
    lags = [lag for probe in probes for lag in probe.read_lags]
    events = sum(probe.events for probe in probes)
    client = {
        "read_lag_p99_ms": percentile(lags, 99) * 1000 if lags else float("nan"),
        "client_cpu_us_per_event": client_cpu_s / events * 1e6 if events else float("nan"),
        "server_cpu_s": server_cpu_s,
    }
    gaps: list[float] = []
    lateness: list[float] = []
    completed = 0
    for probe in probes:
        if not probe.completed or probe.events < schedule.ends[-1]:
            continue
        completed += 1
        times = [probe.event_time(end - 1) for end in schedule.ends]
        first = times[0]
        assert first is not None
        for i, (at, due_ms) in enumerate(zip(times, schedule.due_ms, strict=True)):
            assert at is not None
            lateness.append(at - (first + due_ms / 1000))
            if i:
                previous = times[i - 1]
                assert previous is not None
                gaps.append(at - previous)
    if not gaps:
        return Fidelity(completed, float("nan"), float("nan"), float("nan"), window, **client)
    return Fidelity(
        completed,
        statistics.median(gaps) * 1000,
        percentile(gaps, 99) * 1000,
        percentile(lateness, 99) * 1000,
        window,
        **client,
    )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def print_table(figures: list[Figure]) -> None:
    """The figures against the baseline, then N workers' against 1 worker, the slowest endpoint's against
    the fastest, then the proxy's against the upstream measured directly."""
    groups = (
        ("baseline", "figure", "mock-llm-sse", "baseline"),
        ("1 worker", "more workers", "N workers", "1 worker"),
        ("fastest endpoint", "every endpoint alike: slowest / fastest", "slowest", "fastest"),
    )
    printed = False
    for against, title, ours_column, their_column in groups:
        group = [f for f in figures if f.against == against]
        if not group:
            continue
        header = f"{title:44} {ours_column:>14} {their_column:>12} {'ratio':>7}  target"
        print(f"\n{header}" if printed else header)
        print("-" * len(header))
        printed = True
        for f in group:
            runs = f"  (runs {f.spread[0]:.1f} - {f.spread[1]:.1f})" if f.spread is not None else ""
            print(f"{f.name:44} {f.mock:>10.1f} {f.unit:<3} {f.baseline:>12.1f} {f.ratio:>6.2f}x  {f.target}{runs}")
    proxied = [f for f in figures if f.against == "direct"]
    if proxied:
        header = f"{'the same upstream':55} {'proxied':>21} {'direct':>12} {'ratio':>7} {'added':>10}  target"
        print(f"\n{header}" if printed else header)
        print("-" * len(header))
    for f in proxied:
        added = f"{f.added:>+10.1f}" if f.unit == "ms" else ""
        runs = f"  (runs {f.spread[0]:.1f} - {f.spread[1]:.1f})" if f.spread is not None else ""
        figure = f"{f.name:55} {f.mock:>12.1f} {f.unit:<8} {f.baseline:>12.1f} {f.ratio:>6.2f}x {added:>10}"
        print(f"{figure}  {f.target}{runs}")
