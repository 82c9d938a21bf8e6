"""The Node rows: tests/node/matrix.mjs plays every Node cell at once, in a process of its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.matrix.child import run_child
from tests.matrix.observation import Observation

NODE_DIR = Path(__file__).parents[1] / "node"
INSTALL_HINT = "run scripts/install-test-deps (npm ci in tests/node)"


def node_versions() -> dict[str, str]:
    """The installed version of each package tests/node depends on."""
    manifest = json.loads((NODE_DIR / "package.json").read_text(encoding="utf-8"))
    return {name: installed_version(NODE_DIR, name) for name in manifest["dependencies"]}


def installed_version(root: Path, package: str) -> str:
    path = root / "node_modules" / package / "package.json"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing ({INSTALL_HINT})")
    return str(json.loads(path.read_text(encoding="utf-8"))["version"])


def run_node(jobs: list[dict[str, Any]], warmup: list[dict[str, Any]], timeout_s: float) -> dict[str, Observation]:
    """Each job's observation, by its key (see tests.matrix.child)."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(f"node is not on PATH ({INSTALL_HINT})")
    return run_child([node, str(NODE_DIR / "matrix.mjs")], NODE_DIR, jobs, warmup, timeout_s)
