"""Raw-socket HTTP for wire-level assertions: no HTTP library between the test and the bytes.

`fetch()` sends one request and records every read with its arrival time, how the connection
ended (clean terminating chunk, EOF without it, reset, or still open at the timeout), and the
chunked body decoded, so tests can tell a drop from a clean end and a reset from both.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit


class Ending(StrEnum):
    COMPLETE = "complete"  # the chunked body ended with 0\r\n\r\n (or Content-Length was met)
    EOF = "eof"  # the server closed (FIN) before the body was complete
    RESET = "reset"  # the read failed with ECONNRESET
    TIMEOUT = "timeout"  # the connection was still open when the test stopped reading


@dataclass
class Read:
    at: float  # seconds since the request was sent
    data: bytes


@dataclass
class WireResponse:
    status: int
    headers: dict[str, str]
    head_at: float
    reads: list[Read] = field(default_factory=list)
    body: bytes = b""
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    """Decoded chunks of a chunked body, each with the time its last byte arrived."""
    ending: Ending = Ending.TIMEOUT

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def events(self) -> list[str]:
        """The SSE events (blocks before a blank line) in the body, without the blank line."""
        return [block for block in self.text.split("\n\n")[:-1] if block]

    @property
    def data(self) -> list[str]:
        """The `data:` value of every event that has one."""
        out = []
        for event in self.events:
            lines = [
                line[6:] if line.startswith("data: ") else line[5:]
                for line in event.split("\n")
                if line.startswith("data:")
            ]
            if lines:
                out.append("\n".join(lines))
        return out

    def arrived(self, data: bytes) -> float:
        """When the first chunk holding `data` was read, in seconds after the request was sent.

        A moment here is when the test got to read the bytes, which a loaded machine or a garbage
        collection may delay but never advance. So a pause in a stream shows reliably as an order of
        reads and as a moment no sooner than the pause after the request, not as a gap between two
        reads: a late read before the pause shortens that gap."""
        return next(at for at, chunk in self.chunks if data in chunk)

    def chunk_json(self) -> list[dict[str, Any]]:
        return [json.loads(d) for d in self.data if d != "[DONE]"]

    def content(self) -> str:
        """The concatenated `delta.content` of OpenAI chat chunks."""
        text = []
        for chunk in self.chunk_json():
            for choice in chunk.get("choices", []):
                text.append(choice.get("delta", {}).get("content") or "")
        return "".join(text)


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | str | dict[str, Any] | None = None,
    timeout: float = 10.0,
    read_for: float | None = None,
    max_events: int | None = None,
) -> WireResponse:
    """Send one request and read until the connection ends, `read_for` seconds pass, or `max_events`
    SSE events have arrived (then close, as a client pressing "stop" would)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    payload = b""
    all_headers = {"Host": f"{host}:{port}", "Connection": "close", **(headers or {})}
    if body is not None:
        if isinstance(body, dict):
            payload = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        else:
            payload = body.encode() if isinstance(body, str) else body
        all_headers["Content-Length"] = str(len(payload))
    request = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items())
    with socket.create_connection((host, port), timeout=timeout) as sock:
        start = time.monotonic()
        sock.sendall(request.encode("latin-1") + b"\r\n" + payload)
        return _read_response(sock, start, timeout, read_for, max_events)


def request_head(target: str, fields: Iterable[tuple[str, str]] = (), method: str = "GET") -> bytes:
    """A request line and its header fields (after `Host`), ended by the blank line."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *(f"{name}: {value}" for name, value in fields)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(url: str, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to the server at `url`, nothing sent yet."""
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout)


def receive(sock: socket.socket, timeout: float = 10.0) -> WireResponse:
    """Read one response from a connection whose request has been sent (or is not needed)."""
    return _read_response(sock, time.monotonic(), timeout, None, None)


