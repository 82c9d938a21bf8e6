"""The pytest plugin (entry point `mock_llm_sse`): fixtures around `MockServer`, nothing more.

- `mock_llm_server` (session): one server on 127.0.0.1 and a free port, so every pytest-xdist
  worker gets its own; the bundled scenarios plus `--mock-llm-scenarios DIR` (or the ini
  `mock_llm_scenarios`).
- `mock_llm` (function): that server, clean when the test starts and reset after it.

When a test that used them fails, its report gets a section listing the requests the server saw.
With `--mock-llm-report FILE`, each test's verdict (judged before the server is reset) is written to
FILE at the end of the session, as JUnit XML (`.xml`), JSON (`.json`) or text; pytest-xdist workers
send theirs to the controller, which writes the one file.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mock_server.http.server import MockServer

SCENARIOS_OPTION = "--mock-llm-scenarios"
SCENARIOS_INI = "mock_llm_scenarios"
REPORT_OPTION = "--mock-llm-report"
FIXTURES = ("mock_llm", "mock_llm_server")
_JUDGED = pytest.StashKey[list[dict[str, Any]]]()
"""The verdicts judged in this process (each `Judged.to_json()`), for --mock-llm-report."""
_WORKER_OUTPUT = "mock_llm_report"


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
    group.addoption(
        REPORT_OPTION,
        metavar="FILE",
        help="Write each test's verdict on its client (a test case per call, a failure per error-level finding) "
        "to FILE at the end of the session: JUnit XML for a .xml file, JSON for .json, text otherwise.",
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
        _judge(pytestconfig, "session", server)


@pytest.fixture
def mock_llm(mock_llm_server: MockServer, request: pytest.FixtureRequest) -> Iterator[MockServer]:
    """The session's server, with no records and no run-time scenarios; reset after the test."""
    mock_llm_server.reset()
    yield mock_llm_server
    _judge(request.config, request.node.nodeid, mock_llm_server)
    mock_llm_server.reset()


def _judge(config: pytest.Config, suite: str, server: MockServer) -> None:
    """With --mock-llm-report, keep the verdict on the requests `server` has seen, named for `suite`."""
    if not config.getoption(REPORT_OPTION) or not server.running:
        return
    from mock_server.journal.verdict.reports import Judged

    records = server.records()
    if records:
        judged = Judged.of(suite, server.verdict(wait_s=0), records)
        config.stash.setdefault(_JUDGED, []).append(judged.to_json())


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write --mock-llm-report: on an xdist worker, hand the verdicts to the controller instead."""
    config = session.config
    target = config.getoption(REPORT_OPTION)
    if not target:
        return
    judged = config.stash.get(_JUDGED, [])
    worker_output: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if worker_output is not None:
        worker_output[_WORKER_OUTPUT] = json.dumps(judged)
        return
    from mock_server.journal.verdict import reports

    verdicts = sorted((reports.Judged.from_json(j) for j in judged), key=lambda j: j.suite)
    path = Path(target)
    form = {".xml": "junit", ".json": "json"}.get(path.suffix.lower(), "text")
    path.write_text(reports.render(verdicts, form) + ("" if form == "junit" else "\n"), encoding="utf-8")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """An xdist worker is done: keep the verdicts it judged for the controller's report."""
    output = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if output:
        node.config.stash.setdefault(_JUDGED, []).extend(json.loads(output))


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
