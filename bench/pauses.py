"""The garbage collector's pauses in a server under test: `python -m bench.pauses FILE -m MODULE ARGS...`
runs the module as `python -m MODULE ARGS...` would, and writes a line per collection that took a
millisecond or more, or was a full one, to FILE: when it ended (Unix time), its generation, how long
it took (ms) and how much CPU time it used (ms). The bench reads the lines of a measured run's window
back (`pauses_between`). On a shared machine the two differ: a collection the scheduler interrupts
lasts longer than the work it does.
"""

from __future__ import annotations

import gc
import runpy
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

NOTED_MS = 1.0
"""Shorter collections of the young generations are not written: there are thousands of them."""


def trace(out: TextIO) -> None:
    """From now on, write each noted collection to `out`."""
    started = cpu_started = 0.0

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        nonlocal started, cpu_started
        if phase == "start":
            started, cpu_started = time.perf_counter(), time.thread_time()
            return
        took_ms = (time.perf_counter() - started) * 1000
        if took_ms >= NOTED_MS or info["generation"] == 2:
            cpu_ms = (time.thread_time() - cpu_started) * 1000
            out.write(f"{time.time():.6f} {info['generation']} {took_ms:.3f} {cpu_ms:.3f}\n")

    gc.callbacks.append(on_collection)


@dataclass(frozen=True)
class Pauses:
    full: int
    """Full collections (of the oldest generation)."""
    longest_ms: float
    """The longest collection of any generation (0 when none took a millisecond)."""
    longest_cpu_ms: float
    """The most CPU time a collection used."""


def pauses_between(file: Path, start: float, end: float) -> Pauses:
    """The collections written to `file` that ended between `start` and `end` (Unix times)."""
    full = 0
    longest = longest_cpu = 0.0
    for line in file.read_text().splitlines():
        at, generation, took_ms, cpu_ms = line.split()
        if start <= float(at) <= end:
            full += generation == "2"
            longest = max(longest, float(took_ms))
            longest_cpu = max(longest_cpu, float(cpu_ms))
    return Pauses(full, longest, longest_cpu)


def pauses_within(file: Path, windows: list[tuple[float, float]]) -> Pauses:
    """`pauses_between` over several windows: their full collections summed, the longest of any."""
    each = [pauses_between(file, start, end) for start, end in windows]
    return Pauses(
        sum(p.full for p in each),
        max((p.longest_ms for p in each), default=0.0),
        max((p.longest_cpu_ms for p in each), default=0.0),
    )


def main() -> None:
    file, flag, module, *args = sys.argv[1:]
    assert flag == "-m", "usage: python -m bench.pauses FILE -m MODULE ARGS..."
    trace(Path(file).open("a", buffering=1))  # noqa: SIM115 (written to until the process ends)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
