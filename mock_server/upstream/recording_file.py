"""A recording as a scenario file: its name, its `match` rules, the response headers it keeps (no
credential, no framing), the URL it shows (no key), and the file itself, written so that it reads
back as exactly the bytes recorded. The recorder and `mock-llm-sse import` both write through here."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import yaml

from mock_server.errors import MockLLMError, ScenarioError
from mock_server.journal.redaction import is_secret_name
from mock_server.scenarios.loading import Document, read_document
from mock_server.scenarios.model import load_scenario
from mock_server.scenarios.patterns import MATCH_INPUT_CHARS


class RecordingError(MockLLMError):
    """A recording that cannot be written as a scenario file; the message says why."""


_LEFT_OUT_HEADERS = frozenset(
    {
        # credentials
        "set-cookie",
        "cookie",
        "authorization",
        "proxy-authorization",
        # hop-by-hop and framing: the server frames the replay itself
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "content-encoding",
        "date",
        # said by `content_type`, or sent by the server for each request it answers
        "content-type",
        "cache-control",
        "x-request-id",
        "request-id",
    }
)
_SECRET_WORDS = frozenset({"key", "token", "secret"})
"""A header or query parameter with one of these words in its name is left out (`x-api-key`), on top
of the names the journal masks; `x-ratelimit-remaining-tokens` is kept."""
_WORD = re.compile(r"[a-z0-9]+")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VERSION_SEGMENT = re.compile(r"^v\d+[a-z0-9]*$")
_NOT_NAME = re.compile(r"[^a-z0-9.]+")
_SLUG_CHARS = 100
"""The readable part of a scenario name; the hash and a `-N` still fit in the 128 a name may have."""


def scenario_name(method: str, path: str, model: str | None, request_body: bytes) -> str:
    """`chat-completions-gpt-4o-3f2a1b9c`: the path's words, the model and a hash of the request, so
    that importing a cassette again gives the same names."""
    words = [segment for segment in path.split("/") if segment and not _VERSION_SEGMENT.match(segment.lower())]
    slug = _NOT_NAME.sub("-", "-".join([*words, model or ""]).lower())[:_SLUG_CHARS].strip("-.")
    digest = hashlib.sha256(f"{method} {path}\n".encode() + request_body).hexdigest()[:8]
    return f"{slug or 'request'}-{digest}"


def shown_url(uri: str) -> str:
    """The URL without what may be a credential: no `user:password@`, no query parameter whose name
    says key, token or secret (`?api_key=`, `?key=`), no fragment."""
    parts = urlsplit(uri)
    kept = [piece for piece in parts.query.split("&") if piece and not is_secret(unquote_plus(piece.split("=")[0]))]
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "&".join(kept), ""))


def match_rules(path: str, model: str | None, prompt: str | None) -> dict[str, str]:
    """Rules that choose the recording for the same request again: its path, model and prompt, exactly."""
    match: dict[str, str] = {"path": f"^{re.escape(path)}$"}
    if model is not None:
        match["model"] = f"^{re.escape(model)}$"
    if prompt is not None:
        # A rule reads the first MATCH_INPUT_CHARS characters of a prompt: a longer one is matched by those.
        whole = len(prompt) <= MATCH_INPUT_CHARS
        match["prompt"] = f"^{re.escape(prompt[:MATCH_INPUT_CHARS])}{'$' if whole else ''}"
    return match


def kept_headers(pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """The response headers a replay sends: one per name (repeated values joined with `, `), without
    credentials, framing and what the server sends itself; a header it could not send is left out too."""
    joined: dict[str, tuple[str, list[str]]] = {}
    for name, value in pairs:
        lower = name.lower()
        if lower in _LEFT_OUT_HEADERS or lower.startswith("x-mock-") or is_secret(name):
            continue
        if not _HEADER_NAME.match(name) or not value.isascii() or any(c in value for c in "\r\n\0"):
            continue  # not a header HTTP can carry as it is: the recording client decoded or mangled it
        joined.setdefault(lower, (name, []))[1].append(value)
    for name, values in joined.values():
        yield name, ", ".join(values)


def _is_secret(name: str) -> bool:
    return is_secret_name(name) or not _SECRET_WORDS.isdisjoint(_WORD.findall(name.lower()))


def is_secret(name: str) -> bool:
    """Whether a header or query parameter's name says it holds a credential."""
    return is_secret_name(name) or not _SECRET_WORDS.isdisjoint(_WORD.findall(name.lower()))


def write_scenario(fields: Mapping[str, Any], path: Path) -> None:
    """Write a scenario file that reads back as exactly `fields` (every byte of every event), replacing
    any file of that name; raises RecordingError when the scenario is invalid."""
    try:
        expected = load_scenario(Document(str(path), fields))
    except ScenarioError as exc:
        raise RecordingError("; ".join(problem.message for problem in exc.problems)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(handle)
    try:
        # Read back as the server reads it: what it replays must be what the cassette holds. Should the
        # readable form ever not read back exactly, escapes do.
        for dumper in (_ReadableDumper, _QuotingDumper):
            text = yaml.dump(dict(fields), Dumper=dumper, allow_unicode=True, sort_keys=False, width=sys.maxsize)
            Path(temporary).write_bytes(text.encode("utf-8"))
            if load_scenario(read_document(Path(temporary))) == expected:
                os.replace(temporary, path)
                return
        raise RecordingError(f"{path} would not read back as the recorded bytes, so it is not written")
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


class _ReadableDumper(yaml.SafeDumper):
    """Writes text of printable lines as a literal block (`|`), which reads back as the same text; any
    other text with a line break or a control character double-quoted, with escapes."""


class _QuotingDumper(yaml.SafeDumper):
    """Writes any text with a line break or a control character double-quoted, with escapes."""


_TEXT_TAG = "tag:yaml.org,2002:str"


def _fits_a_literal_block(text: str) -> bool:
    """Whether a literal block holds `text` exactly: lines of printable characters only (not CR, NEL,
    U+2028 or a BOM, which YAML readers and Python's text mode normalise) and no space before a line
    break or at the end (YAML writers refuse those in blocks)."""
    return "\n" in text and text.replace("\n", "").isprintable() and " \n" not in text and not text.endswith(" ")


def _represent_readably(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    if _fits_a_literal_block(text):
        return dumper.represent_scalar(_TEXT_TAG, text, style="|")
    return _represent_quoted(dumper, text)


def _represent_quoted(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    if not text.isprintable():
        return dumper.represent_scalar(_TEXT_TAG, text, style='"')
    return dumper.represent_scalar(_TEXT_TAG, text)


_ReadableDumper.add_representer(str, _represent_readably)
_QuotingDumper.add_representer(str, _represent_quoted)
