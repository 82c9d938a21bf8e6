"""Each dialect's whole wire format, byte for byte, against a transcript kept in tests/golden/
(`<dialect>.sse`, `.ndjson` for Ollama's, `.eventstream` for Bedrock's binary frames).

Regenerate after an intended change with `UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py`
and review the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mock_server.http.server import MockServer
from mock_server.settings import Settings
from tests.conftest import TEST_SCENARIOS
from tests.model_requests import ENDPOINTS, TEMPLATED_ENDPOINTS, V1_ENDPOINTS, Endpoint
from tests.wire import Ending, fetch

GOLDEN = Path(__file__).parent / "golden"
PINNED_CLOCK = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def pinned_server() -> Iterator[MockServer]:
    settings = Settings(port=0, scenario_dirs=(TEST_SCENARIOS,), access_log=False, wall_clock=lambda: PINNED_CLOCK)
    with MockServer(settings=settings) as running:
        yield running


OLLAMA_ENDPOINTS = [e for e in ENDPOINTS if e.path.startswith("/api/")]


@pytest.mark.parametrize("endpoint", [*V1_ENDPOINTS, *TEMPLATED_ENDPOINTS, *OLLAMA_ENDPOINTS], ids=lambda e: e.dialect)
def test_stream_matches_golden_transcript(pinned_server: MockServer, endpoint: Endpoint) -> None:
    body = endpoint.body("golden", prompt="What is the weather in Zürich?")
    if endpoint.dialect.startswith(("openai-", "azure-openai")) and endpoint.dialect != "openai-responses":
        body["stream_options"] = {"include_usage": True}
    response = fetch(pinned_server.url + endpoint.target("golden"), method="POST", body=body)
    assert (response.status, response.ending) == (200, Ending.COMPLETE)
    transcript = GOLDEN / f"{endpoint.dialect}.{'sse' if endpoint.sse else 'ndjson'}"
    if os.environ.get("UPDATE_GOLDEN"):
        transcript.write_bytes(response.body)
    assert response.body.decode() == transcript.read_bytes().decode()


@pytest.mark.parametrize(("query", "name"), [("?alt=sse", "gemini.sse"), ("", "gemini.json")])
def test_gemini_stream_matches_golden_transcript(pinned_server: MockServer, query: str, name: str) -> None:
    """Gemini's stream in both its framings: SSE with `alt=sse` (what the SDKs ask for), else a JSON array."""
    body = {"contents": [{"role": "user", "parts": [{"text": "What is the weather in Zürich?"}]}]}
    url = f"{pinned_server.url}/v1beta/models/golden:streamGenerateContent{query}"
    response = fetch(url, method="POST", body=body)
    assert (response.status, response.ending) == (200, Ending.COMPLETE)
    transcript = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        transcript.write_bytes(response.body)
    assert response.body.decode() == transcript.read_bytes().decode()


@pytest.mark.parametrize(
    ("operation", "body", "name"),
    [
        (
            "converse-stream",
            {"messages": [{"role": "user", "content": [{"text": "What is the weather in Zürich?"}]}]},
            "bedrock-converse",
        ),
        (
            "invoke-with-response-stream",
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 256,
                "messages": [{"role": "user", "content": "What is the weather in Zürich?"}],
            },
            "bedrock-invoke",
        ),
    ],
)
def test_bedrock_stream_matches_golden_transcript(
    pinned_server: MockServer, operation: str, body: dict[str, object], name: str
) -> None:
    """Bedrock's binary event-stream frames, byte for byte (tests/test_bedrock.py reads them with botocore)."""
    response = fetch(f"{pinned_server.url}/model/golden/{operation}", method="POST", body=body)
    assert (response.status, response.ending) == (200, Ending.COMPLETE)
    transcript = GOLDEN / f"{name}.eventstream"
    if os.environ.get("UPDATE_GOLDEN"):
        transcript.write_bytes(response.body)
    assert response.body == transcript.read_bytes()
