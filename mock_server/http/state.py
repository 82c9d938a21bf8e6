"""What one app instance keeps between requests: its settings, its scenarios, its journal, its
caches; every route reaches it through `state_of(request)`."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from mock_server.conversations.responses import Responses, ResponseStore
from mock_server.conversations.sequences import Sequences
from mock_server.counters import Counters, MemoryCounters, Plan, counter_key
from mock_server.errors import ScenarioError
from mock_server.http.quotas import RateLimiter, limits_of
from mock_server.http.request_body import Body
from mock_server.http.scope import STATE_SCOPE_KEY
from mock_server.journal.journal import Entry, Journal, RequestRecord, Since
from mock_server.scenarios.catalog import RUNTIME_SOURCE, Catalog, load_runtime_scenario
from mock_server.scenarios.faults import Fault
from mock_server.scenarios.loading import Document
from mock_server.scenarios.model import Scenario
from mock_server.settings import Settings
from mock_server.store.closing import closed_within

if TYPE_CHECKING:
    from starlette.requests import Request

    from mock_server.conversations.thread import CompletedBodies
    from mock_server.journal.verdict import Verdict
    from mock_server.store.shared import (
        SharedStore,  # loaded when first needed: the HTTP client to an upstream (MockApp), the verdict (below)
    )
    from mock_server.timeline.compile import TimelineCache
    from mock_server.upstream.proxy import Upstream
    from mock_server.upstream.recorder import Recorder
    from mock_server.wire.rendering import StreamCache

PENDING_POLL_S = 0.01
SCENARIO_FOLLOW_S = 0.05
"""How often a process sharing its state looks for run-time scenarios added through another."""
Counted = tuple[int, tuple[tuple[str, int], ...]]
_log = logging.getLogger("mock_llm_sse.state")


class Caches:
    """What is derived from a request and kept for the next one like it: compiled timelines, rendered
    streams, the bodies of stored responses. Each is made, and its module loaded, by the first model
    request: the ready check, which a starting server answers first, needs neither the compiler nor
    the renderer."""

    def __init__(self) -> None:
        self._timelines: TimelineCache | None = None
        self._streams: StreamCache | None = None
        self._completed: CompletedBodies | None = None

    @property
    def timelines(self) -> TimelineCache:
        if self._timelines is None:
            from mock_server.timeline.compile import TimelineCache  # loaded with the first model request

            self._timelines = TimelineCache()
        return self._timelines

    @property
    def streams(self) -> StreamCache:
        if self._streams is None:
            from mock_server.wire.rendering import StreamCache  # loaded with the first model request

            self._streams = StreamCache()
        return self._streams

    @property
    def completed(self) -> CompletedBodies:
        if self._completed is None:
            from mock_server.conversations.thread import CompletedBodies  # loaded with the first model request

            self._completed = CompletedBodies()
        return self._completed

    def clear(self) -> None:
        for cache in (self._timelines, self._streams, self._completed):
            if cache is not None:
                cache.clear()


@dataclass
class MockState:
    settings: Settings
    catalog: Catalog
    journal: Journal
    caches: Caches = field(default_factory=Caches)
    """Compiled timelines and rendered streams, kept for the requests that make the same again."""
    upstream: Upstream | None = None
    """Where requests no scenario answers go (`--upstream`)."""
    recorder: Recorder | None = None
    """Where exchanges with the upstream are written (`--record`)."""
    counters: Counters = field(default_factory=MemoryCounters)
    """How many requests chose each scenario and carried each counted fault, where each conversation is
    in its `replies`, and the rate limits' buckets."""
    responses: Responses = field(default_factory=ResponseStore)
    """The Responses API's stored responses."""
    store: SharedStore | None = None
    """The state shared with other workers and replicas (`--state`), when it is: then the journal,
    the counters and the stored responses are kept there, and run-time scenarios are followed there."""
    sequences: Sequences = field(init=False)
    """Where each conversation is in the sequences of replies (`replies:`)."""
    quotas: RateLimiter = field(init=False)
    """The rate limits' buckets, per client (`--rpm`, a scenario's `limits:`)."""
    _following: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _closing: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _scenarios_version: int = field(default=0, init=False, repr=False)
    _loaded: dict[tuple[str, str], Scenario] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.sequences = Sequences(self.counters)
        server_limits = limits_of(settings.rpm, settings.tpm, settings.rpd, lambda name: f"--{name}")
        self.quotas = RateLimiter(server_limits, settings.wall_clock, self.counters)

    async def start(self) -> None:
        """Join the shared state, when there is one: say this process is alive, and follow the
        run-time scenarios other processes add."""
        if self.store is not None:
            await self.store.start()
            await self.follow_scenarios()
            self._following = asyncio.get_running_loop().create_task(self._follow_forever())

    async def aclose(self) -> None:
        """Let go of the upstream's connections and the shared state."""
        self._closing.set()  # the loop below ends at once: told, not cancelled
        if self._following is not None:
            await self._following
            self._following = None
        if self.store is not None:
            await self.store.aclose()
        if self.upstream is not None:
            await self.upstream.aclose()

    def count_faults(self, plan: Plan, scenario: str, faults: Iterable[Fault], counted: Iterable[Fault]) -> int | None:
        """Add to `plan` counting a request that carries `faults`, for its scenario's `times` and
        `probability` draws, and each counted fault's text in `counted` (`status:429!times=2`); its
        result is this request's number for the scenario and for each text. Returns its index; None
        for a request without faults, which counts nothing (its numbers are 1)."""
        texts = list(dict.fromkeys(f.counted_as for f in counted if f.counted and f.counted_as is not None))
        if not texts and not any(True for _ in faults):
            return None
        keys = (counter_key("chosen", scenario), *(counter_key("fault", text) for text in texts))

        def change(values: list[Any]) -> tuple[list[Any], Counted]:
            new = [(value or 0) + 1 for value in values]
            return new, (new[0], tuple(zip(texts, new[1:], strict=True)))

        return plan.add(keys, change)

    async def begin(self, entry: Entry, plan: Plan) -> list[Any]:
        """Keep a request's record and count what `plan` counts: in a shared store, one write.
        Returns the plan's results."""
        if self.store is not None:
            return await self.store.begin(entry, plan.keys, plan.change)
        results = await self.counters.update(plan.keys, plan.change) if plan else []
        await self.journal.keep(entry)
        return results

    def new_entry(self, request: Request, raw_body: bytes | None, body: Body | None = None) -> Entry:
        """The journal's record of a model request (the body kept as JSON when it parses; `body`: read
        already), not kept yet: `begin` keeps it with the request's counters, in one write."""
        entry = self.journal.new_entry(
            method=request.method,
            path=request.scope["path"],  # not request.url: building a URL to read its path back costs 3 us
            query=query_of(request).multi_items(),
            headers=request.headers.raw,
            body=(body or Body.read(raw_body)).journaled() if raw_body else None,
            body_bytes=len(raw_body or b""),
        )
        # For the last-resort error handler (errors.py), which reads it as `request.state.journal_entry`:
        # put in the scope's state directly, without the `State` Starlette would make for it.
        request.scope.setdefault("state", {})["journal_entry"] = entry
        return entry

    async def open_entry(self, request: Request, raw_body: bytes | None) -> Entry:
        """The journal's record of a request, kept (`new_entry`, then `Journal.keep`)."""
        entry = self.new_entry(request, raw_body)
        await self.journal.keep(entry)
        return entry

    async def records(self, since: Since | int | None = None) -> list[RequestRecord]:
        """The journal's records above `since` (all without it), oldest first, as they are now, wherever
        the journal keeps them; raises RestartedError for a `since` from another server instance."""
        return await self.journal.records(since)

    async def put_scenario(self, scenario: Scenario) -> None:
        """Add or replace a run-time scenario, for every process sharing the state."""
        if self.store is None:
            self.catalog.add(scenario)
            return
        await self.store.put_scenario(scenario.name, scenario.model_dump(mode="json", exclude_defaults=True))
        await self.follow_scenarios()

    async def remove_scenario(self, name: str) -> bool:
        """Remove a run-time scenario, for every process; False when there is none of that name."""
        if self.store is None:
            return self.catalog.remove(name)
        removed = await self.store.remove_scenario(name)
        await self.follow_scenarios()
        return removed

    async def follow_scenarios(self) -> None:
        """Take the run-time scenarios from the shared state, when they have changed."""
        assert self.store is not None
        version, items = await self.store.runtime_scenarios()
        if version == self._scenarios_version:
            return
        scenarios = []
        loaded: dict[tuple[str, str], Scenario] = {}
        for name, data in items:
            key = (name, json.dumps(data, sort_keys=True))
            scenario = self._loaded.get(key)
            if scenario is None:
                try:
                    scenario = load_runtime_scenario(Document(RUNTIME_SOURCE, data), name)
                except ScenarioError as exc:  # written by a server of another version
                    _log.warning("run-time scenario %r from the shared state is not valid here: %s", name, exc)
                    continue
            loaded[key] = scenario
            scenarios.append(scenario)
        self._loaded = loaded
        self.catalog.set_runtime(scenarios)
        self._scenarios_version = version

    async def _follow_forever(self) -> None:
        while not await closed_within(self._closing, SCENARIO_FOLLOW_S):
            try:
                await self.follow_scenarios()
            except Exception:  # the store away for a moment: the next look tries again
                _log.warning("could not read the run-time scenarios from the shared state", exc_info=True)

    async def reset(self) -> int:
        """Back to the state at start: no records, no run-time scenarios, `times` and sequences
        counted afresh, no stored responses, every rate limit whole, nothing cached (for every process
        sharing the state). Returns how many records were cleared."""
        self.caches.clear()
        if self.store is not None:
            cleared = await self.store.reset()
            await self.follow_scenarios()
            return cleared
        self.catalog.reset()
        if isinstance(self.counters, MemoryCounters):
            self.counters.clear()
        if isinstance(self.responses, ResponseStore):
            self.responses.clear()
        return await self.journal.clear()

    async def verdict(self, since: Since | int | None = None, settle_s: float = 0.0, wait_s: float = 0.0) -> Verdict:
        """The verdict on the records above `since`, judged now, once responses in flight have had up
        to `settle_s` to end. Checks still pending get up to `wait_s` more to be decided (each is
        judged again at its moment, with whatever requests have come since). Raises RestartedError for
        a `since` from another server instance."""
        from mock_server.journal.verdict import judge  # its rules load on the first verdict, not at start

        deadline = time.monotonic() + wait_s
        records = await self.journal.settled(since, settle_s)
        verdict = judge(records, self.settings.wall_clock())
        while verdict.pending and (left := deadline - time.monotonic()) > 0:
            due = min(check.decided_at for check in verdict.pending) - verdict.judged_at
            await asyncio.sleep(min(left, max(due, 0.0) + PENDING_POLL_S))
            verdict = judge(await self.journal.records(since), self.settings.wall_clock())
        return verdict


