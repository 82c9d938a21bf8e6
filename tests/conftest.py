from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mock_server.server import MockServer
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
