"""schemathesis against a live server's /openapi.json: whatever it sends, valid or not, the answer is
never a 5xx unless a scenario scripted it (scripted errors carry `X-Mock-Scenario`; a bug's 500 does
not). Bounded to a few dozen requests an operation, so the suite stays fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from mock_server.http.app import create_app
from mock_server.http.server import MockServer
from mock_server.settings import Settings

pytestmark = pytest.mark.slow

TIMEOUT_S = 10


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    """Quick scenarios only (no bundled ones that stall or take seconds), one of them a scripted 500."""
    folder: Path = tmp_path_factory.mktemp("scenarios")
    (folder / "quick.yaml").write_text('reply: "ok"\n')
    (folder / "scripted-500.yaml").write_text("status: 500\n")
    settings = Settings(
        port=0, scenario_dirs=(folder,), bundled_scenarios=False, default_scenario="quick", access_log=False
    )
    with MockServer(settings=settings) as server:
        yield server


OPENAPI = create_app().fastapi.openapi()["paths"]
CASES = [
    (path, method, mode)
    for path, item in OPENAPI.items()
    for method, operation in item.items()
    for mode in schemathesis.GenerationMode
    # A negative case needs something to get wrong: parameters or a body.
    if mode is schemathesis.GenerationMode.POSITIVE
    or operation.get("requestBody")
    or any(parameter["in"] != "path" for parameter in operation.get("parameters", []))
]


@schemathesis.check
def no_unscripted_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code >= 500 and "x-mock-scenario" not in {name.lower() for name in response.headers}:
        raise AssertionError(f"unscripted {response.status_code}: {response.text[:300]}")
    return None


@pytest.mark.parametrize(("path", "method", "mode"), CASES, ids=[f"{m.upper()} {p} {mode}" for p, m, mode in CASES])
def test_no_request_the_schema_allows_or_not_gets_an_unscripted_5xx(
    fuzzed_server: MockServer, path: str, method: str, mode: schemathesis.GenerationMode
) -> None:
    operation = schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")[path][method]

    @given(case=operation.as_strategy(mode))
    @hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def examples(case: Any) -> None:
        case.call_and_validate(checks=[no_unscripted_server_error], timeout=TIMEOUT_S)

    examples()


def test_the_check_catches_an_unscripted_500(fuzzed_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("a bug")

    assert fuzzed_server.app is not None
    monkeypatch.setattr(fuzzed_server.app.state.catalog, "find", broken)
    operation = schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")["/v1/chat/completions"]["POST"]
    case = operation.Case(body={"messages": "hi"}, media_type="application/json")
    with pytest.raises(BaseExceptionGroup) as caught:  # schemathesis reports its failures as a group
        case.call_and_validate(checks=[no_unscripted_server_error], timeout=TIMEOUT_S)
    assert "unscripted 500" in str(caught.value.exceptions[0])
    scripted = operation.Case(body={"messages": "hi", "model": "scripted-500"}, media_type="application/json")
    monkeypatch.undo()
    assert scripted.call_and_validate(checks=[no_unscripted_server_error], timeout=TIMEOUT_S).status_code == 500
