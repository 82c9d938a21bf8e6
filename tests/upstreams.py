"""Real local upstreams for proxy tests: no internet, exact bytes.

`RawUpstream` is a TCP server on 127.0.0.1 (a thread running an asyncio loop) that answers each
request with a `Script`: a status line and header lines written as given, body pieces each after
its delay, in the framing chosen, and an ending that may be abnormal (a cut or a reset). It records
every request as received, so a test can assert what a proxy forwarded. `LocalCA` makes a CA and a
certificate for 127.0.0.1 and localhost to run it over TLS; `awkward_sse` is a body with the parts
real upstreams send that naive SSE parsers get wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import struct
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import trustme

Framing = Literal["chunked", "content-length", "close"]
End = Literal["complete", "cut", "reset"]
MAX_HEAD_BYTES = 1 << 20
FLUSH_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Piece:
    """Body bytes, written after `delay_ms` (counted from the previous write, or from the head)."""

    data: bytes
    delay_ms: float = 0.0


@dataclass(frozen=True)
class Script:
    """One response, written as given.

    The head is `status`, then each of `headers` (a whole line without its CRLF, odd ones included),
    then, with `framing_headers`, the framing's own (`Transfer-Encoding: chunked`, `Content-Length`
    of all pieces, or `Connection: close`), then the blank line; an empty `status` sends no head at
    all. `chunked` makes each piece one chunk (an empty piece writes nothing: it is no last chunk).
    `end="cut"` closes (FIN) after `end_after` pieces (all when None), without the last chunk and
    short of a Content-Length; `"reset"` aborts with RST there instead.
    """

    status: bytes = b"HTTP/1.1 200 OK"
    headers: tuple[bytes, ...] = ()
    pieces: tuple[Piece, ...] = ()
    framing: Framing = "chunked"
    end: End = "complete"
    end_after: int | None = None
    framing_headers: bool = True

    def head(self) -> bytes:
        """The head's bytes as they are written."""
        if not self.status:
            return b""
        lines = [self.status, *self.headers]
        if self.framing_headers:
            lines.append(
                {
                    "chunked": b"Transfer-Encoding: chunked",
                    "content-length": b"Content-Length: %d" % sum(len(p.data) for p in self.pieces),
                    "close": b"Connection: close",
                }[self.framing]
            )
        return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


NOT_FOUND = Script(
    status=b"HTTP/1.1 404 Not Found", pieces=(Piece(b"no script for this path"),), framing="content-length"
)


