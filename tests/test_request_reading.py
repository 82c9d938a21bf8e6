"""The request path's own readings of a request (its query, its headers, its body) give what
Starlette's would: they exist only to be cheaper, never to read differently."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request

from mock_server.http.pipeline import _own_headers
from mock_server.http.request_body import MAX_JSON_DEPTH, Body, read_body
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


def test_own_headers_are_each_names_first_value_as_starlette_reads_it() -> None:
    raw = [
        (b"host", b"127.0.0.1"),
        (b"x-mock-scenario", b"first"),
        (b"last-event-id", b"7"),
        (b"x-mock-scenario", b"second"),
        (b"x-mock-conversation", b"caf\xe9"),
    ]
    own = _own_headers(raw)
    headers = Headers(raw=raw)
    for name in (b"x-mock-scenario", b"x-mock-conversation", b"last-event-id"):
        assert own[name] == headers[name.decode()]
    assert _own_headers([(b"host", b"127.0.0.1")]) == {}


def body_request(*messages: dict[str, Any]) -> Request:
    """A request whose body arrives as `messages`, then waits (a client that stays)."""
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await asyncio.Future()
        raise AssertionError("unreachable")

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


def test_a_body_in_several_messages_is_read_whole() -> None:
    request = body_request(
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b" 1}", "more_body": False},
    )
    assert asyncio.run(read_body(request, 1000)) == b'{"a": 1}'


def test_a_client_leaving_before_its_body_is_whole_is_a_client_disconnect() -> None:
    request = body_request({"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"})
    with pytest.raises(ClientDisconnect):
        asyncio.run(read_body(request, 1000))


@pytest.mark.parametrize("extra", [0, 200])
def test_nesting_is_judged_by_depth_not_by_how_many_brackets(extra: int) -> None:
    """Brackets inside strings or side by side do not make a body deep; only nesting does."""
    shallow = b'{"s": "' + b"[{" * extra + b'", "l": [' + b"[], " * extra + b"[]]}"
    assert Body.read(shallow).error is None
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    assert Body.read(deep).error is not None
    limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert Body.read(limit).error is None
