"""Real state stores for the tests: a `redis-server` of the test run's own.

`RedisServer` starts Debian's `redis-server` (installed by scripts/install-test-deps) on a free
port of 127.0.0.1, with nothing written to disk, and stops it. The fixtures around it: `redis_url`,
one server for the session (per xdist worker), and `redis_db`, the same database emptied for each
test. They skip only when the binary is absent. The server is spoken to in RESP over a plain socket,
so these fixtures do not depend on the client library the store itself uses.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# A free port is found by binding port 0 and closing it: another process may take it before
# redis-server binds it, so a server that exits at start is tried again on another port.
START_ATTEMPTS = 3


class RedisUnavailable(Exception):
    """No `redis-server` binary on PATH."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _encode(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def command(port: int, *args: str, db: int = 0, timeout: float = 2.0) -> str:
    """Sends one command to database `db` of the server on `port` and returns its reply's first line
    (`+PONG`, `:0`, `-ERR ...`): enough for the simple commands these fixtures send."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_encode("SELECT", str(db)) + _encode(*args))
        reply = b""
        while reply.count(b"\r\n") < 2:
            data = sock.recv(4096)
            if not data:
                raise ConnectionError(f"redis on port {port} closed the connection after {reply!r}")
            reply += data
    selected, answer = reply.split(b"\r\n")[:2]
    if selected != b"+OK":
        raise ConnectionError(f"redis on port {port} refused SELECT {db}: {selected.decode()}")
    return answer.decode()


class RedisServer:
    """A `redis-server` on 127.0.0.1 with no persistence (`--save "" --appendonly no`), its working
    directory and log in `directory`. `start()` returns once it answers PING; `stop()` ends it and
    waits for the process."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable("redis-server is not installed (scripts/install-test-deps installs Debian's)")
        self.binary = binary
        self.directory = directory
        self.log = directory / "redis.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        for _ in range(START_ATTEMPTS):
            self.port = _free_port()
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    self._command_line(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_for_pong():
                return self
        raise AssertionError(
            f"redis-server did not answer PING within {START_TIMEOUT_S:g} s "
            f"({START_ATTEMPTS} attempts):\n{self.log.read_text()}"
        )

    def _command_line(self) -> list[str]:
        # Nothing written to disk: no RDB snapshots, no append-only file.
        options = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "save": "",
            "appendonly": "no",
            "dir": str(self.directory),
        }
        return [self.binary, *(part for name, value in options.items() for part in (f"--{name}", value))]

    def _wait_for_pong(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if command(self.port, "PING") == "+PONG":
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def flush(self, db: int = 0) -> None:
        """Empties database `db`."""
        reply = command(self.port, "FLUSHDB", db=db)
        assert reply == "+OK", reply

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the session (each xdist worker has its own); skipped when not installed."""
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except RedisUnavailable as absent:
        pytest.skip(str(absent))
    with server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """`redis://127.0.0.1:PORT/0` of the session's redis-server."""
    return redis_server.url


@pytest.fixture
def redis_db(redis_server: RedisServer) -> str:
    """The session's Redis URL with database 0 emptied for this test, so no test sees another's
    journal or scenarios."""
    redis_server.flush()
    return redis_server.url


STATES = ("memory", "sqlite", "redis")


def state_of_kind(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The `--state` of a store of `kind` (`STATES`), new for the test."""
    if kind == "memory":
        return "memory"
    if kind == "sqlite":
        return f"sqlite:{tmp_path / 'state.sqlite3'}"
    url: str = request.getfixturevalue("redis_db")
    return url


@pytest.fixture(params=STATES)
def every_state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each state store in turn (a test that takes this runs once per store)."""
    return state_of_kind(request.param, tmp_path, request)
