"""The proxy against raw upstreams that send what real ones do (CRLF and CR line endings, comments,
`id:` and `retry:` fields, an event split inside a character) and against an HTTPS upstream with a
private CA, through raw sockets, httpx and the `serve` command."""

from __future__ import annotations

import base64
import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mock_server.http.server import MockServer
from mock_server.scenarios.recording import EventSplitter, is_comment_block
from mock_server.settings import Settings
from tests.conftest import cli_server, recorded, wait_until
from tests.upstreams import End, Framing, LocalCA, Piece, RawUpstream, awkward_sse_script
from tests.wire import Ending, fetch

CHAT = "/v1/chat/completions"
AWKWARD = awkward_sse_script()
AWKWARD_BYTES = b"".join(piece.data for piece in AWKWARD.pieces)
BODY: dict[str, Any] = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def awkward() -> Iterator[RawUpstream]:
    with RawUpstream(routes={CHAT: AWKWARD}) as upstream:
        yield upstream


def proxy_of(upstream: RawUpstream, **settings: Any) -> MockServer:
    return MockServer(settings=Settings(port=0, access_log=False, upstream=upstream.url, **settings))


def test_awkward_framing_passes_through_byte_for_byte(awkward: RawUpstream) -> None:
    with proxy_of(awkward) as server:
        got = fetch(server.url + CHAT, method="POST", body=BODY, headers={"Authorization": "Bearer sk-1"})
        record = server.records()[-1]
    assert got.ending is Ending.COMPLETE
    assert got.body == AWKWARD_BYTES
    assert record.events_sent == 4  # the comment block passes, uncounted


def test_faults_count_upstream_events_whatever_their_line_endings(awkward: RawUpstream) -> None:
    pieces = [piece.data for piece in AWKWARD.pieces]
    comment, first, second = pieces[0], pieces[1], pieces[2]
    with proxy_of(awkward) as server:
        cut = fetch(server.url + CHAT + "?fault=drop@2", method="POST", body=BODY)
    assert cut.ending is Ending.EOF
    assert cut.body == comment + first + second


def test_what_is_forwarded_is_the_clients_request_less_ours(awkward: RawUpstream) -> None:
    with proxy_of(awkward) as server:
        fetch(
            server.url + CHAT + "?fault=split@1&api-version=2024-10-21",
            method="POST",
            body=BODY,
            headers={"Authorization": "Bearer sk-1", "X-Mock-Seed": "4", "OpenAI-Organization": "org-1"},
        )
    (seen,) = awkward.requests
    assert (seen.method, seen.target) == ("POST", CHAT + "?api-version=2024-10-21")
    assert seen.header("Authorization") == "Bearer sk-1"
    assert seen.header("OpenAI-Organization") == "org-1"
    assert seen.header("X-Mock-Seed") is None
    assert seen.header("Accept-Encoding") == "identity"
    assert httpx.Response(200, content=seen.body).json() == BODY


def test_the_path_and_query_go_upstream_as_the_client_wrote_them(awkward: RawUpstream) -> None:
    # An escaped override name is still ours; every other pair keeps its bytes, escapes and order.
    query = "?b=x%20y&fa%75lt=delay@1:1&a=1+2&&seed=3&c=%2F"
    with proxy_of(awkward) as server:
        got = fetch(server.url + CHAT + query, method="POST", body=BODY)
    (seen,) = awkward.requests
    assert got.ending is Ending.COMPLETE
    assert seen.target == CHAT + "?b=x%20y&a=1+2&c=%2F"


def test_the_upstream_urls_credentials_go_as_basic_auth_unless_the_client_brings_its_own(
    awkward: RawUpstream,
) -> None:
    url = awkward.url.replace("http://", "http://user:pa%20ss@")
    with MockServer(settings=Settings(port=0, access_log=False, upstream=url)) as server:
        fetch(server.url + CHAT, method="POST", body=BODY)
        fetch(server.url + CHAT, method="POST", body=BODY, headers={"Authorization": "Bearer sk-1"})
    without, with_own = awkward.requests
    assert without.header("Authorization") == "Basic " + base64.b64encode(b"user:pa ss").decode()
    assert [value for name, value in with_own.headers if name.lower() == "authorization"] == ["Bearer sk-1"]
    assert without.header("Host") == awkward.url.removeprefix("http://")


