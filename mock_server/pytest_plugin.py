"""The pytest plugin (entry point `mock_llm_sse`): fixtures around `MockServer`, nothing more.

- `mock_llm_server` (session): one server on 127.0.0.1 and a free port, so every pytest-xdist
  worker gets its own; the bundled scenarios plus `--mock-llm-scenarios DIR` (or the ini
  `mock_llm_scenarios`).
- `mock_llm` (function): that server, clean when the test starts and reset after it.

When a test that used them fails, its report gets a section listing the requests the server saw.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mock_server.http.server import MockServer

SCENARIOS_OPTION = "--mock-llm-scenarios"
SCENARIOS_INI = "mock_llm_scenarios"
FIXTURES = ("mock_llm", "mock_llm_server")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mock-llm-sse", "mock LLM streaming server")
    group.addoption(
        SCENARIOS_OPTION,
        action="append",
        default=[],
        metavar="DIR",
        help="Directory (or file) of scenarios for the mock_llm server, after the bundled ones; repeatable. "
        f"Replaces the ini value {SCENARIOS_INI}.",
    )
    parser.addini(
        SCENARIOS_INI,
        type="paths",
        default=[],
        help="Directories (or files) of scenarios for the mock_llm server, relative to the ini file.",
    )


def scenario_paths(config: pytest.Config) -> list[Path]:
    """The scenario directories the options name: the command line's, else the ini file's."""
    given: list[str] = config.getoption(SCENARIOS_OPTION)
    if given:
        return [Path(p) for p in given]
    ini: list[Path] = config.getini(SCENARIOS_INI)
    return list(ini)


@pytest.fixture(scope="session")
def mock_llm_server(pytestconfig: pytest.Config) -> Iterator[MockServer]:
    """One mock LLM server for the session (per xdist worker), on 127.0.0.1 and a free port."""
    from mock_server.http.server import MockServer
    from mock_server.settings import Settings

    settings = Settings(port=0, access_log=False, scenario_dirs=tuple(scenario_paths(pytestconfig)))
    with MockServer(settings=settings) as server:
        yield server


@pytest.fixture
def mock_llm(mock_llm_server: MockServer) -> Iterator[MockServer]:
    """The session's server, with no records and no run-time scenarios; reset after the test."""
    mock_llm_server.reset()
    yield mock_llm_server
    mock_llm_server.reset()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    used = [name for name in FIXTURES if name in getattr(item, "funcargs", {})]
    if report.failed and report.when == "call" and used:
        from mock_server.http.server import MockServer

        server = item.funcargs[used[0]]  # type: ignore[attr-defined]
        if isinstance(server, MockServer) and server.running:
            lines = [record.summary() for record in server.records()] or ["(none)"]
            report.sections.append((f"mock-llm-sse requests at {server.url}", "\n".join(lines)))
    return report
