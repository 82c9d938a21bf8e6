from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mock_server.http.server import MockServer
from mock_server.settings import Settings

TEST_SCENARIOS = Path(__file__).parent / "scenarios"
# The real stores' fixtures (`redis_url`, `redis_db`, `every_state`) live in their own module.
pytest_plugins = ["tests.stores"]

T = TypeVar("T")


def wait_until(condition: Callable[[], T | None], what: str, timeout_s: float = 5.0) -> T:
    """Poll `condition` until it returns something true, and return that; fail saying `what` was
    awaited when `timeout_s` passes first. For waiting on a server (a record to appear, a stream to
    start, a connection to close): a fixed sleep is too long on an idle machine, too short on a busy one."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}")
        time.sleep(0.01)
    return value


@pytest.fixture(scope="session")
def server() -> Iterator[MockServer]:
    """One server for the session: bundled scenarios plus tests/scenarios."""
    with MockServer(settings=Settings(port=0, scenario_dirs=(TEST_SCENARIOS,), access_log=False)) as running:
        yield running


@pytest.fixture
def state_spec() -> str:
    """The state store `make_server`'s servers keep their state in; a module that overrides this with
    `every_state` runs its tests against each store."""
    return "memory"


@pytest.fixture
def make_server(state_spec: str) -> Iterator[Callable[..., MockServer]]:
    """A factory of servers of the test's own (bundled scenarios plus tests/scenarios; other settings
    as keywords), for tests that reset, clear or protect a server; all are stopped after the test."""
    started: list[MockServer] = []

    def make(**settings: Any) -> MockServer:
        base = Settings(port=0, scenario_dirs=(TEST_SCENARIOS,), access_log=False, state=state_spec)
        started.append(MockServer(settings=replace(base, **settings)).start())
        return started[-1]

    yield make
    for running in started:
        if running.running:
            running.stop()


@contextmanager
def cli_server(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`mock-llm-sse serve` as a subprocess on a free port (log level `warning` unless `args` say
    otherwise); yields the process, its output merged in `stdout`, and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "serve", "--port", "0", "--log-level", "warning", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        yield process, banner.split("listening on ")[1].strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def recorded(server: MockServer, directory: Path) -> list[Path]:
    """The recordings `server` has written into `directory`, once it has loaded them too (a file is
    written before the scenario it holds answers requests)."""

    def loaded() -> list[Path] | None:
        files = sorted(directory.glob("*.yaml"))
        app = server.app
        names = set(app.state.catalog.names) if app is not None else set()
        return files if files and all(file.stem in names for file in files) else None

    return wait_until(loaded, f"a recording in {directory}, loaded")
