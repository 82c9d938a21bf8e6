"""Each exchange with the upstream written as a scenario file that replays it: a `match` built from
the request (path, model, prompt), the response's status and headers (no cookie, key or token) and
its body as events with the moment each arrived. Nothing of the request but those three is written:
its headers (keys, tokens, cookies) never reach the file."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mock_server.scenarios.catalog import Catalog
from mock_server.scenarios.loading import read_document
from mock_server.scenarios.model import load_scenario
from mock_server.upstream.recording_file import kept_headers, match_rules, scenario_name, shown_url, write_scenario
from mock_server.wire.eventstream import CONTENT_TYPE as FRAMES

log = logging.getLogger("mock_llm_sse.recorder")


@dataclass(slots=True)
class Capture:
    """One exchange as it happens: enough of the request to match it again, and what came back."""

    method: str
    url: str
    path: str
    model: str | None
    prompt: str
    body: bytes
    status: int
    headers: list[tuple[str, str]]
    content_type: str
    events: list[tuple[float, bytes]] = field(default_factory=list)
    complete: bool = False
    """True once the upstream's body was read to its end: only then is the exchange written."""

    def add(self, data: bytes, at_ms: float) -> None:
        self.events.append((at_ms, data))

    @property
    def name(self) -> str:
        """The file's name, the same for the same request: so recording it again replaces it."""
        return scenario_name(self.method, self.path, self.model, self.body)


class Recorder:
    """Writes captures into `directory` and adds them to the catalog, so the next such request replays."""

    def __init__(self, directory: Path, catalog: Catalog) -> None:
        self.directory = directory
        self._catalog = catalog

    async def save(self, capture: Capture) -> Path | None:
        """Write the capture (when complete) and load it; returns the file written."""
        if not capture.complete:
            log.info("not recorded: %s %s ended before the upstream's body did", capture.method, capture.path)
            return None
        if capture.content_type.split(";")[0].strip().lower() == FRAMES:
            # A recording keeps its body as text, which binary frames do not survive.
            log.warning("not recorded: %s %s streams AWS event-stream frames", capture.method, capture.path)
            return None
        path = self.directory / f"{capture.name}.yaml"
        try:
            await asyncio.to_thread(write_scenario, scenario_fields(capture), path)
            scenario = load_scenario(await asyncio.to_thread(read_document, path), default_name=capture.name)
        except Exception:  # a recording that cannot be written must not take the server down
            log.exception("could not record %s %s in %s", capture.method, capture.path, path)
            return None
        self._catalog.add(scenario)
        log.info("recorded %s %s as %s", capture.method, capture.path, path)
        return path


def scenario_fields(capture: Capture) -> dict[str, Any]:
    """The scenario file's content for a capture."""
    shown = shown_url(capture.url)
    fields: dict[str, Any] = {
        "name": capture.name,
        "description": f"Recorded from {capture.method} {shown}",
        "match": match_rules(capture.path, capture.model, capture.prompt or None),
    }
    if capture.content_type:
        fields["content_type"] = capture.content_type
    headers = dict(kept_headers(capture.headers))
    if headers:
        fields["headers"] = headers
    events = capture.events
    if events and not capture.content_type.lower().startswith("text/event-stream"):
        # A body that is not SSE arrives in pieces cut anywhere, even inside a character: one event.
        events = [(events[-1][0], b"".join(data for _, data in events))]
    fields["recording"] = {
        "status": capture.status,
        "upstream": f"{capture.method} {shown}",
        "events": [{"at_ms": round(at_ms, 1), "data": data.decode("utf-8", "replace")} for at_ms, data in events],
    }
    fields["speed"] = 1
    return fields
