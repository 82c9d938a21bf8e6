"""Starting and stopping the servers under test as separate processes, and reading their memory."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


POLL_S = 0.001
"""The wait between a refused poll and the next: start-up is timed to the poll that is answered."""


def wait_until_answering(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> float:
    """Poll `url` until it answers 200; returns the seconds since the process started polling. One
    client asks every time: a new one per poll (`httpx.get`) builds a TLS context first, 15 ms that
    would stand between the server's first moment of answering and the poll that finds it."""
    start = time.monotonic()
    with httpx.Client(timeout=1) as client:
        while time.monotonic() - start < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                time.sleep(POLL_S)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def can_pin() -> bool:
    """Whether servers can be given a core each: `taskset` is there and this process may use two cores."""
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def start_mock(
    port: int, scenarios: Path, *options: str, cpus: str | None = None, pauses: Path | None = None
) -> subprocess.Popen[bytes]:
    """`mock-llm-sse serve` in a process of its own; with `cpus` (taskset's list, "0"), on those cores
    only; with `pauses`, its collector's pauses written there (bench/pauses.py)."""
    pinned = ["taskset", "--cpu-list", cpus] if cpus is not None else []
    command = [
        *pinned,
        sys.executable,
        *traced(pauses),
        "-m",
        "mock_server",
        "serve",
        "--port",
        str(port),
        "--scenarios",
        str(scenarios),
        "--log-level",
        "warning",
        *options,
    ]
    return _start(command)


def start_baseline(
    port: int, frames: dict[str, list[str]], frames_file: Path, pauses: Path | None = None
) -> subprocess.Popen[bytes]:
    frames_file.write_text(json.dumps(frames))
    command = [
        sys.executable,
        *traced(pauses),
        "-m",
        "bench.baseline",
        "--port",
        str(port),
        "--frames",
        str(frames_file),
    ]
    return _start(command)


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    """A server in a session of its own, as one started apart from its load client would be: where the
    kernel shares the CPU between sessions first (autogroup, on by default on most Linux systems), a
    server started in the bench's session would share one session's part with the load client, and
    more workers would get no more of the machine than one."""
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def traced(pauses: Path | None) -> list[str]:
    """What runs a module with its collector's pauses written to `pauses`, before its `-m MODULE`."""
    return ["-m", "bench.pauses", str(pauses)] if pauses is not None else []


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """The CPU time the process and its living children (a server's workers) have used so far."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return cpu_seconds(pid) + sum(cpu_seconds(int(child)) for child in children)
