from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mock_server.http.server import MockServer
from mock_server.settings import Settings

TEST_SCENARIOS = Path(__file__).parent / "scenarios"


@pytest.fixture(scope="session")
def server() -> Iterator[MockServer]:
    """One server for the session: bundled scenarios plus tests/scenarios."""
    with MockServer(settings=Settings(port=0, scenario_dirs=(TEST_SCENARIOS,), access_log=False)) as running:
        yield running


@pytest.fixture
def make_server() -> Iterator[Callable[..., MockServer]]:
    """A factory of servers of the test's own (bundled scenarios plus tests/scenarios; other settings
    as keywords), for tests that reset, clear or protect a server; all are stopped after the test."""
    started: list[MockServer] = []

    def make(**settings: Any) -> MockServer:
        base = Settings(port=0, scenario_dirs=(TEST_SCENARIOS,), access_log=False)
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
