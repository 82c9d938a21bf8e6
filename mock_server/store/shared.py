"""The state every worker and replica shares (`serve --state sqlite:PATH|redis://...`): the journal,
the counters, the stored responses and the run-time scenarios, in one store.

What a request costs the store: its journal record is written when it arrives and when its response
ends; a request whose scenario counts something (`replies`, a fault's `times` or `probability`, rate
limits) changes its counters in one atomic update, and a stored Responses response is one more
write. Nothing is read or written per chunk. Each backend (`sqlite.py`, `redis.py`) provides the
few primitives below; the rules (ids, bounds, a dead worker's records) are here, once.

Records are kept as JSON (pydantic's codec of the record's dataclasses), never pickled, so a store
another program can write cannot make the server run code. A record in flight belongs to the
process that opened it (`owner`), which writes a heartbeat every `BEAT_S`; a record whose owner has
been silent for `LOST_AFTER_S` is read as `server_lost`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pydantic import TypeAdapter

from mock_server.conversations.responses import StoredResponse
from mock_server.counters import Change, T
from mock_server.journal.journal import Entry, RequestRecord, numbered
from mock_server.store.closing import closed_within
from mock_server.wire.outcome import Outcome

BEAT_S = 1.0
LOST_AFTER_S = 3.0
SCENARIOS_KEY = "scenarios"
"""The counter that holds the run-time scenarios: `{"version": N, "items": [[name, scenario], ...]}`."""
META_KEY = "meta"

_records = TypeAdapter(RequestRecord)
_responses = TypeAdapter(StoredResponse)


def encode_record(record: RequestRecord) -> str:
    return _records.dump_json(record).decode()


def decode_record(text: str | bytes, record_id: int) -> RequestRecord:
    return numbered(_records.validate_json(text), record_id)


class SharedStore(ABC):
    """One store shared by processes: a journal log (`journal.RecordLog`), counters
    (`store.counters.Counters`), stored responses and run-time scenarios."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.owner = uuid.uuid4().hex[:12]
        """This process, as the records it has in flight name it."""
        self._finals: list[Entry] = []
        """Records whose responses have ended, to be written together (`finished`)."""
        self._flushing: asyncio.Task[None] | None = None
        self._beating: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self.instance = ""
        self.started_at = 0.0
        self.salt = b""

    def _adopt_meta(self, meta: dict[str, Any]) -> None:
        self.instance, self.started_at, self.salt = meta["instance"], meta["started_at"], bytes.fromhex(meta["salt"])

    @staticmethod
    def new_meta() -> dict[str, Any]:
        """The store's identity, made by the first process to open it."""
        return {"instance": uuid.uuid4().hex[:12], "started_at": time.time(), "salt": os.urandom(16).hex()}

    # The primitives each backend provides.

    @abstractmethod
    async def update(self, keys: Sequence[str], change: Change[T]) -> T:
        """Apply `change` to the JSON values of `keys` atomically (`store.counters.Counters`)."""

    @abstractmethod
    async def peek(self, key: str) -> Any:
        """A counter's value, read without changing it (None when unset)."""

    @abstractmethod
    async def _append(
        self, text: str, size: int, keys: Sequence[str], change: Change[T] | None
    ) -> tuple[int, T | None]:
        """In one atomic write: keep a new record in flight, owned by `self.owner`, dropping the oldest
        past the bounds, and apply `change` to `keys` (when given). Returns its id and the change's result."""

    @abstractmethod
    async def _finish(self, finals: list[tuple[int, str]]) -> None:
        """Replace in-flight records (id, final text) in one write (nothing for one dropped meanwhile)."""

    @abstractmethod
    async def _rows(self, after: int) -> list[tuple[int, str, str | None]]:
        """The records above `after`, oldest first: id, text, and the owner while in flight."""

    @abstractmethod
    async def _open_owners(self, after: int) -> list[str]:
        """The owners of the records in flight above `after`."""

    @abstractmethod
    async def last_id(self) -> int: ...

    @abstractmethod
    async def clear(self) -> int:
        """Forget every record (ids keep counting); returns how many there were."""

    @abstractmethod
    async def stats(self) -> tuple[int, int]: ...

    @abstractmethod
    async def _beat(self, now: float) -> None:
        """Note that this process is alive at `now`."""

    @abstractmethod
    async def _beats(self) -> dict[str, float]:
        """When each process last said it was alive."""

    @abstractmethod
    async def put_blob(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    async def get_blob(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def delete_blob(self, key: str) -> bool: ...

    @abstractmethod
    async def _forget_all(self) -> None:
        """Forget counters and blobs (`reset`): not the store's identity, its ids, or the records."""

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    def release(self) -> None:
        """Let go of a store that served nothing (`check_store`), without an event loop."""

    # The journal log (`journal.RecordLog`).

    async def add(self, entry: Entry) -> int:
        record_id, _ = await self._append(encode_record(entry.record), entry.size, (), None)
        numbered(entry.record, record_id)
        return record_id

    async def begin(self, entry: Entry, keys: Sequence[str], change: Change[T]) -> T:
        """Keep a request's record and apply its counters' `change`, in one write: all a request
        costs the store until it ends."""
        record_id, result = await self._append(encode_record(entry.record), entry.size, keys, change)
        numbered(entry.record, record_id)
        return result  # type: ignore[return-value]  # given a change, the backends return its result

    def finished(self, entry: Entry) -> None:
        """Write the final record in the background: the transport calls this as the response ends.
        The records that end while a write is under way go together in the next one."""
        self._finals.append(entry)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._write_finals())

    async def _write_finals(self) -> None:
        try:
            while self._finals:
                entries, self._finals = self._finals, []
                for entry in entries:
                    if entry.id == 0:  # it ended before it was kept (a bug's 500)
                        await self.add(entry)
                await self._finish([(entry.id, encode_record(entry.record)) for entry in entries])
        finally:
            self._flushing = None

    async def records(self, after: int | None) -> list[RequestRecord]:
        rows = await self._rows(after or 0)
        lost = await self._lost_owners() if any(owner is not None for _, _, owner in rows) else set()
        records = []
        for record_id, text, owner in rows:
            record = decode_record(text, record_id)
            if owner in lost:
                record = replace(record, outcome=Outcome.SERVER_LOST)
            records.append(record)
        return records

    async def any_open(self, after: int) -> bool:
        owners = await self._open_owners(after)
        if not owners:
            return False
        lost = await self._lost_owners()
        return any(owner not in lost for owner in owners)

    async def _lost_owners(self) -> set[str]:
        beats = await self._beats()
        silent_since = time.time() - LOST_AFTER_S
        return {owner for owner, beat in beats.items() if beat < silent_since and owner != self.owner}

    # Stored responses (`conversations.responses.Responses`).

    async def put(self, response_id: str, response: StoredResponse) -> None:
        await self.put_blob(f"response:{response_id}", _responses.dump_json(response))

    async def get(self, response_id: str) -> StoredResponse | None:
        data = await self.get_blob(f"response:{response_id}")
        return None if data is None else _responses.validate_json(data)

    async def delete(self, response_id: str) -> bool:
        return await self.delete_blob(f"response:{response_id}")

    # Run-time scenarios, as the objects `PUT /_mock/scenarios/NAME` accepts.

    async def put_scenario(self, name: str, scenario: dict[str, Any]) -> int:
        """Add or replace a run-time scenario; returns the scenarios' new version."""

        def change(values: list[Any]) -> tuple[list[Any], int]:
            known = values[0] or {"version": 0, "items": []}
            items = [item for item in known["items"] if item[0] != name] + [[name, scenario]]
            version = known["version"] + 1
            return [{"version": version, "items": items}], version

        return await self.update((SCENARIOS_KEY,), change)

    async def remove_scenario(self, name: str) -> bool:
        def change(values: list[Any]) -> tuple[list[Any], bool]:
            known = values[0] or {"version": 0, "items": []}
            items = [item for item in known["items"] if item[0] != name]
            if len(items) == len(known["items"]):
                return [known], False
            return [{"version": known["version"] + 1, "items": items}], True

        return await self.update((SCENARIOS_KEY,), change)

    async def runtime_scenarios(self) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        """The scenarios' version and the run-time scenarios, oldest first."""
        known = await self.peek(SCENARIOS_KEY) or {"version": 0, "items": []}
        return known["version"], [(name, scenario) for name, scenario in known["items"]]

    async def reset(self) -> int:
        """Back to the state at start, for every process: no records, counters, stored responses or
        run-time scenarios. Returns how many records were cleared."""
        known = await self.peek(SCENARIOS_KEY) or {"version": 0}
        await self._forget_all()
        await self.update((SCENARIOS_KEY,), lambda _: ([{"version": known["version"] + 1, "items": []}], None))
        return await self.clear()

    # This process's part.

    async def start(self) -> None:
        """Start saying this process is alive (its records in flight are not lost)."""
        await self._beat(time.time())
        self._beating = asyncio.get_running_loop().create_task(self._beat_forever())

    async def _beat_forever(self) -> None:
        while not await closed_within(self._closing, BEAT_S):
            try:
                await self._beat(time.time())
            except Exception:  # the store away for a moment: the next beat tries again
                continue

    async def aclose(self) -> None:
        """Stop beating, finish the writes begun, let go of the store."""
        self._closing.set()  # the beat ends at once: told, not cancelled
        if self._beating is not None:
            await self._beating
            self._beating = None
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self._close()


def dumps(value: Any) -> str:
    """A counter's value as the store keeps it."""
    return json.dumps(value, separators=(",", ":"))
