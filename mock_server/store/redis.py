"""The shared state in Redis (`--state redis://HOST:PORT/DB`): for replicas on many machines.

Every key starts with `mock-llm-sse:`, so one database can hold other things too. The journal is a
hash of records by id with a sorted set of ids (bounded by `--journal-size`), and a hash of the
records in flight and their owners; each change of several keys is one Lua script or one
`WATCH`/`MULTI` transaction, so processes never see half of it. Counters expire after
`COUNTER_TTL_S` without use and stored responses after `RESPONSE_TTL_S`, which bounds what clients
that name a new conversation or key on every request can make Redis hold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mock_server.counters import Change, T
from mock_server.errors import StateStoreError
from mock_server.store.shared import META_KEY, SharedStore, dumps

if TYPE_CHECKING:
    from redis.asyncio import Redis

PREFIX = "mock-llm-sse:"
COUNTER_TTL_S = 2 * 86_400
RESPONSE_TTL_S = 86_400
CONNECT_TIMEOUT_S = 5.0

_APPEND = """
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('ZADD', KEYS[3], id, id)
redis.call('HSET', KEYS[4], id, ARGV[2])
redis.call('HSET', KEYS[5], id, ARGV[3])
local total = redis.call('INCRBY', KEYS[6], ARGV[3])
local count = redis.call('ZCARD', KEYS[3])
local size, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
while count > 1 and (count > size or total > max_bytes) do
  local oldest = redis.call('ZPOPMIN', KEYS[3])[1]
  total = redis.call('DECRBY', KEYS[6], redis.call('HGET', KEYS[5], oldest) or 0)
  redis.call('HDEL', KEYS[2], oldest)
  redis.call('HDEL', KEYS[4], oldest)
  redis.call('HDEL', KEYS[5], oldest)
  count = count - 1
end
return id
"""
_FINISH = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return 0
"""
_CLEAR = """
local count = redis.call('ZCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return count
"""


def _key(name: str) -> str:
    return PREFIX + name