def test_a_recording_of_an_awkward_stream_replays_its_bytes(awkward: RawUpstream, tmp_path: Path) -> None:
    with proxy_of(awkward, record_dir=tmp_path) as server:
        first = fetch(server.url + CHAT, method="POST", body=BODY)
        recorded(server, tmp_path)
        again = fetch(server.url + CHAT, method="POST", body=BODY)
    assert len(awkward.requests) == 1
    assert first.body == again.body == AWKWARD_BYTES


@pytest.mark.parametrize(("end", "ending"), [("cut", Ending.EOF), ("reset", Ending.RESET)])
def test_an_upstream_cut_or_reset_reaches_the_client_as_such(end: End, ending: Ending) -> None:
    script = dataclasses.replace(AWKWARD, end=end, end_after=3)
    with RawUpstream(routes={CHAT: script}) as upstream, proxy_of(upstream) as server:
        got = fetch(server.url + CHAT, method="POST", body=BODY)
    assert got.ending is ending
    assert got.body == b"".join(piece.data for piece in AWKWARD.pieces[:3])


def test_an_https_upstream_is_verified_against_the_given_ca(tmp_path: Path) -> None:
    ca = LocalCA.create(tmp_path)
    with RawUpstream(routes={CHAT: AWKWARD}, tls=ca) as upstream:
        assert upstream.url.startswith("https://")
        with proxy_of(upstream, upstream_ca=ca.ca_pem) as trusting:
            trusted = fetch(trusting.url + CHAT, method="POST", body=BODY)
        with proxy_of(upstream) as default:
            refused = httpx.post(default.url + CHAT, json=BODY)
    assert trusted.body == AWKWARD_BYTES
    assert refused.status_code == 502
    assert "CERTIFICATE_VERIFY_FAILED" in refused.json()["error"]["message"]


@pytest.mark.slow  # starts the command
def test_serve_proxies_to_an_https_upstream(tmp_path: Path) -> None:
    ca = LocalCA.create(tmp_path)
    with (
        RawUpstream(routes={CHAT: AWKWARD}, tls=ca) as upstream,
        cli_server("--upstream", upstream.url, "--upstream-ca", str(ca.ca_pem), "--record", str(tmp_path / "rec")) as (
            process,
            url,
        ),
    ):
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(4)]
        got = fetch(url + CHAT, method="POST", body=BODY)
        recorded = wait_until(lambda: list((tmp_path / "rec").glob("*.yaml")) or None, "the recording")
        assert f"Upstream: {upstream.url} gets model requests no scenario answers\n" in banner
    assert got.body == AWKWARD_BYTES
    assert len(recorded) == 1


def test_paths_this_server_does_not_model_are_forwarded_with_their_faults(tmp_path: Path) -> None:
    plain = dataclasses.replace(AWKWARD, headers=(b"Content-Type: application/json",), pieces=AWKWARD.pieces[1:2])
    routes = {"/mcp/sse": AWKWARD, "/v1/moderations": plain}
    with RawUpstream(routes=routes) as upstream, proxy_of(upstream, record_dir=tmp_path) as server:
        streamed = fetch(server.url + "/mcp/sse?session=1&fault=drop@1")
        posted = fetch(server.url + "/v1/moderations", method="POST", body="not json at all")
        docs = httpx.get(server.url + "/openapi.json")
        targets = [request.target for request in upstream.requests]
    assert (streamed.ending, streamed.body) == (Ending.EOF, b"".join(p.data for p in AWKWARD.pieces[:2]))
    assert posted.body == AWKWARD.pieces[1].data
    assert docs.status_code == 200, "what this server answers itself is not forwarded"
    assert targets == ["/mcp/sse?session=1", "/v1/moderations"]


