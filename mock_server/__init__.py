"""mock-llm-sse: a mock LLM streaming server for testing clients."""

from __future__ import annotations

import importlib.metadata as _metadata

try:
    __version__ = _metadata.version("mock-llm-sse")
except _metadata.PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0"

from mock_server.app import create_app
from mock_server.errors import (
    MockLLMError,
    OverrideError,
    RequestBodyError,
    ScenarioError,
    ServerError,
    UnknownScenarioError,
)
from mock_server.scenario import Scenario
from mock_server.settings import Settings

__all__ = [
    "MockLLMError",
    "OverrideError",
    "RequestBodyError",
    "Scenario",
    "ScenarioError",
    "ServerError",
    "Settings",
    "UnknownScenarioError",
    "__version__",
    "create_app",
]
