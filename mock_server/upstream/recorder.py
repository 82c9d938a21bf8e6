"""Each exchange with the upstream written as a scenario file that replays it: a `match` built from
the request (path, model, prompt), the response's status and headers (no cookie, key or token) and
its body as events with the moment each arrived. Nothing of the request but those three is written:
its headers (keys, tokens, cookies) never reach the file."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mock_server.scenarios.catalog import Catalog
from mock_server.scenarios.loading import parse_document
from mock_server.scenarios.model import load_scenario
from mock_server.scenarios.patterns import MATCH_INPUT_CHARS

log = logging.getLogger("mock_llm_sse.recorder")

SECRET_WORDS = ("key", "token", "secret", "auth", "cookie", "session", "password")
"""A response header whose name holds one of these is not written."""
NOT_RECORDED = frozenset({"content-type", "x-request-id", "request-id", "x-mock-request-id", "x-mock-scenario"})
"""Written elsewhere (`content_type`), or sent afresh by the server that replays it."""


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
        digest = hashlib.sha256(b"\0".join([self.method.encode(), self.path.encode(), self.body])).hexdigest()[:10]
        parts = [_slug(self.path), _slug(self.model or "")]
        return "-".join(part for part in parts if part)[:100] + "-" + digest


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
        document = scenario_document(capture)
        path = self.directory / f"{capture.name}.yaml"
        text = dump(document)
        await asyncio.to_thread(_write, path, text)
        self._catalog.add(load_scenario(parse_document(text, str(path)), default_name=capture.name))
        log.info("recorded %s %s as %s", capture.method, capture.path, path)
        return path


def scenario_document(capture: Capture) -> dict[str, Any]:
    """The scenario file's content for a capture."""
    match: dict[str, str] = {"path": "^" + re.escape(capture.path) + "$"}
    if capture.model:
        match["model"] = "^" + re.escape(capture.model) + "$"
    if capture.prompt:
        prompt = capture.prompt[:MATCH_INPUT_CHARS]
        match["prompt"] = "^" + re.escape(prompt) + ("$" if prompt == capture.prompt else "")
    headers = {
        name: value
        for name, value in capture.headers
        if name.lower() not in NOT_RECORDED and not any(word in name.lower() for word in SECRET_WORDS)
    }
    document: dict[str, Any] = {
        "name": capture.name,
        "description": f"Recorded from {capture.method} {capture.url}",
        "match": match,
    }
    if capture.content_type:
        document["content_type"] = capture.content_type
    if headers:
        document["headers"] = headers
    events = capture.events
    if events and not capture.content_type.lower().startswith("text/event-stream"):
        # A body that is not SSE arrives in pieces cut anywhere, even inside a character: one event.
        events = [(events[-1][0], b"".join(data for _, data in events))]
    document["recording"] = {
        "status": capture.status,
        "upstream": f"{capture.method} {capture.url}",
        "events": [{"at_ms": round(at_ms, 1), "data": data.decode("utf-8", "replace")} for at_ms, data in events],
    }
    document["speed"] = 1
    return document


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (an SSE event reads as it was sent); PyYAML quotes and
    escapes any that a block cannot hold exactly (a CR, trailing spaces)."""


def _string(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data and "\r" not in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _string)


def dump(document: dict[str, Any]) -> str:
    """YAML that reads back to the very same strings (CR, CRLF, tabs, any character)."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 30)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".yaml.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