_QUERY_SCOPE_KEY = "mock_llm_sse.query"
"""A request's `Query`, kept in its scope once read."""


class Query(dict[str, str]):
    """A request's query parameters as Starlette's `QueryParams` reads them (the last value of a
    repeated name), and every pair in order (`multi_items`), for the journal. A dict: Starlette's
    QueryParams copies its pairs three times over (3-5 us for an Azure `api-version`)."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[tuple[str, str]] | None = None) -> None:
        super().__init__(pairs or ())
        self._pairs = pairs or []

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._pairs)


NO_QUERY = Query()


def query_of(request: Request) -> Query:
    """The request's query parameters, read once per request; for a request without a query (most
    POSTs) a shared empty one."""
    scope = request.scope
    raw: bytes = scope["query_string"]
    if not raw:
        return NO_QUERY
    query: Query | None = scope.get(_QUERY_SCOPE_KEY)
    if query is None:
        query = scope[_QUERY_SCOPE_KEY] = Query(_query_pairs(raw))
    return query


def _query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """The pairs of a query string as Starlette reads them (`parse_qsl` of its latin-1 text, blank
    values kept). One without `%` or `+` has nothing to unquote: split directly (1 us instead of 3)."""
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    return [(name, value) for name, _, value in (pair.partition("=") for pair in text.split("&") if pair)]


def state_of(request: Request) -> MockState:
    """The state of the app serving `request`."""
    state: MockState = request.scope[STATE_SCOPE_KEY]
    return state
