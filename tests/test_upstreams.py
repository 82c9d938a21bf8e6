"""The test upstreams themselves, checked with real clients: what a script says is what arrives."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import httpx_sse
import pytest

import mock_server.http.server as mock_http_server
from mock_server.http.app import MockApp
from mock_server.http.limits import LimitedConfig
from mock_server.http.server import MockServer
from mock_server.settings import Settings
from tests.test_server import open_fds
from tests.upstreams import (
    AWKWARD_SSE_DATA,
    LocalCA,
    Piece,
    RawUpstream,
    RecordedRequest,
    Script,
    awkward_sse,
    awkward_sse_script,
)
from tests.wire import Ending, fetch, read_to_end, request_head

HEAD = b"HTTP/1.1 200 OK\r\nX-Odd:no-space\r\nset-cookie: a=1\r\nSet-Cookie:  b=2 \r\n"
ODD_HEADERS = (b"X-Odd:no-space", b"set-cookie: a=1", b"Set-Cookie:  b=2 ")
PIECES = (Piece(b"hello"), Piece(b"0123456789abcdef"))  # 16 bytes: a chunk size of two hex digits


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA.create(tmp_path_factory.mktemp("tls"))


def exchange(port: int, request: bytes) -> tuple[bytes, Ending]:
    """Send `request` on a new connection and read everything until the server ends it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        return read_to_end(sock, timeout=5)