def read_to_end(sock: socket.socket, timeout: float = 10.0) -> tuple[bytes, Ending]:
    """Everything the server sends until it closes the connection (EOF or reset) or `timeout` passes."""
    received = b""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received, Ending.RESET
        if not data:
            return received, Ending.EOF
        received += data
    return received, Ending.TIMEOUT


def _read_response(
    sock: socket.socket, start: float, timeout: float, read_for: float | None, max_events: int | None
) -> WireResponse:
    buffer = b""
    reads: list[Read] = []
    ending = Ending.TIMEOUT
    stop_at = start + (read_for if read_for is not None else timeout)
    response: WireResponse | None = None
    decoder = _ChunkDecoder()
    while True:
        remaining = stop_at - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            ending = Ending.RESET
            break
        now = time.monotonic() - start
        if not data:
            ending = Ending.EOF
            break
        reads.append(Read(now, data))
        buffer += data
        if response is None:
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if not sep:
                continue
            response = _parse_head(head, now)
            buffer = rest
            if response.headers.get("transfer-encoding") != "chunked":
                length = int(response.headers.get("content-length", "0"))
                decoder.length = length
        if response is not None:
            buffer = decoder.feed(buffer, now)
            if decoder.done:
                ending = Ending.COMPLETE
                break
            if max_events is not None and decoder.body.count(b"\n\n") >= max_events:
                break
    if response is None:
        raise ConnectionError(f"no HTTP response head received (ending: {ending}, bytes: {buffer[:200]!r})")
    if ending is Ending.EOF and decoder.length is not None and decoder.length < 0:
        ending = Ending.COMPLETE  # no length, no chunking: the body ends with the connection
    response.reads, response.body, response.chunks, response.ending = reads, decoder.body, decoder.chunks, ending
    return response


def _parse_head(head: bytes, at: float) -> WireResponse:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return WireResponse(status=status, headers=headers, head_at=at)


class _ChunkDecoder:
    """Decodes a chunked body incrementally; with `length` set, reads a plain body of that length."""

    def __init__(self) -> None:
        self.body = b""
        self.chunks: list[tuple[float, bytes]] = []
        self.done = False
        self.length: int | None = None

    def feed(self, buffer: bytes, now: float) -> bytes:
        if self.length is not None:
            self.body += buffer
            self.done = len(self.body) >= self.length
            return b""
        while True:
            size_line, sep, rest = buffer.partition(b"\r\n")
            if not sep:
                return buffer
            size = int(size_line.split(b";")[0], 16)
            if len(rest) < size + 2:
                return buffer
            if size == 0:
                self.done = True
                return rest[2:]
            chunk = rest[:size]
            self.body += chunk
            self.chunks.append((now, chunk))
            buffer = rest[size + 2 :]


TCP_INFO_DATA_SEGS_IN = 152
"""Where Linux's `struct tcp_info` holds `tcpi_data_segs_in`: the segments received that carried data."""


def segments_until_first_event(url: str, body: dict[str, Any], timeout: float = 10.0) -> tuple[int, bytes]:
    """POST `body` and read until the response's head and first SSE event are in: how many TCP segments
    with data they came in (Linux only), and the bytes."""
    return _segments(url, body, timeout, lambda data: b"\n\n" in data.partition(b"\r\n\r\n")[2])


def segments_until_the_end(url: str, body: dict[str, Any], timeout: float = 10.0) -> tuple[int, bytes]:
    """The same for the whole response: until the server closes the connection."""
    return _segments(url, body, timeout, lambda data: False)


def _segments(url: str, body: dict[str, Any], timeout: float, enough: Callable[[bytes], bool]) -> tuple[int, bytes]:
    if not sys.platform.startswith("linux"):
        raise NotImplementedError("TCP_INFO's segment counts are Linux's")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payload = json.dumps(body).encode()
    request = (
        f"POST {parts.path}?{parts.query} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while not enough(data):
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    (segments,) = struct.unpack_from("I", info, TCP_INFO_DATA_SEGS_IN)
    return segments, data
