"""The state stores the tests run against: this process's memory, an SQLite file, and a real
`redis-server` (Debian's package, installed by `scripts/install-test-deps`), started for the test
session on a free 127.0.0.1 port and stopped at its end."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

STATES = ("memory", "sqlite", "redis")
REDIS_START_S = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this test session (each xdist worker has its own): its URL, database 0."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: scripts/install-test-deps installs Debian's redis-server")
    port = _free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + REDIS_START_S
        while not _answers_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port} (exit status {process.poll()})")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def flushed(url: str) -> str:
    """`url`'s database, emptied: each test starts from a store nobody has used."""
    import redis

    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


def state_of_kind(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The `--state` of a store of `kind`, new for the test."""
    if kind == "memory":
        return "memory"
    if kind == "sqlite":
        return f"sqlite:{tmp_path / 'state.sqlite3'}"
    return flushed(request.getfixturevalue("redis_url"))


@pytest.fixture(params=STATES)
def every_state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each state store in turn (a test that takes this runs once per store)."""
    return state_of_kind(request.param, tmp_path, request)
