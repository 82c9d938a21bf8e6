"""Run every benchmark: `python -m bench [--quick] [--workers N [--only-workers]]`. Prints a table and
writes bench/results/latest.json.

Every figure is measured for mock-llm-sse and for the raw ASGI baseline (bench/baseline.py) in the
same run, and reported as a value and as a ratio to the baseline, because the machine is shared
and absolute numbers drift between runs; `--workers N` figures likewise against 1 worker (bench/workers.py).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import uvloop

from bench import embeddings, load, procs
from bench.endpoints import ENDPOINTS
from bench.measures import (
    CHUNK_MS,
    THROUGHPUT_RUNS,
    Fidelity,
    Figure,
    Schedule,
    client_gc_paused,
    fidelity,
    print_table,
    schedule_of,
    slowest_against_fastest,
    throughput_runs,
    write_scenarios,
)
from bench.pauses import pauses_within
from bench.proxy import measure_proxy
from bench.startup import cli_start, compile_package, in_process_start
from bench.workers import COUNTS, measure_workers

RESULTS = Path(__file__).parent / "results"
ENDPOINT_STREAMS = (500, 1000)
"""Paced streams at once on each streaming endpoint (`--quick`: the first only)."""
ENDPOINT_ROUNDS = 3
"""Rounds of them per endpoint, taking turns (`--quick`: one)."""
STREAM_LABEL = "GET /completions"
"""The endpoint whose paced streams are measured at every size, and whose stream holds idle connections."""


TTFE_REQUESTS = 200
"""Requests per endpoint and server for the time to first event, one after another."""
TTFE_BATCH = 20
"""... asked of mock-llm-sse and the baseline in turn, so many at a time: a shared machine's load
drifts, and each server's median then comes from the same stretches of it."""


async def time_to_first_event(port: int, request: load.Request, count: int) -> list[float]:
    """From connecting to the first event (us: a tenth of a millisecond is a third of it), for `count`
    requests one after another."""
    samples = []
    for _ in range(count):
        (probe,) = await load.run_streams(port, request, 1)
        first = probe.event_time(0)
        assert first is not None
        samples.append((first - probe.started) * 1_000_000)
    return samples


