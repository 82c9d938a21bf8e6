"""Where the server keeps what outlives a request: in this process (`memory`, the default), or shared
by workers and replicas (`sqlite:PATH`, `redis://HOST:PORT/DB`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mock_server.settings import state_problem

if TYPE_CHECKING:  # the shared stores (and their JSON codecs) load only when one is used
    from mock_server.store.shared import SharedStore


def open_store(state: str, size: int, max_bytes: int) -> SharedStore | None:
    """The shared store `state` names (None for `memory`), keeping up to `size` journal records and
    about `max_bytes` of them; raises StateStoreError when it cannot be used, ValueError when
    `state` is none of the forms (`settings.state_problem`)."""
    problem = state_problem(state)
    if problem is not None:
        raise ValueError(problem)
    if state == "memory":
        return None
    if state.startswith("sqlite:"):
        from mock_server.store.sqlite import SqliteStore

        return SqliteStore(Path(state.removeprefix("sqlite:")), size, max_bytes)
    from mock_server.store.redis import RedisStore  # redis-py: loaded only for a Redis store

    return RedisStore(state, size, max_bytes)


def check_store(state: str) -> None:
    """Open the store `state` names and let go of it, before a server starts on it: raises
    StateStoreError saying why it cannot be used (a file it cannot open, a Redis it cannot reach)."""
    store = open_store(state, 1, 1)
    if store is not None:
        store.release()
