"""Start-up: `python -m bench.startup [--runs N]`. Prints min / median / max of each figure.

- `mock-llm-sse serve` from process start to its first answer (`/_mock/health`) and to its first
  model answer (a whole `GET /completions` stream), against `python -m bench.baseline` (a bare
  uvicorn app) started the same way;
- `MockServer()` from constructor to answering, against a bare uvicorn `Server` in a thread; the
  first start in a process is shown apart, since it pays for what a process builds once.

The runs alternate between mock-llm-sse and the baseline, so that both see the same machine.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from bench import procs
from bench.baseline import make_app
from bench.measures import write_scenarios

HEALTH = "/_mock/health"
FIRST_STREAM = "/completions?scenario=bench-burst&messages=x"
"""A whole stream of 50 chunks with no waits: what a client's first request gets."""


@dataclass(frozen=True)
class Samples:
    name: str
    mock_ms: list[float]
    baseline_ms: list[float]

    def row(self) -> str:
        ours, theirs = self.mock_ms, self.baseline_ms
        ratio = statistics.median(ours) / statistics.median(theirs) if theirs else float("nan")
        return f"{self.name:44} {_spread(ours):>22} {_spread(theirs):>22} {ratio:>6.2f}x"

    @property
    def median_ms(self) -> float:
        return statistics.median(self.mock_ms)

    @property
    def baseline_median_ms(self) -> float:
        return statistics.median(self.baseline_ms)


def _spread(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{min(samples):.1f} / {statistics.median(samples):.1f} / {max(samples):.1f}"


def mock_server_ready_ms(runs: int) -> list[float]:
    """Each `MockServer().start()`'s milliseconds until it answers, the first in the process included."""
    from mock_server.http.server import MockServer

    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        server = MockServer().start()
        samples.append((time.perf_counter() - start) * 1000)
        server.stop()
    return samples


def plain_uvicorn_ready_ms(runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        config = uvicorn.Config(make_app({}), port=0, log_config=None, lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.0005)
        samples.append((time.perf_counter() - start) * 1000)
        server.should_exit = True
        thread.join()
    return samples


def process_ready_ms(start: Callable[[int], subprocess.Popen[bytes]], paths: tuple[str, ...]) -> list[float]:
    """One process start: the milliseconds from starting it until each of `paths`, asked in turn, has
    answered 200 (the first polled until the server listens)."""
    port = procs.free_port()
    began = time.monotonic()
    process = start(port)
    try:
        found = []
        for path in paths:
            procs.wait_until_answering(f"http://127.0.0.1:{port}{path}", process)
            found.append((time.monotonic() - began) * 1000)
        return found
    finally:
        procs.stop(process)


def cli_start(runs: int, scenarios: Path, frames_file: Path) -> list[Samples]:
    """`mock-llm-sse serve` to its first answer and to its first stream, against the baseline."""
    health, stream, baseline = [], [], []
    for _ in range(runs):
        first, streamed = process_ready_ms(lambda port: procs.start_mock(port, scenarios), (HEALTH, FIRST_STREAM))
        health.append(first)
        stream.append(streamed)
        (answered,) = process_ready_ms(lambda port: procs.start_baseline(port, {}, frames_file), ("/health",))
        baseline.append(answered)
    return [
        Samples("CLI start to first answer", health, baseline),
        Samples("CLI start to first stream's end", stream, baseline),
    ]


def in_process_start(runs: int) -> list[Samples]:
    ours = mock_server_ready_ms(runs + 1)
    theirs = plain_uvicorn_ready_ms(runs + 1)
    return [
        Samples("MockServer start-to-ready, first in process", ours[:1], theirs[:1]),
        Samples("MockServer start-to-ready, later", ours[1:], theirs[1:]),
    ]


def measure(runs: int, workdir: Path) -> list[Samples]:
    (workdir / "scenarios").mkdir(exist_ok=True)
    write_scenarios(workdir / "scenarios")
    return [*cli_start(runs, workdir / "scenarios", workdir / "frames.json"), *in_process_start(runs * 4)]


def print_samples(rows: list[Samples]) -> None:
    header = f"{'ms: min / median / max':44} {'mock-llm-sse':>22} {'baseline':>22} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row.row())


def compile_package() -> None:
    """Write the package's bytecode, as installing it does: with PYTHONDONTWRITEBYTECODE set (or a
    fresh checkout), every start would compile the sources again and the figures would show that."""
    compileall.compile_dir(procs.ROOT / "mock_server", quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="process starts of each server (default 10)")
    args = parser.parse_args()
    compile_package()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args.runs, Path(tmp))
    print_samples(rows)


if __name__ == "__main__":
    main()
