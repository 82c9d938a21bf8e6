"""A family's runner in a process of its own (the Python clients, the Node clients), and the start they
share: each runner gets its jobs, warms up, says `ready`, and plays its jobs only once every family is
ready (a `go` line), so that no runner's start-up (Node compiling the SDKs, Chromium launching) lands
in the middle of another family's retries."""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from tests.matrix.observation import Observation

READY, GO = "ready", "go"


def run_child(
    command: list[str],
    cwd: Path,
    jobs: list[dict[str, Any]],
    warmup: list[dict[str, Any]],
    start: threading.Barrier,
    timeout_s: float,
) -> dict[str, Observation]:
    """Each job's observation, by its key; raises with the child's stderr when it fails."""
    if not jobs:
        start.wait(timeout_s)
        return {}
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as stderr,
        subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
        ) as child,
    ):
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            child.stdin.write(json.dumps({"warmup": warmup, "jobs": jobs}) + "\n")
            child.stdin.flush()
            said = child.stdout.readline().strip()
            if said != READY:
                start.abort()
                child.wait(10)
                stderr.seek(0)
                raise RuntimeError(f"{command[-1]} did not start ({child.returncode}): {said}\n{stderr.read()}")
            start.wait(timeout_s)
            child.stdin.write(GO + "\n")
            child.stdin.close()
            output = child.stdout.read()
            child.wait(timeout_s)
        finally:
            if child.poll() is None:
                child.kill()
        if child.returncode != 0:
            stderr.seek(0)
            raise RuntimeError(f"{command[-1]} failed ({child.returncode}):\n{stderr.read()}")
    return {key: Observation.from_json(seen) for key, seen in json.loads(output).items()}
