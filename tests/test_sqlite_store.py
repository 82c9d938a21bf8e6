"""The SQLite store keeps the requests that start together in one transaction (group commit), each
with its own counters, in the order they came."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mock_server.journal.journal import Journal
from mock_server.store.sqlite import SqliteStore

STARTS = 40


def _count(values: list[Any]) -> tuple[list[Any], int]:
    new = (values[0] or 0) + 1
    return [new], new


def _refuse(values: list[Any]) -> tuple[list[Any], int]:
    raise ValueError("refused")


async def _start_together(store: SqliteStore, changes: list[Any]) -> tuple[list[Any], list[int]]:
    journal = Journal(store)
    entries = [
        journal.new_entry(method="GET", path=f"/{i}", query=(), headers=(), body=None) for i in range(len(changes))
    ]
    await store.start()
    try:
        return await asyncio.gather(
            *(store.begin(entry, ("chosen",), change) for entry, change in zip(entries, changes, strict=True)),
            return_exceptions=True,
        ), [entry.id for entry in entries]
    finally:
        await store.aclose()


def test_starts_that_come_together_are_kept_in_fewer_transactions_in_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3", size=1000, max_bytes=10_000_000)
    batches: list[int] = []
    keep = store._keep

    def counted_keep(starts: list[Any]) -> Any:
        batches.append(len(starts))
        return keep(starts)

    monkeypatch.setattr(store, "_keep", counted_keep)

    results, ids = asyncio.run(_start_together(store, [_count] * STARTS))

    assert results == list(range(1, STARTS + 1))  # each counted after the one before it
    assert ids == list(range(1, STARTS + 1))  # and kept in the same order
    assert sum(batches) == STARTS
    assert len(batches) < STARTS


def test_a_change_that_fails_fails_its_own_request_only(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3", size=1000, max_bytes=10_000_000)

    results, ids = asyncio.run(_start_together(store, [_count, _refuse, _count]))

    assert results[0] == 1
    assert isinstance(results[1], ValueError)
    assert results[2] == 2
    assert ids == [1, 0, 2]  # the refused request has no record


def test_a_trim_that_fails_leaves_the_requests_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3", size=1000, max_bytes=10_000_000)

    def locked(newest: int) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "_trim", locked)

    results, ids = asyncio.run(_start_together(store, [_count] * 70))  # past the 64th record: a trim

    assert results == list(range(1, 71))
    assert ids == list(range(1, 71))
