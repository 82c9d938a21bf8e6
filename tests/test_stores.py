"""The test run's own redis-server (tests/stores.py): it starts, answers, keeps nothing between
tests, and is gone once stopped."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.stores import RedisServer, RedisUnavailable, command


def test_a_started_redis_answers_ping_and_is_gone_once_stopped(tmp_path: Path) -> None:
    try:
        server = RedisServer(tmp_path)
    except RedisUnavailable as absent:
        pytest.skip(str(absent))

    with server:
        process = server.process
        assert command(server.port, "PING") == "+PONG"
        assert server.url == f"redis://127.0.0.1:{server.port}/0"

    assert process is not None
    assert process.returncode is not None, "redis-server still running after stop()"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    assert not list(tmp_path.glob("*.rdb")), "redis-server wrote a snapshot"
    assert not list(tmp_path.glob("appendonly*")), "redis-server wrote an append-only file"


def test_redis_db_starts_each_test_empty(redis_db: str, redis_server: RedisServer) -> None:
    assert redis_db == redis_server.url
    assert command(redis_server.port, "DBSIZE") == ":0"
    assert command(redis_server.port, "SET", "left-behind", "1") == "+OK"

    redis_server.flush()

    assert command(redis_server.port, "DBSIZE") == ":0"


def test_absent_binary_is_a_reason_to_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(RedisUnavailable, match="install-test-deps"):
        RedisServer(tmp_path)
