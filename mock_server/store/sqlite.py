"""The shared state in an SQLite file (`--state sqlite:PATH`): for workers on one machine.

Every process opens the file with its own connection, used from one thread of its own: a write
takes the file's lock (`BEGIN IMMEDIATE`) for the few statements it needs, and when another worker
holds it, SQLite waits by sleeping, which on the event loop would hold every stream. WAL mode lets
readers go on meanwhile. The requests that start while a transaction runs are kept together in the
next one (group commit): a burst of starts costs a hop to the thread, a lock and a commit per
batch. The file holds test state, not data to keep: writes are not synced to disk (`synchronous=OFF`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from mock_server.counters import Change, T
from mock_server.errors import StateStoreError
from mock_server.store.shared import META_KEY, SharedStore, dumps

P = ParamSpec("P")
R = TypeVar("R")
BUSY_TIMEOUT_MS = 10_000
TRIM_EVERY = 64
"""The journal is trimmed to its bounds at every 64th record (a scan of its sizes), not at each, and
at a record larger than a 64th of `max_bytes`: between trims it holds less than twice its bytes."""
_KEPT = "id > (SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'records') - ?"
"""The newest `size` records: what the journal keeps, trimmed or not yet."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, size INTEGER NOT NULL, owner TEXT
);
CREATE INDEX IF NOT EXISTS records_open ON records (owner) WHERE owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS beats (owner TEXT PRIMARY KEY, at REAL NOT NULL);
"""


@dataclass(frozen=True)
class _Start:
    """A request's record and counters, waiting for the next transaction (`SqliteStore._append`)."""

    text: str
    size: int
    keys: Sequence[str]
    change: Change[Any] | None
    kept: asyncio.Future[tuple[int, Any]]


