"""Run every benchmark: `python -m bench [--quick]`. Prints a table and writes bench/results/latest.json.

Every figure is measured for mock-llm-sse and for the raw ASGI baseline (bench/baseline.py) in the
same run, and reported as a value and as a ratio to the baseline, because the machine is shared
and absolute numbers drift between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlencode

import httpx
import uvicorn
import uvloop

from bench import load, procs
from bench.baseline import make_app
from bench.measures import CHUNK_MS, Figure, fidelity, print_table, throughput, write_scenarios
from bench.proxy import measure_proxy
from mock_server.http.routes import MODEL_ROUTES

RESULTS = Path(__file__).parent / "results"


# Streaming endpoints compared for throughput: (label, method, path, JSON body), from the server's table.
ENDPOINTS = [
    (
        f"{route.method} {route.path}",
        route.method,
        f"{route.path}?{urlencode(route.example('bench-long', True, 'x'))}" if not route.reads_body else route.path,
        None if not route.reads_body else route.example("bench-long", True, "x"),
    )
    for route in MODEL_ROUTES
    if route.path != "/completions" or not route.reads_body  # POST /completions plays what GET does
]


def capture_groups(base: str, method: str, path: str, body: dict[str, object] | None) -> list[str] | None:
    """The events of a stream from mock-llm-sse, grouped as it writes them with a delay between chunks:
    the opening with the first chunk, each later chunk, the finish with the end marker."""
    headers = {"x-api-key": "x", "anthropic-version": "2023-06-01"}
    response = httpx.request(method, base + path, json=body, headers=headers, timeout=60)
    if response.status_code != 200:
        return None
    events = [e + "\n\n" for e in response.text.split("\n\n") if e]
    return ["".join(events[:2]), *events[2:-2], "".join(events[-2:])]


async def time_to_first_event(port: int, path: str, count: int) -> float:
    samples = []
    for _ in range(count):
        (probe,) = await load.run_streams(port, load.http_request(path), 1)
        first = probe.event_time(0)
        assert first is not None
        samples.append(first - probe.started)
    return statistics.median(samples) * 1000


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


def mock_server_ready_ms(runs: int) -> float:
    from mock_server.http.server import MockServer

    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        server = MockServer().start()
        samples.append(time.perf_counter() - start)
        server.stop()
    return statistics.median(samples) * 1000


def plain_uvicorn_ready_ms(runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        config = uvicorn.Config(make_app({}), port=0, log_config=None, lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.0005)
        samples.append(time.perf_counter() - start)
        server.should_exit = True
        thread.join()
    return statistics.median(samples) * 1000


def process_ready_ms(start: Callable[[int], subprocess.Popen[bytes]], path: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        port = procs.free_port()
        began = time.monotonic()
        process = start(port)
        try:
            procs.wait_until_answering(f"http://127.0.0.1:{port}{path}", process)
            samples.append(time.monotonic() - began)
        finally:
            procs.stop(process)
    return statistics.median(samples) * 1000


@contextmanager
def servers(workdir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], int, subprocess.Popen[bytes]]]:
    """mock-llm-sse and the baseline, each in its own process, serving the same stream bytes."""
    mock_port = procs.free_port()
    mock = procs.start_mock(mock_port, workdir / "scenarios")
    procs.wait_until_answering(f"http://127.0.0.1:{mock_port}/_mock/health", mock)
    base = f"http://127.0.0.1:{mock_port}"
    frames = {}
    for label, method, path, body in ENDPOINTS:
        groups = capture_groups(base, method, path, body)
        if groups is not None:
            frames[label] = groups
    frames["stream"] = capture_groups(base, "GET", "/completions?scenario=bench-stream&messages=x", None) or []
    frames["idle"] = frames["stream"]
    baseline_port = procs.free_port()
    baseline = procs.start_baseline(baseline_port, frames, workdir / "frames.json")
    try:
        procs.wait_until_answering(f"http://127.0.0.1:{baseline_port}/health", baseline)
        yield mock_port, mock, baseline_port, baseline
    finally:
        procs.stop(mock)
        procs.stop(baseline)


def baseline_path(label: str, query: str = "") -> str:
    return "/" + label.replace(" ", "%20").replace("/", "%2F") + (f"?{query}" if query else "")


async def measure(quick: bool, workdir: Path) -> list[Figure]:
    figures: list[Figure] = []
    with servers(workdir) as (mock_port, mock, base_port, _):
        frames = json.loads((workdir / "frames.json").read_text())
        for label, method, path, body in ENDPOINTS:
            if label not in frames:
                print(f"  {label}: not served, skipped", file=sys.stderr)
                continue
            ours = await throughput(mock_port, method, path, body)
            theirs = await throughput(base_port, "GET", baseline_path(label), None)
            target = ">= 0.9x" if label == "GET /completions" else ">= 0.8x"
            figures.append(Figure(f"throughput {label}", "events/s", ours, theirs, "higher", target))

        stream = "/completions?scenario=bench-stream&messages=x"
        for count in (500,) if quick else (500, 1000, 2000):
            ours_f = await fidelity(mock_port, stream, count)
            theirs_f = await fidelity(base_port, baseline_path("stream", f"chunk_ms={CHUNK_MS}"), count)
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
            ]

        count = 50 if quick else 200
        ours_t = await time_to_first_event(mock_port, stream, count)
        theirs_t = await time_to_first_event(base_port, baseline_path("stream", f"chunk_ms={CHUNK_MS}"), count)
        figures.append(Figure("time to first event (median)", "ms", ours_t, theirs_t, "lower"))

        streams = 1000 if quick else 5000
        ours_m = await idle_memory(mock_port, mock.pid, "/completions?scenario=bench-idle&messages=x", streams)
    with servers(workdir) as (_, _, base_port, baseline):
        theirs_m = await idle_memory(
            base_port, baseline.pid, baseline_path("idle", "first_chunk_ms=600000&keepalive_ms=1000"), streams
        )
    figures.append(Figure(f"RSS with {streams} open streams", "MB", ours_m, theirs_m, "lower", "< 300 MB"))

    runs = 5 if quick else 20
    figures.append(
        Figure(
            "MockServer start-to-ready",
            "ms",
            mock_server_ready_ms(runs),
            plain_uvicorn_ready_ms(runs),
            "lower",
            "<= 300 ms",
        )
    )
    runs = 3 if quick else 5
    figures.append(
        Figure(
            "CLI start to first answer",
            "ms",
            process_ready_ms(lambda port: procs.start_mock(port, workdir / "scenarios"), "/_mock/health", runs),
            process_ready_ms(
                lambda port: procs.start_baseline(port, frames, workdir / "frames-cli.json"), "/health", runs
            ),
            "lower",
            "<= 1500 ms",
        )
    )
    figures += await measure_proxy(quick, workdir / "scenarios")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer streams and runs (a smoke run, about 3 minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "scenarios").mkdir()
        write_scenarios(workdir / "scenarios")
        # uvloop keeps the load client light, so that it is not the bottleneck it measures.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            figures = runner.run(measure(args.quick, workdir))
    print_table(figures)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps([{**asdict(f), "ratio": f.ratio, "added": f.added} for f in figures], indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
