"""Where the server keeps what outlives a request: in this process (`memory`, the default), or shared
by workers and replicas (`sqlite:PATH`, `redis://HOST:PORT/DB`)."""

from __future__ import annotations

from pathlib import Path

from mock_server.store.shared import SharedStore

STATE_FORMS = "memory, sqlite:PATH or redis://HOST:PORT/DB"


def open_store(state: str, size: int, max_bytes: int) -> SharedStore | None:
    """The shared store `state` names (None for `memory`); raises StateStoreError when it cannot be
    used, ValueError when `state` is none of the forms."""
    if state == "memory":
        return None
    if state.startswith("sqlite:") and state.removeprefix("sqlite:"):
        from mock_server.store.sqlite import SqliteStore

        return SqliteStore(Path(state.removeprefix("sqlite:")), size, max_bytes)
    if state.startswith(("redis://", "rediss://", "unix://")):
        from mock_server.store.redis import RedisStore  # redis-py: loaded only for a Redis store

        return RedisStore(state, size, max_bytes)
    raise ValueError(f"--state {state!r} is not a state store: give {STATE_FORMS}")