def _in_thread(
    method: Callable[Concatenate[SqliteStore, P], R],
) -> Callable[Concatenate[SqliteStore, P], Coroutine[Any, Any, R]]:
    """`method`, run in the store's own thread."""

    async def run(store: SqliteStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        call = functools.partial(method, store, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(store._thread, call)

    run.__doc__ = method.__doc__
    return run


class SqliteStore(SharedStore):
    def __init__(self, path: Path, size: int, max_bytes: int) -> None:
        super().__init__(size, max_bytes)
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mock-llm-sqlite")
        self._starts: list[_Start] = []
        """Requests waiting to be kept, in the order they came (`_append`)."""
        self._keeping: asyncio.Task[None] | None = None
        try:
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement)
            with self._writing():
                meta = self._get(META_KEY)
                if meta is None:
                    meta = self.new_meta()
                    self._set(META_KEY, meta)
        except sqlite3.Error as exc:
            raise StateStoreError(
                f"--state sqlite:{path}: cannot use the file: {exc}. Give a path in a writable directory."
            ) from None
        self._adopt_meta(meta)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _get(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _set(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO counters (key, value) VALUES (?, ?)", (key, dumps(value)))

    @_in_thread
    def update(self, keys: Sequence[str], change: Change[T]) -> T:
        with self._writing():
            return self._change(keys, change)

    def _change(self, keys: Sequence[str], change: Change[T]) -> T:
        new, result = change([self._get(key) for key in keys])
        for key, value in zip(keys, new, strict=True):
            self._set(key, value)
        return result

    @_in_thread
    def peek(self, key: str) -> Any:
        return self._get(key)

    async def _append(
        self, text: str, size: int, keys: Sequence[str], change: Change[T] | None
    ) -> tuple[int, T | None]:
        """Queued with the other requests starting meanwhile: the starts that arrive while a
        transaction runs are kept together in the next one (group commit), each with its own
        counters applied in the order the starts came, so a burst of starts costs a transaction and a
        hop to the store's thread per batch, not per request."""
        loop = asyncio.get_running_loop()
        start = _Start(text, size, keys, change, loop.create_future())
        self._starts.append(start)
        if self._keeping is None:
            self._keeping = loop.create_task(self._keep_starts())
        return cast("tuple[int, T | None]", await start.kept)

    async def _keep_starts(self) -> None:
        loop = asyncio.get_running_loop()
        starts: list[_Start] = []
        try:
            while self._starts:
                starts, self._starts = self._starts, []
                try:
                    outcomes = await loop.run_in_executor(self._thread, self._keep, starts)
                except Exception as exc:  # the transaction failed: none of the batch was kept
                    outcomes = [exc] * len(starts)
                for start, outcome in zip(starts, outcomes, strict=True):
                    if start.kept.done():  # its request was cancelled meanwhile
                        continue
                    if isinstance(outcome, Exception):
                        start.kept.set_exception(outcome)
                    else:
                        start.kept.set_result(outcome)
        finally:
            self._keeping = None
            for start in (*starts, *self._starts):  # cancelled itself: no start waits for ever
                if not start.kept.done():
                    start.kept.set_exception(StateStoreError("the SQLite store closed before the request was kept"))

    def _keep(self, starts: list[_Start]) -> list[tuple[int, Any] | Exception]:
        """In one transaction, each start's counters in turn and then their records (ids in the same
        order). A change that raises fails its own request only: it has written nothing."""
        outcomes: list[tuple[int, Any] | Exception] = []
        kept: list[tuple[_Start, Any]] = []
        with self._writing():
            for start in starts:
                try:
                    if start.keys and start.change is not None:
                        result = self._change(start.keys, start.change)
                    else:
                        result = None if start.change is None else start.change([])[1]
                except Exception as exc:
                    outcomes.append(exc)
                    continue
                kept.append((start, result))
                outcomes.append((0, result))
            if kept:
                insert = "INSERT INTO records (body, size, owner) VALUES (?, ?, ?)"
                self._db.executemany(insert, [(start.text, start.size, self.owner) for start, _ in kept])
                # The write lock is held: the batch's ids are consecutive, ending at the sequence's.
                (last,) = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        if not kept:
            return outcomes
        first = last - len(kept) + 1
        ids = iter(range(first, last + 1))
        outcomes = [o if isinstance(o, Exception) else (next(ids), o[1]) for o in outcomes]
        if last // TRIM_EVERY > (first - 1) // TRIM_EVERY or any(
            start.size * TRIM_EVERY > self.max_bytes for start, _ in kept
        ):
            # The batch is kept whatever happens here: a trim that fails is tried again at the next.
            with contextlib.suppress(sqlite3.Error):
                self._trim(last)
        return outcomes

    def _trim(self, newest: int) -> None:
        """Forget what the bounds leave out: all but the newest `size` records, then the oldest of
        those while they hold more than `max_bytes` (the newest stays, however large). Reads keep to
        the newest `size` meanwhile (`_KEPT`)."""
        db = self._db
        with self._writing():
            db.execute("DELETE FROM records WHERE id <= ?", (newest - self.size,))
            (total,) = db.execute("SELECT COALESCE(SUM(size), 0) FROM records").fetchone()
            excess, cut = total - self.max_bytes, 0
            if excess > 0:
                for older, older_size in db.execute("SELECT id, size FROM records WHERE id < ? ORDER BY id", (newest,)):
                    excess, cut = excess - older_size, older
                    if excess <= 0:
                        break
                db.execute("DELETE FROM records WHERE id <= ?", (cut,))

    @_in_thread
    def _finish(self, finals: list[tuple[int, str]]) -> None:
        with self._writing():
            self._db.executemany("UPDATE records SET body = ?, owner = NULL WHERE id = ?", [(t, i) for i, t in finals])

    @_in_thread
    def _rows(self, after: int) -> list[tuple[int, str, str | None]]:
        query = f"SELECT id, body, owner FROM records WHERE id > ? AND {_KEPT} ORDER BY id"
        return self._db.execute(query, (after, self.size)).fetchall()

    @_in_thread
    def _open_owners(self, after: int) -> list[str]:
        query = f"SELECT DISTINCT owner FROM records WHERE owner IS NOT NULL AND id > ? AND {_KEPT}"
        rows = self._db.execute(query, (after, self.size))
        return [owner for (owner,) in rows]

    @_in_thread
    def last_id(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        return 0 if row is None else int(row[0])

    @_in_thread
    def clear(self) -> int:
        with self._writing():
            (count,) = self._db.execute(f"SELECT COUNT(*) FROM records WHERE {_KEPT}", (self.size,)).fetchone()
            self._db.execute("DELETE FROM records")
        return int(count)

    @_in_thread
    def stats(self) -> tuple[int, int]:
        query = f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records WHERE {_KEPT}"
        count, size = self._db.execute(query, (self.size,)).fetchone()
        return int(count), int(size)

    @_in_thread
    def _beat(self, now: float) -> None:
        with self._writing():
            self._db.execute("INSERT OR REPLACE INTO beats (owner, at) VALUES (?, ?)", (self.owner, now))

    @_in_thread
    def _beats(self) -> dict[str, float]:
        return dict(self._db.execute("SELECT owner, at FROM beats").fetchall())

    @_in_thread
    def put_blob(self, key: str, data: bytes) -> None:
        with self._writing():
            self._db.execute("INSERT OR REPLACE INTO blobs (key, value) VALUES (?, ?)", (key, data))

    @_in_thread
    def get_blob(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    @_in_thread
    def delete_blob(self, key: str) -> bool:
        with self._writing():
            return self._db.execute("DELETE FROM blobs WHERE key = ?", (key,)).rowcount > 0

    @_in_thread
    def _forget_all(self) -> None:
        with self._writing():
            self._db.execute("DELETE FROM counters WHERE key != ?", (META_KEY,))
            self._db.execute("DELETE FROM blobs")

    async def _close(self) -> None:
        if self._keeping is not None:
            await asyncio.gather(self._keeping, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
        self._thread.shutdown()

    def release(self) -> None:
        self._db.close()
        self._thread.shutdown()
