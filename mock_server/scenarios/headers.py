"""The response headers a scenario (or its `status` fault) adds, and those it leaves out: a header
given as null is not sent, even one the server would add itself (`Retry-After` on a 429)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

from mock_server.scenarios.problems import Described

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_SET_BY_THE_SERVER = {"content-length", "transfer-encoding", "connection", "content-type"}


HeaderPairs = tuple[tuple[str, str | None], ...]


def _pairs(value: object) -> object:
    """A mapping, as files write headers, as the pairs the model holds."""
    return tuple(value.items()) if isinstance(value, Mapping) else value


def _check(value: HeaderPairs) -> HeaderPairs:
    for name, header_value in value:
        if not _HEADER_NAME.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP token")
        if name.lower() in _SET_BY_THE_SERVER:
            raise ValueError(f"header {name!r} is set by the server; use `content_type` for Content-Type")
        if header_value is None:
            continue
        if any(c in header_value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} has a CR, LF or NUL in its value")
        if not header_value.isascii():
            raise ValueError(f"header {name!r} has non-ASCII characters in its value; percent-encode them")
    return value


ResponseHeaders = Annotated[
    HeaderPairs,
    BeforeValidator(_pairs),
    AfterValidator(_check),
    PlainSerializer(dict),
    Described("a mapping of header names to values (null: not sent)"),
]
"""Header names and values to send, written as a mapping; a value of None leaves the header out.
Held as name and value pairs, so that what holds them can be hashed (faults key caches)."""


def merge_headers(*layers: Mapping[str, str | None] | HeaderPairs) -> HeaderPairs:
    """The layers' headers, a later layer's value (None included) replacing an earlier one's of the
    same name, whatever its case; the first spelling of a name is kept."""
    merged: dict[str, str | None] = {}
    spelling: dict[str, str] = {}
    for layer in layers:
        for name, value in layer.items() if isinstance(layer, Mapping) else layer:
            merged[spelling.setdefault(name.lower(), name)] = value
    return tuple(merged.items())


def sent(headers: HeaderPairs) -> tuple[tuple[str, str], ...]:
    """The headers that are sent, as name and value pairs."""
    return tuple((name, value) for name, value in headers if value is not None)