@dataclass(frozen=True)
class RecordedRequest:
    """A request as it arrived: header names keep their case and order; a chunked body is decoded."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    connection: int
    """The number of the connection it came on (1 for the first), to tell kept-alive ones apart."""

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def header(self, name: str) -> str | None:
        """The first value of the header `name` (any case), or None when it did not arrive."""
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


class RawUpstream:
    """A scripted HTTP/1.1 server in a thread: `with RawUpstream(Script(...)) as upstream: upstream.url`.

    `routes` picks a script by path (without the query), `default` answers the rest (404 without it);
    both may be changed between requests. Connections are kept alive and served concurrently.
    Leaving the context closes every connection and the listening socket and joins the thread.
    """

    def __init__(
        self,
        default: Script | None = None,
        routes: Mapping[str, Script] | None = None,
        *,
        tls: LocalCA | None = None,
        start_timeout_s: float = 5.0,
    ) -> None:
        self.default = default
        self.routes: dict[str, Script] = dict(routes or {})
        self._tls = tls.server_context() if tls is not None else None
        self._start_timeout_s = start_timeout_s
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._connections = 0
        self._handlers: set[asyncio.Task[None]] = set()
        # Weak: a transport leaves once closed and collected, but one still closing (a TLS shutdown
        # after its handler ended) is there for the stop to abort.
        self._transports: weakref.WeakSet[asyncio.WriteTransport] = weakref.WeakSet()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("RawUpstream is not running; start() it or use it as a context manager")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, or `https://` over TLS."""
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (each is recorded before its response starts)."""
        with self._lock:
            return list(self._requests)

    def start(self) -> RawUpstream:
        """Listen and serve in a thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError(f"RawUpstream is already running on {self.url}")
        self._ready.clear()
        self._failure = None
        self._thread = threading.Thread(target=self._run, name="raw-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout_s) or self._failure is not None:
            self.stop()
            raise RuntimeError(f"RawUpstream did not start: {self._failure!r}")
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection (mid-response ones too), and join the
        thread; does nothing when not running."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(self._start_timeout_s)
            if thread.is_alive():
                raise RuntimeError(f"RawUpstream's thread {thread.name} did not end")
        self._thread, self._loop, self._stopping, self._port = None, None, None, None

    def __enter__(self) -> RawUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        # The plain asyncio loop whatever policy the process has set (uvicorn may have set uvloop's).
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            runner.run(self._main())

    async def _main(self) -> None:
        try:
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=MAX_HEAD_BYTES)
            self._port = server.sockets[0].getsockname()[1]
            threading.current_thread().name = f"raw-upstream:{self._port}"
        except Exception as exc:
            self._failure = exc  # start() raises it
            return
        finally:
            self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for transport in list(self._transports):
                transport.abort()
            for task in self._handlers:
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._transports.add(writer.transport)
        self._connections += 1
        number = self._connections
        with contextlib.suppress(OSError):  # each write its own segment, so timing and splits hold
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self._tls is not None:
                # The handshake here, not in the listener: a stop then ends handshakes in flight too.
                await writer.start_tls(self._tls)
                self._transports.add(writer.transport)
            while (request := await _read_request(reader, number)) is not None:
                with self._lock:
                    self._requests.append(request)
                script = self.routes.get(request.path, self.default or NOT_FOUND)
                if not await _play(script, writer) or (request.header("connection") or "").lower() == "close":
                    break
        except (OSError, EOFError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or sent what is not HTTP: the connection ends, the server goes on
        except asyncio.CancelledError:
            pass  # stop(): ending quietly spares the log asyncio's complaint about a cancelled handler
        finally:
            self._handlers.discard(task)
            writer.transport.close()


async def _read_request(reader: asyncio.StreamReader, connection: int) -> RecordedRequest | None:
    """The next request on the connection, or None when the client closed it between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    request_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = [(name, value.strip(" \t")) for name, _, value in (line.partition(":") for line in lines)]
    record = RecordedRequest(method, target, headers, b"", connection)
    if "chunked" in (record.header("transfer-encoding") or "").lower():
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailer fields
    else:
        body = await reader.readexactly(int(record.header("content-length") or 0))
    return RecordedRequest(method, target, headers, body, connection)


async def _play(script: Script, writer: asyncio.StreamWriter) -> bool:
    """Write the script's response; True when the connection may carry another request."""
    await _write(writer, script.head())
    last = len(script.pieces) if script.end_after is None else script.end_after
    for piece in script.pieces[:last]:
        await asyncio.sleep(piece.delay_ms / 1000)
        chunked = script.framing == "chunked" and piece.data  # an empty chunk would end the body
        await _write(writer, b"%x\r\n%s\r\n" % (len(piece.data), piece.data) if chunked else piece.data)
    if script.end == "reset":
        await _reset(writer)
        return False
    if script.end == "cut" or script.framing == "close":
        return False
    if script.framing == "chunked":
        await _write(writer, b"0\r\n\r\n")
    return True


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    if data:
        writer.write(data)
        await writer.drain()


async def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort with RST once what was written has left, so the peer reads it before ECONNRESET."""
    transport = writer.transport
    for _ in range(int(FLUSH_TIMEOUT_S * 1000)):
        if not transport.get_write_buffer_size():
            break
        await asyncio.sleep(0.001)
    with contextlib.suppress(OSError):
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@dataclass(frozen=True)
class LocalCA:
    """A certificate authority made for this test run, and a server certificate it signed for
    127.0.0.1, ::1 and localhost; `ca_pem` is the file a client (or `--upstream-ca`) trusts."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    @classmethod
    def create(cls, directory: Path) -> LocalCA:
        """Generate the CA and the certificate, and write the three PEM files into `directory`."""
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "::1", "localhost")
        paths = cls(directory / "ca.pem", directory / "server-cert.pem", directory / "server-key.pem")
        ca.cert_pem.write_to_path(str(paths.ca_pem))
        for blob in issued.cert_chain_pems:
            blob.write_to_path(str(paths.cert_pem), append=True)
        issued.private_key_pem.write_to_path(str(paths.key_pem))
        return paths

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_pem, self.key_pem)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (as `httpx.Client(verify=...)` takes it)."""
        return ssl.create_default_context(cafile=str(self.ca_pem))


AWKWARD_SSE_DATA: tuple[str, ...] = (
    *(
        json.dumps(
            {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]},
            ensure_ascii=False,
        )
        for text in ("Grüße", ", 世界", " 🙂!")
    ),
    "[DONE]",
)
"""OpenAI chat chunks with multi-byte text, then `[DONE]`: the data `awkward_sse()` carries by default."""


def awkward_sse(data: Sequence[str] = AWKWARD_SSE_DATA, *, split_gap_ms: float = 20.0) -> tuple[Piece, ...]:
    """SSE body pieces carrying `data` (3 items or more) the way real upstreams may send it: a
    `: comment` first; the first event with `retry: 1500`, `id: 1` and CRLF endings; the second with
    `id: 2` and CR-only endings; the third with `id: 3` and a comment, split across two writes
    `split_gap_ms` apart inside its first multi-byte character; the rest plain LF. A conforming
    parser yields exactly `data`, the last ones with id 3."""
    if len(data) < 3:
        raise ValueError(f"awkward_sse needs at least 3 data items, got {len(data)}")
    first, second, third, *rest = (item.encode() for item in data)
    third_event = b"id: 3\r\n: a comment in an event\r\ndata: " + third + b"\r\n\r\n"
    inside = next((i + 1 for i, byte in enumerate(third) if byte >= 0x80), len(third) // 2)
    split = len(third_event) - len(b"\r\n\r\n") - len(third) + inside
    return (
        Piece(b": upstream says hello\r\n\r\n"),
        Piece(b"retry: 1500\r\nid: 1\r\ndata: " + first + b"\r\n\r\n"),
        Piece(b"id: 2\rdata: " + second + b"\r\r"),
        Piece(third_event[:split]),
        Piece(third_event[split:], delay_ms=split_gap_ms),
        *(Piece(b"data: " + item + b"\n\n") for item in rest),
    )


def awkward_sse_script(data: Sequence[str] = AWKWARD_SSE_DATA) -> Script:
    """A chunked `text/event-stream` response of `awkward_sse(data)` (`dataclasses.replace` it to
    end otherwise)."""
    return Script(
        headers=(b"Content-Type: text/event-stream; charset=utf-8", b"Cache-Control: no-cache"),
        pieces=awkward_sse(data),
    )