def tls_exchange(port: int, request: bytes, context: ssl.SSLContext) -> tuple[bytes, Ending]:
    """`exchange` over TLS, spoken through memory buffers so the socket's own ending shows: Python's
    SSL sockets report a reset under TLS as a plain EOF (OpenSSL 3)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        tls.write(request)
        sock.sendall(outgoing.read())
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return received, Ending.RESET
            if not data:
                return received, Ending.EOF
            incoming.write(data)
            with contextlib.suppress(ssl.SSLWantReadError):
                while chunk := tls.read(65536):
                    received += chunk
                return received, Ending.EOF  # an empty read: close_notify, the TLS stream ended in order


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(
            Script(headers=ODD_HEADERS, pieces=PIECES),
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
            id="chunked",
        ),
        pytest.param(
            Script(headers=ODD_HEADERS, pieces=(*PIECES, Piece(b"")), framing="content-length"),
            HEAD + b"Content-Length: 21\r\n\r\nhello0123456789abcdef",
            id="content-length",
        ),
        pytest.param(
            Script(headers=ODD_HEADERS, pieces=PIECES, framing="close"),
            HEAD + b"Connection: close\r\n\r\nhello0123456789abcdef",
            id="close",
        ),
        pytest.param(
            Script(
                status=b"HTTP/1.1 299 Odd Reason",
                headers=(b"Content-Length: 3", b"Transfer-Encoding: chunked"),
                pieces=(Piece(b"ab"), Piece(b""), Piece(b"c")),
                framing_headers=False,
            ),
            b"HTTP/1.1 299 Odd Reason\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
            id="own-framing-headers",
        ),
    ],
)
def test_a_script_arrives_byte_for_byte(script: Script, expected: bytes) -> None:
    with RawUpstream(script) as upstream:
        received, ending = exchange(upstream.port, request_head("/", [("Connection", "close")]))
    assert received == expected
    assert ending is Ending.EOF


def test_pieces_arrive_after_their_delays() -> None:
    script = Script(pieces=(Piece(b"first"), Piece(b"second", delay_ms=150), Piece(b"third", delay_ms=150)))
    with RawUpstream(script) as upstream:
        response = fetch(upstream.url)
    assert [chunk for _, chunk in response.chunks] == [b"first", b"second", b"third"]
    assert response.arrived(b"first") < 0.1
    assert 0.145 <= response.arrived(b"second") < 0.45  # never early; late by as much as a busy machine makes it
    assert 0.295 <= response.arrived(b"third") < 0.6
    assert response.ending is Ending.COMPLETE


@pytest.mark.parametrize(
    ("script", "body", "wire", "error", "ending"),
    [
        pytest.param(
            Script(pieces=PIECES, end="cut"),
            b"hello0123456789abcdef",
            b"5\r\nhello\r\n10\r\n0123456789abcdef\r\n",
            httpx.RemoteProtocolError,
            Ending.EOF,
            id="cut-chunked",
        ),
        pytest.param(
            Script(pieces=PIECES, end="cut", end_after=1, framing="content-length"),
            b"hello",
            b"hello",
            httpx.RemoteProtocolError,
            Ending.EOF,
            id="cut-content-length",
        ),
        pytest.param(
            Script(pieces=PIECES, end="reset", end_after=1),
            b"hello",
            b"5\r\nhello\r\n",
            httpx.ReadError,
            Ending.RESET,
            id="reset",
        ),
        pytest.param(Script(status=b"", end="cut"), b"", b"", httpx.RemoteProtocolError, Ending.EOF, id="cut-no-head"),
        pytest.param(Script(status=b"", end="reset"), b"", b"", httpx.ReadError, Ending.RESET, id="reset-no-head"),
    ],
)
def test_an_abnormal_end_is_the_error_clients_see(
    script: Script, body: bytes, wire: bytes, error: type[httpx.HTTPError], ending: Ending
) -> None:
    received: list[bytes] = []
    with RawUpstream(script) as upstream, httpx.Client() as client:
        with pytest.raises(error), client.stream("GET", upstream.url) as response:
            received.extend(response.iter_raw())
        raw, raw_ending = exchange(upstream.port, request_head("/"))
    assert b"".join(received) == body
    assert (raw, raw_ending) == (script.head() + wire, ending)


def test_requests_are_recorded_as_they_arrived() -> None:
    head = (
        b"POST /v1/chat/completions?stream=true&x=%20 HTTP/1.1\r\nHost: up\r\nConnection: close\r\n"
        b"authorization: Bearer sk-1\r\nX-Dup: 1\r\nX-Dup:2\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with RawUpstream(Script()) as upstream:
        exchange(upstream.port, head + b'3\r\n{"a\r\n2;ext=1\r\n":\r\n2\r\n1}\r\n0\r\nTrailer: t\r\n\r\n')
        with httpx.Client() as client:
            client.post(upstream.url + "/two", content=b"plain", headers={"X-Mock-Fault": "drop@1"})
        first, second = upstream.requests
    assert first == RecordedRequest(
        method="POST",
        target="/v1/chat/completions?stream=true&x=%20",
        headers=[
            ("Host", "up"),
            ("Connection", "close"),
            ("authorization", "Bearer sk-1"),
            ("X-Dup", "1"),
            ("X-Dup", "2"),
            ("Transfer-Encoding", "chunked"),
        ],
        body=b'{"a":1}',
        connection=1,
    )
    assert first.path == "/v1/chat/completions"
    assert first.header("Authorization") == "Bearer sk-1"
    assert first.header("x-mock-fault") is None
    assert (second.method, second.target, second.body, second.connection) == ("POST", "/two", b"plain", 2)
    assert second.header("X-Mock-Fault") == "drop@1"
    assert [name for name, _ in second.headers][-2:] == ["X-Mock-Fault", "Content-Length"]


def test_routes_pick_a_script_by_path_and_the_rest_get_404() -> None:
    routes = {"/v1/models": Script(pieces=(Piece(b"models"),))}
    with RawUpstream(routes=routes) as upstream, httpx.Client(base_url=upstream.url) as client:
        assert client.get("/v1/models?limit=1").content == b"models"
        assert client.get("/elsewhere").status_code == 404
        upstream.default = Script(pieces=(Piece(b"default"),))
        assert client.get("/elsewhere").content == b"default"


def test_one_connection_carries_several_requests() -> None:
    with RawUpstream(Script(pieces=PIECES)) as upstream, httpx.Client() as client:
        for _ in range(3):
            assert client.get(upstream.url).content == b"hello0123456789abcdef"
        upstream.default = Script(pieces=PIECES, framing="content-length")
        assert client.get(upstream.url).content == b"hello0123456789abcdef"
        assert [request.connection for request in upstream.requests] == [1, 1, 1, 1]


def test_connections_are_served_at_once() -> None:
    script = Script(pieces=(Piece(b"late", delay_ms=200),))
    with RawUpstream(script) as upstream, ThreadPoolExecutor(4) as pool:
        began = time.monotonic()
        bodies = list(pool.map(lambda _: httpx.get(upstream.url).content, range(4)))
        took = time.monotonic() - began
        assert sorted(request.connection for request in upstream.requests) == [1, 2, 3, 4]
    assert bodies == [b"late"] * 4
    assert took < 0.6  # one after the other would be 0.8 s


def test_awkward_sse_is_read_by_a_conforming_parser_as_its_data() -> None:
    with RawUpstream(awkward_sse_script()) as upstream, httpx.Client() as client:
        with httpx_sse.connect_sse(client, "GET", upstream.url) as source:
            events = list(source.iter_sse())
        response = fetch(upstream.url)
    assert [event.data for event in events] == list(AWKWARD_SSE_DATA)
    assert [event.id for event in events] == ["1", "2", "3", "3"]
    assert events[0].retry == 1500
    pieces = awkward_sse()
    assert [chunk for _, chunk in response.chunks] == [piece.data for piece in pieces]
    body = response.body
    assert b": upstream says hello\r\n" in body
    assert b"\r\n\r\n" in body
    assert b"\rdata: " in body.replace(b"\r\n", b"")  # a line ended by CR alone
    with pytest.raises(UnicodeDecodeError):  # the split falls inside a multi-byte character
        pieces[3].data.decode()
    assert response.arrived(pieces[4].data) >= 0.019


def test_awkward_sse_needs_three_events() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        awkward_sse(["a", "b"])


def test_tls_upstream_is_trusted_with_its_ca_only(ca: LocalCA) -> None:
    with RawUpstream(Script(pieces=PIECES), tls=ca) as upstream:
        assert upstream.url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=ca.client_context()) as client:
            assert client.get(upstream.url).content == b"hello0123456789abcdef"
            assert client.get(f"https://localhost:{upstream.port}/").status_code == 200
        trusting = ssl.create_default_context(cafile=str(ca.ca_pem))  # the PEM file alone is enough
        assert httpx.get(upstream.url, verify=trusting).status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(upstream.url)


@pytest.mark.parametrize(
    ("script", "ending", "error"),
    [
        (Script(pieces=PIECES), Ending.EOF, None),
        (Script(pieces=PIECES, end="cut"), Ending.EOF, httpx.RemoteProtocolError),
        # The RST is on the wire, but Python's SSL layer reports it as a ragged EOF, so httpx over
        # TLS cannot tell a reset from a cut.
        (Script(pieces=PIECES, end="reset"), Ending.RESET, httpx.RemoteProtocolError),
    ],
    ids=["complete", "cut", "reset"],
)
def test_tls_carries_the_same_bytes_and_endings(
    ca: LocalCA, script: Script, ending: Ending, error: type[httpx.HTTPError] | None
) -> None:
    request = request_head("/", [("Connection", "close")])
    with RawUpstream(script, tls=ca) as upstream:
        received, seen = tls_exchange(upstream.port, request, ca.client_context())
        with httpx.Client(verify=ca.client_context()) as client:
            if error is None:
                assert client.get(upstream.url).content == b"hello0123456789abcdef"
            else:
                with pytest.raises(error):
                    client.get(upstream.url)
    chunks = b"5\r\nhello\r\n10\r\n0123456789abcdef\r\n"
    assert received == script.head() + chunks + (b"0\r\n\r\n" if script.end == "complete" else b"")
    assert seen is ending


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_stop_closes_every_connection_socket_and_thread(ca: LocalCA, tls: bool) -> None:
    threads, fds = set(threading.enumerate()), open_fds()
    routes = {"/stalls": Script(pieces=(Piece(b"a"), Piece(b"never", delay_ms=10_000)))}
    upstream = RawUpstream(Script(pieces=PIECES), routes, tls=ca if tls else None).start()
    port, verify = upstream.port, ca.client_context() if tls else True
    silent = socket.create_connection(("127.0.0.1", port))  # sends nothing: no request, no TLS handshake
    with silent, httpx.Client(verify=verify) as idle, httpx.Client(verify=verify) as streaming:
        assert idle.get(upstream.url).status_code == 200  # then kept alive, idle
        with streaming.stream("GET", upstream.url + "/stalls") as response:
            body = response.iter_raw()
            assert next(body) == b"a"
            began = time.monotonic()
            upstream.stop()
            took = time.monotonic() - began
            with pytest.raises(httpx.RemoteProtocolError):
                next(body)
        assert read_to_end(silent, timeout=1) == (b"", Ending.EOF)
    assert took < 0.5
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    assert set(threading.enumerate()) == threads
    assert open_fds() == fds


def test_a_mock_server_speaks_no_tls_of_its_own(ca: LocalCA) -> None:
    assert not [f.name for f in dataclasses.fields(Settings) if any(w in f.name for w in ("tls", "ssl", "cert"))]
    with MockServer(settings=Settings(port=0, access_log=False)) as server:
        assert server.url.startswith("http://")
        with pytest.raises(httpx.ConnectError, match=r"WRONG_VERSION_NUMBER|wrong version number"):
            httpx.get(server.url.replace("http:", "https:") + "/_mock/health", verify=ca.client_context())


def test_a_mock_server_serves_tls_only_when_its_uvicorn_config_is_patched(
    ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack under MockServer (uvicorn, our protocol) is TLS-ready; only the settings lack the way."""
    unpatched = mock_http_server.uvicorn_config

    def with_certificate(app: MockApp, settings: Settings, *, configure_logging: bool = True) -> LimitedConfig:
        config = unpatched(app, settings, configure_logging=configure_logging)
        config.ssl_certfile, config.ssl_keyfile = str(ca.cert_pem), str(ca.key_pem)
        return config

    monkeypatch.setattr(mock_http_server, "uvicorn_config", with_certificate)
    with MockServer(settings=Settings(port=0, access_log=False)) as server:
        url = server.url.replace("http:", "https:")
        response = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            verify=ca.client_context(),
        )
    assert response.status_code == 200
    assert response.text.rstrip().endswith("data: [DONE]")
