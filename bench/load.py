"""A light load client on raw sockets: no HTTP library, so the client is never the bottleneck.

Each probe sends one HTTP/1.1 request and records, per read, its time and how many events have
arrived so far (by the end each event's framing has: `\\n\\n` for SSE, `\\r\\n\\r\\n` for Google's,
`\\n` for NDJSON), plus whether the chunked body ended with its terminating chunk.

A read's time is when the client read it, or with `stamped` (paced streams' lateness) when its
newest byte reached the client's socket: the kernel's receive stamp (`SO_TIMESTAMPNS`). On a
machine where the servers and the client share the cores, the client's own wait for a core would
otherwise count as the server's lateness. A read's stamp is its newest segment's, so an event that
came in an earlier segment of the same read is counted late, never early. How long each read came
after its stamp is kept too (`Probe.read_lags`): the client's own delay, for the bench to show.
Where the kernel gives no stamp, the read's own time is used. Throughput and time to first event
keep the read's time: how fast a client gets the events is what they measure.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mock_server.wire.per_loop import one_per_loop

SSE_END = b"\n\n"
READ_BYTES = 65536
_STAMP_OPTION: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform == "linux" else None)
"""Linux's SO_TIMESTAMPNS (which Python 3.11's socket module does not name); None elsewhere."""
_STAMP_SPACE = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_TIMESPEC = struct.Struct("qq")


@dataclass(frozen=True)
class Request:
    """The bytes of one HTTP/1.1 request and the bytes each event of its answer ends with."""

    raw: bytes
    counted: bytes = SSE_END
    """What the chunked body holds once per event (SSE's blank line; see bench.endpoints.events_of)."""


@dataclass
class Probe:
    started: float = 0.0
    head_at: float | None = None
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    """Per read with an event's end in it: when it reached the socket (perf_counter's clock) and the
    events so far."""
    read_lags: list[float] = field(default_factory=list)
    """Per stamped read: how long after its stamp the client read it (seconds)."""
    events: int = 0
    completed: bool = False
    closed: asyncio.Future[None] | None = None

    def event_time(self, index: int) -> float | None:
        """When event `index` (0-based) had fully arrived."""
        for at, count in self.arrivals:
            if count > index:
                return at
        return None


class Reader:
    """Reads one probe's answer from its socket, as its loop's `Readers` says it can."""

    __slots__ = (
        "batch",
        "counted",
        "end",
        "head",
        "offset",
        "probe",
        "readers",
        "sock",
        "stamp_space",
        "tail",
        "unsent",
    )

    def __init__(
        self, sock: socket.socket, request: Request, probe: Probe, readers: Readers, batch: _Batch, *, stamped: bool
    ) -> None:
        self.sock = sock
        self.unsent = request.raw
        self.batch = batch
        self.counted = request.counted
        self.probe = probe
        self.readers = readers
        self.head = True
        self.tail = b""
        self.end = b""
        # The kernel stamps with the wall clock; the probe's times are perf_counter's. Within one
        # probe the offset is constant, so a stream's lateness (from its own first event) has none of it.
        self.offset = time.time() - time.perf_counter()
        self.stamp_space = _STAMP_SPACE if stamped else 0

    def readable(self) -> None:
        read_at = time.perf_counter()
        try:
            data, ancillary, _, _ = self.sock.recvmsg(READ_BYTES, self.stamp_space)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        if not data:
            self.close()
            return
        now = read_at
        probe = self.probe
        if ancillary:
            seconds, nanoseconds = _TIMESPEC.unpack_from(ancillary[0][2])
            now = min(read_at, seconds + nanoseconds * 1e-9 - self.offset)
            probe.read_lags.append(read_at - now)
        if self.head:
            data = self.tail + data  # what came of the head so far
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.tail = data
                return
            probe.head_at = now
            self.head = False
            self.tail = b""
            data = data[end + 4 :]
        counted = self.counted
        window = self.tail + data if self.tail else data
        count = window.count(counted)
        if count:
            probe.events += count
            probe.arrivals.append((now, probe.events))
            # No byte of a counted end is counted again.
            window = window[window.rfind(counted) + len(counted) :]
        self.tail = window[1 - len(counted) :] if len(counted) > 1 else b""
        # The terminating chunk may come in two reads when the client lags (a send the receive window cut).
        self.end = data[-5:] if len(data) >= 5 else (self.end + data)[-5:]
        if self.end == b"0\r\n\r\n":
            probe.completed = True

    def writable(self) -> None:
        """Connected (or refused): send the request, then read the answer."""
        error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self.close()
            self.batch.failed(OSError(error, f"connect: {os.strerror(error)}"))
            return
        try:
            self.unsent = self.unsent[self.sock.send(self.unsent) :]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close()
            self.batch.failed(exc)
            return
        if not self.unsent:
            self.readers.reading(self)
            self.batch.opened()

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.readers.remove(self)
            self.sock.close()
        if self.probe.closed is not None and not self.probe.closed.done():
            self.probe.closed.set_result(None)


class _Batch:
    """Probes opened together: done when each has sent its request, or failed when one could not."""

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        self.waiting = count
        self.done: asyncio.Future[None] = loop.create_future()

    def opened(self) -> None:
        self.waiting -= 1
        if not self.waiting and not self.done.done():
            self.done.set_result(None)

    def failed(self, error: OSError) -> None:
        if not self.done.done():
            self.done.set_exception(error)


class Readers:
    """Every probe socket of one loop, watched by one epoll of their own: the loop wakes this once for
    all the sockets ready at that moment, which are then read one after the other as the loop would
    read them, without the loop's dispatch per socket, and a probe is opened without a task of its
    own (together, most of the client's CPU besides the reads' system calls, measured)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._epoll = select.epoll()
        self._ready_on: dict[int, Callable[[], None]] = {}
        self._loop = loop
        loop.add_reader(self._epoll.fileno(), self._ready)

    async def open(self, port: int, request: Request, count: int, *, stamped: bool) -> list[tuple[Probe, Reader]]:
        """`count` probes connected to `port`, each with `request` sent."""
        batch = _Batch(count, self._loop)
        opened = [self._connect(port, request, batch, stamped) for _ in range(count)]
        try:
            if count:
                await batch.done
        except BaseException:
            for _, reader in opened:
                reader.close()
            raise
        return opened

    def _connect(self, port: int, request: Request, batch: _Batch, stamped: bool) -> tuple[Probe, Reader]:
        probe = Probe(started=time.perf_counter(), closed=self._loop.create_future())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if stamped and _STAMP_OPTION is not None:
                sock.setsockopt(socket.SOL_SOCKET, _STAMP_OPTION, 1)
            error = sock.connect_ex(("127.0.0.1", port))
            if error not in (0, errno.EINPROGRESS):
                raise OSError(error, f"connect: {os.strerror(error)}")
        except BaseException:
            sock.close()
            raise
        reader = Reader(sock, request, probe, self, batch, stamped=stamped)
        fd = sock.fileno()
        self._ready_on[fd] = reader.writable
        self._epoll.register(fd, select.EPOLLOUT)
        return probe, reader

    def reading(self, reader: Reader) -> None:
        """From now on, `reader` reads when its socket has something."""
        fd = reader.sock.fileno()
        self._ready_on[fd] = reader.readable
        self._epoll.modify(fd, select.EPOLLIN)

    def remove(self, reader: Reader) -> None:
        fd = reader.sock.fileno()
        if self._ready_on.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def _ready(self) -> None:
        ready_on = self._ready_on
        for fd, _ in self._epoll.poll(0):
            callback = ready_on.get(fd)
            if callback is not None:  # else closed by a probe before it in this batch
                callback()


readers_of = one_per_loop(Readers)
"""The loop's `Readers`, made on first use."""


def http_request(
    path: str, *, method: str = "GET", body: dict[str, object] | None = None, counted: bytes = SSE_END
) -> Request:
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return Request(head.encode() + b"\r\n" + payload, counted)


async def open_probe(port: int, request: Request, *, stamped: bool = False) -> tuple[Probe, Reader]:
    (opened,) = await readers_of(asyncio.get_running_loop()).open(port, request, 1, stamped=stamped)
    return opened


async def run_streams(
    port: int, request: Request, count: int, *, timeout: float = 60.0, stamped: bool = False
) -> list[Probe]:
    """Open `count` streams at once (in bursts the listen backlog can take) and read them to the end;
    `stamped`: each read timed by when it reached the socket."""
    probes: list[Probe] = []
    readers = readers_of(asyncio.get_running_loop())
    for start in range(0, count, 250):
        opened = await readers.open(port, request, min(250, count - start), stamped=stamped)
        probes.extend(p for p, _ in opened)
    await asyncio.wait_for(asyncio.gather(*(p.closed for p in probes if p.closed is not None)), timeout)
    return probes
