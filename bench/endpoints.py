"""The streaming model endpoints the bench measures, read from the server's own route table, and how
to ask each for a stream of a scenario and count its events."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from bench import load
from mock_server.http.routes import MODEL_ROUTES, ModelRoute
from mock_server.wire.framing import Framing, GoogleSseFraming, NdjsonFraming

HEADERS = {"x-api-key": "x", "anthropic-version": "2023-06-01"}


@dataclass(frozen=True)
class BenchEndpoint:
    route: ModelRoute

    @property
    def label(self) -> str:
        return f"{self.route.method} {self.route.path}"

    def target(self, scenario: str) -> str:
        """The path and query of a streaming request that plays `scenario` (named as the model)."""
        route = self.route
        if not route.reads_body:
            return f"{route.path}?{urlencode(route.example(scenario, True, 'x'))}"
        return route.example_target(scenario, True)

    def body(self, scenario: str) -> dict[str, object] | None:
        return self.route.example(scenario, True, "x") if self.route.reads_body else None

    @property
    def event_end(self) -> bytes | None:
        """What each event of its streams ends with on the wire; None for a framing whose events have no
        end of their own (a JSON array's elements are separated, not ended)."""
        return event_end(self.route.framing_for(dict(parse_qsl(urlsplit(self.target("m")).query))))

    def request(self, scenario: str) -> load.Request:
        assert self.event_end is not None
        return load.http_request(
            self.target(scenario), method=self.route.method, body=self.body(scenario), event_end=self.event_end
        )

    def capture_groups(self, base: str, scenario: str, ends: list[int] | None = None) -> list[str] | None:
        """The events of a stream of `scenario` in groups, a write each: a group ends after each of the
        `ends` events counted from the start (a paced stream's schedule); without them, the opening
        with the first chunk, each later chunk, the finish with the end of the stream."""
        response = httpx.request(
            self.route.method, base + self.target(scenario), json=self.body(scenario), headers=HEADERS, timeout=60
        )
        if response.status_code != 200 or self.event_end is None:
            return None
        end = self.event_end.decode()
        events = [e + end for e in response.text.split(end) if e]
        if ends is None:
            return ["".join(events[:2]), *events[2:-2], "".join(events[-2:])]
        return ["".join(events[start:stop]) for start, stop in zip([0, *ends], ends, strict=False)]


def event_end(framing: Framing) -> bytes | None:
    """What ends each event: SSE's blank line, Google's with CRLFs, an NDJSON line's LF."""
    if isinstance(framing, GoogleSseFraming):
        return b"\r\n\r\n"
    if framing.sse:
        return load.SSE_END
    if isinstance(framing, NdjsonFraming):
        return b"\n"
    return None


def _measured(route: ModelRoute) -> bool:
    if route.streams is False:  # embeddings answer one JSON body
        return False
    if route.path == "/completions" and route.reads_body:  # POST /completions plays what GET does
        return False
    if route.path.startswith("/v1/models/"):  # Gemini's /v1 is its /v1beta under another name
        return False
    return BenchEndpoint(route).event_end is not None


ENDPOINTS = [BenchEndpoint(route) for route in MODEL_ROUTES if _measured(route)]
"""Every streaming model endpoint, one per handler."""
