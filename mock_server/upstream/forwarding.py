"""What of a client's request goes upstream, and what of the upstream's response comes back: the
rules of forwarding, apart from the HTTP client that carries it out (`proxy`), which is loaded only
when there is an upstream.

Both sides are handled as the wire has them (ASGI's raw path, query string and lower-case header
names, in bytes): what passes through is neither decoded nor encoded again."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

from mock_server.timeline.overrides import OVERRIDE_QUERY

HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer", b"trailers"}
    | {b"transfer-encoding", b"upgrade", b"proxy-connection"}
)
"""Headers of one connection, never forwarded (RFC 9110 7.6.1)."""
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"accept-encoding"}
"""Request headers the upstream client sets itself (`client.request_head`); bodies are asked for
unencoded, so events can be counted."""
NOT_PASSED_BACK = HOP_BY_HOP | {b"content-length", b"content-encoding", b"date", b"server", b"vary"}
"""Response headers this server sets itself (framing, date, `Vary: Origin`) or that no longer hold."""
PATH_SAFE = "/!$&'()*+,;=:@%~"
"""What a path keeps unquoted when it goes upstream without the client's own bytes for it: its
separators and escapes as they came."""
_OVERRIDE_NAMES = frozenset(name.encode() for name in OVERRIDE_QUERY)
_MOCK_PREFIX = b"x-mock-"
_CORS_PREFIX = b"access-control-"


def passed_back(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream response headers (lower-case names) that reach the client: not framing, and not
    CORS, which this server answers for itself (a browser refuses a header given twice)."""
    return [header for header in headers if header[0] not in NOT_PASSED_BACK and not header[0].startswith(_CORS_PREFIX)]


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What goes upstream: the client's method, target (path and query, less ours), headers (less
    ours) and body."""

    method: str
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


def forwarded(
    method: str,
    path: str,
    raw_path: bytes | None,
    query_string: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
) -> Forwarded:
    """The request as the upstream gets it: its path as the client wrote it (`raw_path`; `path`
    quoted again when a server gives none), without hop-by-hop headers, `X-Mock-*` headers and the
    override parameters (`fault=`, `seed=`, ...), which are for this server."""
    target = raw_path if raw_path is not None else quote(path, safe=PATH_SAFE).encode("ascii")
    if query_string:
        query = kept_query(query_string)
        if query:
            target += b"?" + query
    kept_headers = tuple(
        (name, value) for name, value in headers if name not in NOT_FORWARDED and not name.startswith(_MOCK_PREFIX)
    )
    return Forwarded(method, target, kept_headers, body)


def kept_query(query_string: bytes) -> bytes:
    """A query string without the override parameters, the rest as the client wrote it."""
    kept = []
    for pair in query_string.split(b"&"):
        if not pair:
            continue
        name = pair.partition(b"=")[0]
        if b"%" in name or b"+" in name:
            name = unquote_plus(name.decode("latin-1")).encode()
        if name not in _OVERRIDE_NAMES:
            kept.append(pair)
    return b"&".join(kept)
