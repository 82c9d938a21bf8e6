"""A family's runner in a process of its own (the Python clients, the Node clients): its jobs and its
warm-up jobs as a line of JSON on stdin, each job's observation as JSON on stdout."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.matrix.observation import Observation


def run_child(
    command: list[str], cwd: Path, jobs: list[dict[str, Any]], warmup: list[dict[str, Any]], timeout_s: float
) -> dict[str, Observation]:
    """Each job's observation, by its key; raises with the child's stderr when it fails."""
    if not jobs:
        return {}
    result = subprocess.run(
        command,
        cwd=cwd,
        input=json.dumps({"warmup": warmup, "jobs": jobs}) + "\n",
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[-1]} failed ({result.returncode}):\n{result.stderr}")
    return {key: Observation.from_json(seen) for key, seen in json.loads(result.stdout).items()}