def test_without_an_upstream_an_unknown_path_is_still_a_404(server: MockServer) -> None:
    assert httpx.get(server.url + "/mcp/sse").status_code == 404


def test_after_its_last_fault_a_live_stream_is_passed_on_whole_and_still_counted(awkward: RawUpstream) -> None:
    pieces = [piece.data for piece in AWKWARD.pieces]
    with proxy_of(awkward) as server:
        got = fetch(server.url + CHAT + "?fault=duplicate@0", method="POST", body=BODY)
        record = wait_until(lambda: next((r for r in server.records() if r.outcome), None), "the record")
    assert got.body == pieces[0] + pieces[1] + pieces[1] + b"".join(pieces[2:])
    assert record.events_sent == 5  # four events, the first twice; the comment block is not one


@pytest.mark.parametrize(
    ("framing", "connections"), [("chunked", [1, 1]), ("content-length", [1, 1]), ("close", [1, 2])]
)
def test_every_framing_passes_through_and_a_connection_is_kept_when_it_can_be(
    framing: Framing, connections: list[int]
) -> None:
    script = dataclasses.replace(AWKWARD, framing=framing)
    with RawUpstream(routes={CHAT: script}) as upstream, proxy_of(upstream) as server:
        bodies = [fetch(server.url + CHAT, method="POST", body=BODY) for _ in range(2)]
    assert [(got.ending, got.body) for got in bodies] == [(Ending.COMPLETE, AWKWARD_BYTES)] * 2
    assert [request.connection for request in upstream.requests] == connections


def test_a_connection_the_upstream_closes_after_its_response_is_not_used_again() -> None:
    script = dataclasses.replace(AWKWARD, framing="content-length", end="cut")  # the whole body, then FIN
    with RawUpstream(routes={CHAT: script}) as upstream, proxy_of(upstream) as server:
        bodies = [fetch(server.url + CHAT, method="POST", body=BODY) for _ in range(3)]
    assert [(got.ending, got.body) for got in bodies] == [(Ending.COMPLETE, AWKWARD_BYTES)] * 3
    assert [request.connection for request in upstream.requests] == [1, 2, 3]


def test_an_upstream_silent_mid_body_past_the_timeout_cuts_the_stream() -> None:
    first = AWKWARD.pieces[0]
    script = dataclasses.replace(AWKWARD, pieces=(first, Piece(b"data: late\n\n", delay_ms=5000)))
    with RawUpstream(routes={CHAT: script}) as upstream, proxy_of(upstream, upstream_timeout_s=0.3) as server:
        began = time.monotonic()
        got = fetch(server.url + CHAT, method="POST", body=BODY)
        took = time.monotonic() - began
    assert (got.ending, got.body) == (Ending.EOF, first.data)
    assert took < 4  # the upstream's late piece was 5 s away


def test_a_head_request_gets_the_upstreams_head_and_the_next_request_a_connection_of_its_own() -> None:
    with RawUpstream(routes={"/mcp/sse": AWKWARD}) as upstream, proxy_of(upstream) as server:
        head = httpx.head(server.url + "/mcp/sse")
        after = fetch(server.url + "/mcp/sse")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"].startswith("text/event-stream")
    assert after.body == AWKWARD_BYTES
    assert [(request.method, request.connection) for request in upstream.requests] == [("HEAD", 1), ("GET", 2)]


SSE_BYTES = st.lists(st.sampled_from([b"data: x", b"\n", b"\n", b"\r", b"\r\n", b":", b": ping"]), max_size=30)
BLOCK_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
LF_SSE_BYTES = st.lists(st.sampled_from([b"data: x", b"\n", b"\n\n", b":", b": ping", b"data: y\n\n"]), max_size=30)


