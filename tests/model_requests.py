"""The model endpoints as the tests send them, one request each, read from the server's own table
(`routes.MODEL_ROUTES`): a check runs on every dialect, and a new endpoint is tested without a copy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mock_server.dialects import StreamInfo
from mock_server.http.routes import MODEL_ROUTES, ModelRoute
from mock_server.timeline.compile import Usage
from mock_server.wire import frames

_INFO = StreamInfo(key="0" * 64, created=0, model="m", usage=Usage(1, 1))


@dataclass(frozen=True)
class Endpoint:
    route: ModelRoute

    @property
    def id(self) -> str:
        return self.route.name

    @property
    def path(self) -> str:
        return self.route.path

    @property
    def dialect(self) -> str:
        return self.route.dialect.name

    @property
    def end_marker(self) -> str:
        """The first line of the event that only a complete stream ends with."""
        renderer = self.route.dialect.stream(_INFO)
        renderer.start()
        return frames.encode(renderer.end()[-1]).decode().split("\n", 1)[0]

    def body(self, model: str, *, stream: bool = True, prompt: str = "hi") -> dict[str, Any]:
        return self.route.example(model, stream, prompt)

    @property
    def sse(self) -> bool:
        """Whether the endpoint streams SSE (Ollama's streams NDJSON)."""
        return self.route.framing_for({}).sse

    def target(self, model: str, *, stream: bool = True) -> str:
        """Where a request for `model` goes: `path`, or for a path with parameters, the path with them
        filled in and the query the route requires."""
        return self.route.example_target(model, stream)

    def path_for(self, model: str) -> str:
        """The path (without the query) a request for `model` goes to, as the journal records it."""
        return self.target(model).split("?", 1)[0]


ENDPOINTS = [
    Endpoint(route)
    for route in MODEL_ROUTES
    if route.reads_body and route.streams is None and route.example_path is None
]
"""Every model endpoint that takes a JSON body at a path of its own (GET /completions takes the same
in its query) and a `stream` flag in it. Gemini's routes take the model and whether to stream from
their path, and tests/test_gemini.py runs these checks on them, as tests/test_bedrock.py does on
Bedrock's (whose streams are binary frames, not SSE); embeddings, which never stream, have
tests/test_embeddings.py."""
TEMPLATED_ENDPOINTS = [
    Endpoint(route) for route in MODEL_ROUTES if route.reads_body and route.example_path and route.streams is None
]
"""The model endpoints whose path names the model (Azure's deployment), so a request's path depends on
the model it asks for: `target(model)`; Azure's embeddings, which never stream, have their own tests."""
V1_ENDPOINTS = [e for e in ENDPOINTS if e.path.startswith("/v1/")]
SSE_ENDPOINTS = [e for e in [*ENDPOINTS, *TEMPLATED_ENDPOINTS] if e.sse]
"""The endpoints whose streams are SSE events, for checks written in SSE's terms (a request goes to
`target(model)`)."""
BODY_ENDPOINTS = [*ENDPOINTS, *TEMPLATED_ENDPOINTS]
"""Every model endpoint that takes a JSON body with a `stream` flag, at `target(model)`."""
