"""What a `pip install .` gets: the code, the bundled scenarios, the console script."""

from __future__ import annotations

from importlib.metadata import entry_points, version
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

import mock_server

ROOT = Path(__file__).parent.parent


def test_wheel_holds_the_package_and_the_bundled_scenarios() -> None:
    files = {f.distribution_path for f in WheelBuilder(str(ROOT)).recurse_included_files()}
    assert "mock_server/cli.py" in files
    assert "mock_server/dialects/openai_chat.py" in files
    pages = ("playground.html", "dashboard.html", "dashboard.js", "dashboard.css")
    assert {f"mock_server/http/static/{name}" for name in pages} <= files, "the pages ship: no build step, no CDN"
    bundled = {p.name for p in (ROOT / "scenarios").glob("*.yaml")}
    assert {f"mock_server/_bundled_scenarios/{name}" for name in bundled} <= files
    assert not any(f.startswith("tests/") for f in files)


def test_console_script_and_version() -> None:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "mock-llm-sse"]
    assert script.value == "mock_server.__main__:main"
    assert mock_server.__version__ == version("mock-llm-sse")


def test_public_api_is_declared_and_loads() -> None:
    for name in mock_server.__all__:
        assert getattr(mock_server, name) is not None
    assert {"MockServer", "Scenario", "Settings", "RequestRecord", "MockLLMError"} <= set(mock_server.__all__)
