from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mock_server.server import MockServer
from mock_server.settings import Settings

TEST_SCENARIOS = Path(__file__).parent / "scenarios"


@pytest.fixture(scope="session")
def server() -> Iterator[MockServer]:
    """One server for the session: bundled scenarios plus tests/scenarios."""
    with MockServer(settings=Settings(port=0, scenario_dirs=(TEST_SCENARIOS,), access_log=False)) as running:
        yield running