@settings(max_examples=300, deadline=None)
@given(SSE_BYTES, st.lists(st.integers(0, 200), max_size=6))
def test_sse_blocks_are_cut_the_same_whatever_pieces_they_arrive_in(parts: list[bytes], cuts: list[int]) -> None:
    assert_cut_alike(b"".join(parts), cuts)


@settings(max_examples=300, deadline=None)
@given(LF_SSE_BYTES, st.lists(st.integers(0, 200), max_size=6))
def test_lf_only_sse_blocks_are_counted_as_they_are_cut(parts: list[bytes], cuts: list[int]) -> None:
    # Without a CR, a stream passed on whole is cut by `bytes.split` (a piece that is one whole block is
    # taken as it is), not by the pattern: the same blocks all the same.
    assert_cut_alike(b"".join(parts), cuts)


def assert_cut_alike(body: bytes, cuts: list[int]) -> None:
    """`body` in the pieces `cuts` make is cut (`feed`) and passed on whole (`feed_whole`) into the blocks
    the pattern finds in it whole."""
    # A CR at the very end may be the first half of a CRLF: a splitter waits for what follows it.
    ends = [
        match.end() for match in BLOCK_END.finditer(body) if not (match.end() == len(body) and body.endswith(b"\r"))
    ]
    whole = [body[start:end] for start, end in zip([0, *ends], ends, strict=False)]
    points = sorted({min(cut, len(body)) for cut in cuts})
    pieces = [body[start:end] for start, end in zip([0, *points], [*points, len(body)], strict=True)]
    blocks, passed = EventSplitter(), EventSplitter()
    cut = [block for piece in pieces for block in blocks.feed(piece)]
    passed_on = [passed.feed_whole(piece) for piece in pieces]
    assert cut == whole
    assert b"".join(data for data, _ in passed_on) == b"".join(whole)
    assert sum(events for _, events in passed_on) == sum(1 for block in whole if not is_comment_block(block))
    assert blocks.rest() == passed.rest() == body[len(b"".join(whole)) :]


SSE_FIELDS = [b"data: x", b"event: e", b"id: 1", b":", b": ping", b"data: y\n\n"]
LINE_BREAKS = [b"\n", b"\n", b"\n\n", b"\n\n\n", b"\r", b"\r\n"]
EDGE_BODIES = [
    b"data: a\n\ndata: b\n\n",
    b": ping\n\ndata: a\n\n\n\ndata: b\n\n: c\n\n",
    b"event: e\ndata: a\n\n\n: x\ndata: b\n\n\n\n\ndata: c\n",
    b"data: a\r\n\r\n\n\ndata: b\r\r: c\r\n\ndata: d\n\n",
    b"\n\ndata: a\n\n:\n\n\n:x\n\ndata: b\n\n",
]


def assert_passed_on_like_cut(pieces: list[bytes]) -> None:
    """Each piece passed on whole gives the very blocks, and as many events, as cutting it does."""
    cut, passed = EventSplitter(), EventSplitter()
    for piece in pieces:
        blocks = cut.feed(piece)
        events = sum(1 for block in blocks if not is_comment_block(block))
        assert passed.feed_whole(piece) == (b"".join(blocks), events), pieces
    assert passed.rest() == cut.rest()


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(SSE_FIELDS + LINE_BREAKS), max_size=40), st.lists(st.integers(0, 300), max_size=8))
def test_each_piece_passed_on_whole_counts_the_events_cutting_it_finds(parts: list[bytes], cuts: list[int]) -> None:
    body = b"".join(parts)
    points = sorted({min(cut, len(body)) for cut in cuts})
    assert_passed_on_like_cut([body[start:end] for start, end in zip([0, *points], [*points, len(body)], strict=True)])


@pytest.mark.parametrize("body", EDGE_BODIES)
def test_a_piece_passed_on_whole_counts_alike_wherever_the_stream_is_cut(body: bytes) -> None:
    for first in range(len(body) + 1):
        for second in range(first, len(body) + 1):
            assert_passed_on_like_cut([body[:first], body[first:second], body[second:]])
