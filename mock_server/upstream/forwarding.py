"""What of a client's request goes upstream, and what of the upstream's response comes back: the
rules of forwarding, apart from the HTTP client that carries it out (`proxy`), which is loaded only
when there is an upstream."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mock_server.timeline.overrides import OVERRIDE_QUERY

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers"}
    | {"transfer-encoding", "upgrade", "proxy-connection"}
)
"""Headers of one connection, never forwarded (RFC 9110 7.6.1)."""
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "accept-encoding"}
"""Request headers the upstream client sets itself (`client.request_head`); bodies are asked for
unencoded, so events can be counted."""
NOT_PASSED_BACK = HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}
"""Response headers this server sets itself (framing, date) or that no longer hold."""


def passed_back(name: str) -> bool:
    """Whether an upstream response header (lower-case) reaches the client: not framing, and not CORS,
    which this server answers for itself (a browser refuses a header given twice)."""
    return name not in NOT_PASSED_BACK and not name.startswith("access-control-") and name != "vary"


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What goes upstream: the client's method, path, query and headers (less ours) and body."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes


def forwarded(
    method: str, path: str, query: Iterable[tuple[str, str]], headers: Iterable[tuple[str, str]], body: bytes
) -> Forwarded:
    """The request as the upstream gets it: without hop-by-hop headers, `X-Mock-*` headers and the
    override parameters (`fault=`, `seed=`, ...), which are for this server."""
    kept_query = tuple((name, value) for name, value in query if name not in OVERRIDE_QUERY)
    kept_headers = tuple(
        (name, value)
        for name, value in headers
        if name.lower() not in NOT_FORWARDED and not name.lower().startswith("x-mock-")
    )
    return Forwarded(method, path, kept_query, kept_headers, body)