async def first_event_times(
    mock_port: int, ours: load.Request, base_port: int, theirs: load.Request, count: int
) -> tuple[list[float], list[float]]:
    """`time_to_first_event` of each server, TTFE_BATCH requests of one, then of the other (after a
    batch of each not measured)."""
    await time_to_first_event(mock_port, ours, TTFE_BATCH)
    await time_to_first_event(base_port, theirs, TTFE_BATCH)
    mine: list[float] = []
    base: list[float] = []
    for _ in range(max(1, count // TTFE_BATCH)):
        with client_gc_paused():
            mine += await time_to_first_event(mock_port, ours, TTFE_BATCH)
            base += await time_to_first_event(base_port, theirs, TTFE_BATCH)
    return mine, base


async def memory_of_idle_streams(workdir: Path, frames: dict[str, list[str]], streams: int) -> tuple[float, float]:
    """Each server's RSS (MB) with `streams` streams waiting for their first token, each server
    started for this alone: what the streams hold, not what the runs before left cached (every
    endpoint's 20,000-chunk stream, the embeddings' bodies: some 100-250 MB in either server)."""
    mock_port, baseline_port = procs.free_port(), procs.free_port()
    mock = procs.start_mock(mock_port, workdir / "scenarios")
    baseline = procs.start_baseline(baseline_port, frames, workdir / "idle-frames.json")
    try:
        procs.wait_until_answering(f"http://127.0.0.1:{mock_port}/_mock/health", mock)
        procs.wait_until_answering(f"http://127.0.0.1:{baseline_port}/health", baseline)
        ours = await idle_memory(mock_port, mock.pid, "/completions?scenario=bench-idle&messages=x", streams)
        theirs = await idle_memory(
            baseline_port, baseline.pid, baseline_path("idle", "first_chunk_ms=600000&keepalive_ms=1000"), streams
        )
    finally:
        procs.stop(mock)
        procs.stop(baseline)
    return ours, theirs


async def idle_memory(port: int, pid: int, path: str, streams: int) -> float:
    opened = []
    for start in range(0, streams, 250):
        batch = await asyncio.gather(
            *(load.open_probe(port, load.http_request(path)) for _ in range(min(250, streams - start)))
        )
        opened.extend(batch)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(p.events < 1 for p, _ in opened):
        await asyncio.sleep(0.2)  # every stream has had its first keep-alive ping
    rss = procs.rss_mb(pid)
    for _, transport in opened:
        transport.close()
    await asyncio.sleep(1)
    return rss


@dataclass
class Servers:
    """mock-llm-sse and the baseline, serving the same stream bytes, and how each paced stream is written."""

    mock_port: int
    mock: subprocess.Popen[bytes]
    baseline_port: int
    baseline: subprocess.Popen[bytes]
    frames: dict[str, list[str]]
    """What the baseline serves, by name."""
    schedules: dict[str, Schedule]
    """By endpoint label: how mock-llm-sse writes the paced stream, which the baseline writes the same way."""
    mock_pauses: Path
    baseline_pauses: Path
    """Where each server's collector pauses are written (bench/pauses.py)."""

    def pause_figures(self, label: str, ours: list[Fidelity], theirs: list[Fidelity]) -> list[Figure]:
        """The collector's full passes and its longest pause in each server during its measured streams
        (all of its rounds')."""
        mine = pauses_within(self.mock_pauses, [f.window for f in ours])
        base = pauses_within(self.baseline_pauses, [f.window for f in theirs])
        return [
            Figure(f"{label}: full gc passes", "", mine.full, base.full, "lower"),
            Figure(f"{label}: longest gc pause", "ms", mine.longest_ms, base.longest_ms, "lower", "<= 5 ms"),
            Figure(f"{label}: its CPU time", "ms", mine.longest_cpu_ms, base.longest_cpu_ms, "lower"),
        ]


@asynccontextmanager
async def servers(workdir: Path) -> AsyncIterator[Servers]:
    """mock-llm-sse and the baseline, each in its own process, serving the same stream bytes."""
    mock_port = procs.free_port()
    mock_pauses, baseline_pauses = workdir / "mock-pauses.txt", workdir / "baseline-pauses.txt"
    mock = procs.start_mock(mock_port, workdir / "scenarios", pauses=mock_pauses)
    procs.wait_until_answering(f"http://127.0.0.1:{mock_port}/_mock/health", mock)
    base = f"http://127.0.0.1:{mock_port}"
    frames = {}
    schedules = {}
    for endpoint in ENDPOINTS:
        schedule = await schedule_of(mock_port, endpoint.request("bench-stream"))
        long_groups = endpoint.capture_groups(base, "bench-long")
        paced_groups = endpoint.capture_groups(base, "bench-stream", schedule.ends)
        if long_groups is not None and paced_groups is not None:
            frames[endpoint.label] = long_groups
            frames[paced(endpoint.label)] = paced_groups
            schedules[endpoint.label] = schedule
    frames["stream"] = frames[paced(STREAM_LABEL)]
    frames.update(embeddings.captured_answers(base))
    frames["idle"] = frames["stream"]
    baseline_port = procs.free_port()
    baseline = procs.start_baseline(baseline_port, frames, workdir / "frames.json", baseline_pauses)
    try:
        procs.wait_until_answering(f"http://127.0.0.1:{baseline_port}/health", baseline)
        yield Servers(mock_port, mock, baseline_port, baseline, frames, schedules, mock_pauses, baseline_pauses)
    finally:
        procs.stop(mock)
        procs.stop(baseline)


def median_figure(name: str, unit: str, ours: list[float], theirs: list[float], better: str, target: str) -> Figure:
    """The median of each server's runs, with the least and the most of ours beside it."""
    return Figure(
        name, unit, statistics.median(ours), statistics.median(theirs), better, target, spread=(min(ours), max(ours))
    )


def baseline_path(label: str, query: str = "") -> str:
    return "/" + label.replace(" ", "%20").replace("/", "%2F") + (f"?{query}" if query else "")


def paced(label: str) -> str:
    """The name the baseline serves an endpoint's paced stream (bench-stream's) under."""
    return f"{label} paced"


async def endpoint_figures(running: Servers) -> list[Figure]:
    """Each streaming endpoint's throughput and time to first event, against the baseline serving the
    same writes."""
    figures: list[Figure] = []
    mock_port, base_port = running.mock_port, running.baseline_port
    for endpoint in ENDPOINTS:
        label = endpoint.label
        schedule = running.schedules.get(label)
        if schedule is None:
            print(f"  {label}: not served, skipped", file=sys.stderr)
            continue
        counted = endpoint.request("bench-long").counted
        # Each endpoint from an empty journal, so that none is judged in another's shadow (the journal's
        # records are what a full collection of the cyclic collector walks: see the README).
        httpx.post(f"http://127.0.0.1:{mock_port}/_mock/reset")
        with client_gc_paused():
            ours = await throughput_runs(mock_port, endpoint.request("bench-long"), THROUGHPUT_RUNS)
            theirs = await throughput_runs(
                base_port, load.http_request(baseline_path(label), counted=counted), THROUGHPUT_RUNS
            )
        target = ">= 0.9x" if label == "GET /completions" else ">= 0.8x"
        figures.append(median_figure(f"throughput {label}", "events/s", ours, theirs, "higher", f"every run {target}"))
        # The first event of a stream with no pacing (the whole stream follows at once), from a server
        # with nothing else to do: each request has ended before the next is sent.
        burst = endpoint.request("bench-burst")
        mirrored = load.http_request(
            baseline_path(paced(label)),
            method=endpoint.route.method,
            body=endpoint.body("bench-burst"),
            counted=counted,
        )
        ours_t, theirs_t = await first_event_times(mock_port, burst, base_port, mirrored, TTFE_REQUESTS)
        figures.append(median_figure(f"time to first event {label}", "us", ours_t, theirs_t, "lower", "<= 2x"))
    return figures


async def endpoint_lateness(running: Servers, count: int, rounds: int) -> list[Figure]:
    """The p99 lateness of `count` paced streams on each streaming endpoint, in `rounds` rounds that
    take every endpoint in turn (each round starting one endpoint later), so that a stretch of the
    shared machine's load falls on one round of an endpoint, not on all of them: an endpoint's figure is
    the median of its rounds (the least and the most beside it), the baseline's from the first round.
    Beside it each server's CPU time per stream. Then the slowest endpoint against the fastest, in
    lateness and in CPU: the same work per chunk on every path shows as the same figures."""
    mock_port, base_port = running.mock_port, running.baseline_port
    measured = [endpoint for endpoint in ENDPOINTS if endpoint.label in running.schedules]
    ours: dict[str, list[Fidelity]] = {endpoint.label: [] for endpoint in measured}
    theirs: dict[str, list[Fidelity]] = {endpoint.label: [] for endpoint in measured}
    mock_cpu = functools.partial(procs.cpu_seconds, running.mock.pid)
    base_cpu = functools.partial(procs.cpu_seconds, running.baseline.pid)
    for round_ in range(rounds):
        start = round_ % len(measured)
        for endpoint in measured[start:] + measured[:start]:
            label, schedule = endpoint.label, running.schedules[endpoint.label]
            # Each from an empty journal, so that none is judged in another's shadow (the journal's
            # records are what a full collection of the cyclic collector walks: see the README).
            httpx.post(f"http://127.0.0.1:{mock_port}/_mock/reset")
            first = round_ == 0
            request = endpoint.request("bench-stream")
            ours[label].append(await fidelity(mock_port, request, count, schedule, mock_cpu, warm_up=first))
            if first:
                mirrored = baseline_path(paced(label), f"chunk_ms={CHUNK_MS}")
                theirs[label].append(
                    await fidelity(
                        base_port, load.http_request(mirrored, counted=request.counted), count, schedule, base_cpu
                    )
                )
    figures: list[Figure] = []
    lateness: dict[str, float] = {}
    cpu: dict[str, float] = {}
    target = "<= 5 ms" if count == 500 else "<= 0.5x" if count == 1000 else ""
    for endpoint in measured:
        label = endpoint.label
        p99s = [f.lateness_p99_ms for f in ours[label]]
        cpus = [f.server_cpu_s / count * 1000 for f in ours[label]]
        lateness[label], cpu[label] = statistics.median(p99s), statistics.median(cpus)
        base = theirs[label][0]
        name = f"{count} streams {label}"
        figures += [
            median_figure(f"{name}: lateness p99", "ms", p99s, [base.lateness_p99_ms], "lower", target),
            median_figure(f"{name}: CPU per stream", "ms", cpus, [base.server_cpu_s / count * 1000], "lower", ""),
            *running.pause_figures(name, ours[label], theirs[label]),
        ]
    return [
        *figures,
        slowest_against_fastest(f"{count} streams lateness p99", "ms", lateness, "<= 1.5x"),
        slowest_against_fastest(f"{count} streams CPU per stream", "ms", cpu, ""),
    ]


async def measure(quick: bool, workdir: Path, only_endpoints: bool = False) -> list[Figure]:
    figures: list[Figure] = []
    async with servers(workdir) as running:
        mock_port, base_port = running.mock_port, running.baseline_port
        figures += await endpoint_figures(running)
        for count in ENDPOINT_STREAMS[:1] if quick else ENDPOINT_STREAMS:
            figures += await endpoint_lateness(running, count, 1 if quick else ENDPOINT_ROUNDS)
        if only_endpoints:
            return figures

        for encoding, ours_s, theirs_s in await embeddings.timings(mock_port, base_port, baseline_path):
            label = f"embeddings {embeddings.INPUTS} x {embeddings.DIMENSIONS}, {encoding}"
            figures.append(Figure(label, "ms", ours_s * 1000, theirs_s * 1000, "lower", "< 1000 ms"))

        stream = "/completions?scenario=bench-stream&messages=x"
        schedule = running.schedules[STREAM_LABEL]
        for count in (500,) if quick else (500, 1000, 2000):
            ours_f = await fidelity(mock_port, load.http_request(stream), count, schedule)
            theirs_f = await fidelity(
                base_port, load.http_request(baseline_path("stream", f"chunk_ms={CHUNK_MS}")), count, schedule
            )
            target = "<= 5 ms" if count == 500 else "<= 0.5x" if count == 1000 else ""
            figures += [
                Figure(
                    f"{count} streams: completed",
                    "streams",
                    ours_f.completed,
                    theirs_f.completed,
                    "higher",
                    f"= {count}",
                ),
                Figure(f"{count} streams: gap p50", "ms", ours_f.gap_p50_ms, theirs_f.gap_p50_ms, "lower"),
                Figure(f"{count} streams: gap p99", "ms", ours_f.gap_p99_ms, theirs_f.gap_p99_ms, "lower"),
                Figure(
                    f"{count} streams: lateness p99",
                    "ms",
                    ours_f.lateness_p99_ms,
                    theirs_f.lateness_p99_ms,
                    "lower",
                    target,
                ),
                *running.pause_figures(f"{count} streams", [ours_f], [theirs_f]),
            ]

        frames = {"idle": running.frames["stream"]}
    streams = 1000 if quick else 5000
    ours_m, theirs_m = await memory_of_idle_streams(workdir, frames, streams)
    figures.append(Figure(f"RSS with {streams} open streams", "MB", ours_m, theirs_m, "lower", "< 300 MB"))

    runs = 5 if quick else 20
    _, later = in_process_start(runs)
    figures.append(
        Figure("MockServer start-to-ready", "ms", later.median_ms, later.baseline_median_ms, "lower", "<= 10 ms")
    )
    answer, _ = cli_start(3 if quick else 10, workdir / "scenarios", workdir / "frames-cli.json")
    figures.append(
        Figure("CLI start to first answer", "ms", answer.median_ms, answer.baseline_median_ms, "lower", "<= 2x")
    )
    figures += await measure_proxy(quick, workdir / "scenarios")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer streams and runs (a smoke run, about 3 minutes)")
    parser.add_argument(
        "--endpoints",
        action="store_true",
        help="only each streaming endpoint's throughput and lateness (about 7 minutes)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=f"also serve {', '.join(f'{c:,}' for c in COUNTS)} paced streams with `serve --workers 1` and "
        "`--workers N`: completed streams and p99 lateness, N workers against 1",
    )
    parser.add_argument("--only-workers", action="store_true", help="only the --workers figures (about 5 minutes)")
    args = parser.parse_args()
    if args.only_workers and args.workers is None:
        parser.error("--only-workers needs --workers N")
    if args.workers is not None and args.workers < 2:
        parser.error(f"--workers {args.workers}: give 2 or more, to be measured against 1")
    compile_package()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "scenarios").mkdir()
        write_scenarios(workdir / "scenarios")
        # uvloop keeps the load client light, so that it is not the bottleneck it measures.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            figures = [] if args.only_workers else runner.run(measure(args.quick, workdir, args.endpoints))
            if args.workers is not None:
                figures += runner.run(measure_workers(args.workers, workdir / "scenarios"))
    print_table(figures)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps([{**asdict(f), "ratio": f.ratio, "added": f.added} for f in figures], indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