_ID, _DATA, _IDS, _OPEN, _SIZES, _BYTES = map(
    _key, ("journal:id", "journal:records", "journal:ids", "journal:open", "journal:sizes", "journal:bytes")
)
_BEATS = _key("beats")
_APPEND_KEYS = (_ID, _DATA, _IDS, _OPEN, _SIZES, _BYTES)
_RECORD_KEYS = (_IDS, _DATA, _OPEN, _SIZES, _BYTES)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class RedisStore(SharedStore):
    def __init__(self, url: str, size: int, max_bytes: int) -> None:
        super().__init__(size, max_bytes)
        try:
            import redis
            from redis.asyncio import Redis
        except ImportError:
            raise StateStoreError(
                f"--state {url}: the Redis client is not installed; install it with "
                "`pip install 'mock-llm-sse[redis]'`."
            ) from None
        self.url = url
        options: dict[str, Any] = {"socket_connect_timeout": CONNECT_TIMEOUT_S, "health_check_interval": 30}
        try:
            with redis.Redis.from_url(url, **options) as setup:  # once, before the event loop serves
                setup.set(_key(META_KEY), dumps(self.new_meta()), nx=True)
                meta = json.loads(setup.get(_key(META_KEY)))
        except (redis.RedisError, ValueError) as exc:
            reason = str(exc).rstrip(".")
            raise StateStoreError(
                f"--state {url}: cannot use Redis there: {reason}. Check that redis-server runs at that host "
                "and port, and that the URL is redis://HOST:PORT/DB."
            ) from None
        self._adopt_meta(meta)
        self._redis: Redis = Redis.from_url(url, **options)
        self._append_script = self._redis.register_script(_APPEND)
        self._finish_script = self._redis.register_script(_FINISH)
        self._clear_script = self._redis.register_script(_CLEAR)
        self._watch_error = redis.WatchError

    async def update(self, keys: Sequence[str], change: Change[T]) -> T:
        result, _ = await self._transact(keys, change, None)
        return result

    async def _transact(
        self, keys: Sequence[str], change: Change[T], record: tuple[str, int] | None
    ) -> tuple[T, int | None]:
        """Apply `change` to `keys` (`WATCH`, read, `MULTI`, write, `EXEC`, again when another process
        changed one of them first), keeping `record` (its text and size) in the same transaction."""
        names = [_key(key) for key in keys]
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*names)
                    values = [None if raw is None else json.loads(raw) for raw in await pipe.mget(names)]
                    new, result = change(values)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    for name, value in zip(names, new, strict=True):
                        pipe.set(name, dumps(value), ex=COUNTER_TTL_S)
                    if record is not None:
                        pipe.eval(_APPEND, len(_APPEND_KEYS), *_APPEND_KEYS, *self._append_args(*record))
                    done = await pipe.execute()
                    return result, None if record is None else int(done[-1])
                except self._watch_error:
                    continue

    async def peek(self, key: str) -> Any:
        raw = await self._redis.get(_key(key))
        return None if raw is None else json.loads(raw)

    async def _append(
        self, text: str, size: int, keys: Sequence[str], change: Change[T] | None
    ) -> tuple[int, T | None]:
        if change is not None and keys:
            result, record_id = await self._transact(keys, change, (text, size))
            assert record_id is not None
            return record_id, result
        record_id = int(await self._append_script(keys=_APPEND_KEYS, args=self._append_args(text, size)))
        return record_id, None if change is None else change([])[1]

    def _append_args(self, text: str, size: int) -> list[str | int]:
        return [text, self.owner, size, self.size, self.max_bytes]

    async def _finish(self, finals: list[tuple[int, str]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for record_id, text in finals:
                await self._finish_script(keys=[_IDS, _DATA, _OPEN], args=[record_id, text], client=pipe)
            await pipe.execute()

    async def _rows(self, after: int) -> list[tuple[int, str, str | None]]:
        found: list[Any] = await self._redis.zrangebyscore(_IDS, f"({after}", "+inf")
        ids = [int(raw) for raw in found]
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(_DATA, ids)
            pipe.hmget(_OPEN, ids)
            texts, owners = await pipe.execute()
        return [
            (record_id, text.decode(), None if owner is None else owner.decode())
            for record_id, text, owner in zip(ids, texts, owners, strict=True)
            if text is not None  # dropped by the bounds between the two reads
        ]

    async def _open_owners(self, after: int) -> list[str]:
        open_records = await self._redis.hgetall(_OPEN)
        return list({_text(owner) for record_id, owner in open_records.items() if int(record_id) > after})

    async def last_id(self) -> int:
        return int(await self._redis.get(_ID) or 0)

    async def clear(self) -> int:
        return int(await self._clear_script(keys=list(_RECORD_KEYS)))

    async def stats(self) -> tuple[int, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(_IDS)
            pipe.get(_BYTES)
            count, size = await pipe.execute()
        return int(count), int(size or 0)

    async def _beat(self, now: float) -> None:
        await self._redis.hset(_BEATS, self.owner, now)

    async def _beats(self) -> dict[str, float]:
        return {_text(owner): float(at) for owner, at in (await self._redis.hgetall(_BEATS)).items()}

    async def put_blob(self, key: str, data: bytes) -> None:
        await self._redis.set(_key(key), data, ex=RESPONSE_TTL_S)

    async def get_blob(self, key: str) -> bytes | None:
        data: Any = await self._redis.get(_key(key))
        return None if data is None else bytes(data)

    async def delete_blob(self, key: str) -> bool:
        return bool(await self._redis.delete(_key(key)))

    async def _forget_all(self) -> None:
        keep = {_key(META_KEY), _ID, _BEATS, *_RECORD_KEYS}
        async for name in self._redis.scan_iter(match=PREFIX + "*", count=1000):
            if _text(name) not in keep:
                await self._redis.delete(name)

    async def _close(self) -> None:
        await self._redis.aclose()

    def release(self) -> None:
        """Nothing to do: the async client connects on its first command, and none was sent."""
