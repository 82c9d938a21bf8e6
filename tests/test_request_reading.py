"""The request path's own readings of a request (its query, its headers, its body) give what
Starlette's would: they exist only to be cheaper, never to read differently."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from mock_server.http.state import NO_QUERY, query_of


def request_of(query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": query}
    return Request({**scope, "headers": headers or []})


@pytest.mark.parametrize(
    "query",
    [
        b"api-version=2024-10-21",
        b"messages=x&model=bench-burst",
        b"a=1&a=2&b=",
        b"flag&&=empty-name&x=a=b",
        b"q=hello+world&r=%C3%A9t%C3%A9&s=%zz",
        b"name=caf\xe9",
        b"a;b=1",
    ],
)
def test_query_reads_as_starlettes_query_params(query: bytes) -> None:
    ours, theirs = query_of(request_of(query)), request_of(query).query_params
    assert dict(ours) == dict(theirs.items())
    assert ours.multi_items() == theirs.multi_items()


def test_a_request_without_a_query_shares_the_empty_one() -> None:
    assert query_of(request_of()) is NO_QUERY
    assert not NO_QUERY
    assert NO_QUERY.multi_items() == []
