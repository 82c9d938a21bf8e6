"""mock-llm-sse: a mock LLM streaming server for testing clients.

The public names below, `__version__` too, load on first use: pytest imports this package (for the
plugin) in every test run, and the web stack is only worth importing once a test wants a server; the
command line loads its modules with the garbage collector paused (`__main__.py`), after this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mock_server.embeddings import embed
    from mock_server.errors import (
        MockLLMError,
        OverrideError,
        RequestBodyError,
        ScenarioError,
        ServerError,
        UnknownScenarioError,
    )
    from mock_server.http.app import create_app
    from mock_server.http.server import MockServer
    from mock_server.journal.journal import RequestRecord
    from mock_server.journal.verdict import Finding, Verdict
    from mock_server.scenarios.model import Scenario
    from mock_server.settings import VERSION as __version__
    from mock_server.settings import Settings
    from mock_server.wire.outcome import Outcome

_HOMES = {
    "Finding": "mock_server.journal.verdict",
    "MockLLMError": "mock_server.errors",
    "MockServer": "mock_server.http.server",
    "Outcome": "mock_server.wire.outcome",
    "OverrideError": "mock_server.errors",
    "RequestBodyError": "mock_server.errors",
    "RequestRecord": "mock_server.journal.journal",
    "Scenario": "mock_server.scenarios.model",
    "ScenarioError": "mock_server.errors",
    "ServerError": "mock_server.errors",
    "Settings": "mock_server.settings",
    "UnknownScenarioError": "mock_server.errors",
    "Verdict": "mock_server.journal.verdict",
    "create_app": "mock_server.http.app",
    "embed": "mock_server.embeddings",
    "__version__": "mock_server.settings",
}
_NAMES_AT_HOME = {"__version__": "VERSION"}

__all__ = [
    "Finding",
    "MockLLMError",
    "MockServer",
    "Outcome",
    "OverrideError",
    "RequestBodyError",
    "RequestRecord",
    "Scenario",
    "ScenarioError",
    "ServerError",
    "Settings",
    "UnknownScenarioError",
    "Verdict",
    "__version__",
    "create_app",
    "embed",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mock_server' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), _NAMES_AT_HOME.get(name, name))
    globals()[name] = value
    return value
