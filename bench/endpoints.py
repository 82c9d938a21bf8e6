"""The streaming model endpoints the bench measures, read from the server's own route table, and how
to ask each for a stream of a scenario and count its events."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from bench import load
from mock_server.http.routes import MODEL_ROUTES, ModelRoute
from mock_server.wire.eventstream import EventStreamFraming
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
    def events(self) -> Events | None:
        """How its streams' events are told apart; None for a framing whose events have no end of their
        own (a JSON array's elements are separated, not ended)."""
        return events_of(self.route.framing_for(dict(parse_qsl(urlsplit(self.target("m")).query))))

    def request(self, scenario: str) -> load.Request:
        assert self.events is not None
        return load.http_request(
            self.target(scenario), method=self.route.method, body=self.body(scenario), counted=self.events.counted
        )

    def capture_groups(self, base: str, scenario: str, ends: list[int] | None = None) -> list[str] | None:
        """The events of a stream of `scenario` in groups, a write each (bytes as latin-1 text, as the
        baseline takes them): a group ends after each of the `ends` events counted from the start (a
        paced stream's schedule); without them, the opening with the first chunk, each later chunk, the
        finish with the end of the stream."""
        response = httpx.request(
            self.route.method, base + self.target(scenario), json=self.body(scenario), headers=HEADERS, timeout=60
        )
        if response.status_code != 200 or self.events is None:
            return None
        events = [event.decode("latin-1") for event in self.events.split(response.content)]
        if ends is None:
            return ["".join(events[:2]), *events[2:-2], "".join(events[-2:])]
        return ["".join(events[start:stop]) for start, stop in zip([0, *ends], ends, strict=False)]


@dataclass(frozen=True)
class Events:
    """A framing's events: the bytes the load client counts, one per event in a chunked body, and how
    a whole body splits into events."""

    counted: bytes
    end: bytes | None = None
    """What ends each event (None: AWS event-stream frames, whose prelude gives their length)."""

    def split(self, body: bytes) -> list[bytes]:
        if self.end is not None:
            return [event + self.end for event in body.split(self.end) if event]
        frames = []
        while len(body) >= 4:
            length = int.from_bytes(body[:4], "big")
            frames.append(body[:length])
            body = body[length:]
        return frames


def events_of(framing: Framing) -> Events | None:
    """SSE's events end in a blank line; Google's in CRLFs, counted after the `}` of their JSON, and an
    NDJSON line's LF too (a chunked body's size lines end in line breaks as well); an AWS event-stream
    frame is counted by its `:message-type` header (written whole, a frame arrives in one piece)."""
    if isinstance(framing, GoogleSseFraming):
        return Events(b"}\r\n\r\n", b"\r\n\r\n")
    if isinstance(framing, EventStreamFraming):
        return Events(b":message-type")
    if framing.sse:
        return Events(load.SSE_END, load.SSE_END)
    if isinstance(framing, NdjsonFraming):
        return Events(b"}\n", b"\n")
    return None


def _measured(route: ModelRoute) -> bool:
    if route.streams is False:  # embeddings answer one JSON body
        return False
    if route.path == "/completions" and route.reads_body:  # POST /completions plays what GET does
        return False
    if route.path.startswith("/v1/models/"):  # Gemini's /v1 is its /v1beta under another name
        return False
    return BenchEndpoint(route).events is not None


ENDPOINTS = [BenchEndpoint(route) for route in MODEL_ROUTES if _measured(route)]
"""Every streaming model endpoint, one per handler."""
