"""What one app instance keeps between requests: its settings, its scenarios, its journal, its
caches; every route reaches it through `state_of(request)`."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from mock_server.conversations.responses import ResponseStore
from mock_server.conversations.sequences import Sequences
from mock_server.http.quotas import RateLimiter
from mock_server.http.request_body import journal_body
from mock_server.journal.journal import Entry, Journal, RequestRecord, Since
from mock_server.scenarios.catalog import Catalog
from mock_server.scenarios.faults import Fault
from mock_server.settings import Settings
from mock_server.timeline.compile import TimelineCache
from mock_server.upstream.recorder import Recorder
from mock_server.wire.rendering import StreamCache

if TYPE_CHECKING:  # loaded when first needed: the HTTP client to an upstream (MockApp), the verdict (below)
    from mock_server.journal.verdict import Verdict
    from mock_server.upstream.proxy import Upstream

PENDING_POLL_S = 0.01
STATE_SCOPE_KEY = "mock_llm_sse.state"
"""Where `MockApp` puts its state in each request's scope, for the routes on both of its sides."""


@dataclass
class MockState:
    settings: Settings
    catalog: Catalog
    journal: Journal
    timelines: TimelineCache = field(default_factory=TimelineCache)
    streams: StreamCache = field(default_factory=StreamCache)
    fault_counts: Counter[str] = field(default_factory=Counter)
    """How many requests carried each counted fault's text (`status:429!times=2`) since start or reset."""
    upstream: Upstream | None = None
    """Where requests no scenario answers go (`--upstream`)."""
    recorder: Recorder | None = None
    """Where exchanges with the upstream are written (`--record`)."""
    sequences: Sequences = field(default_factory=Sequences)
    """Where each conversation is in the sequences of replies (`replies:`)."""
    responses: ResponseStore = field(default_factory=ResponseStore)
    """The Responses API's stored responses."""
    quotas: RateLimiter = field(default_factory=lambda: RateLimiter((), time.time))
    """The rate limits' buckets, per client (`--rpm`, a scenario's `limits:`)."""

    async def aclose(self) -> None:
        """Let go of the upstream's connections."""
        if self.upstream is not None:
            await self.upstream.aclose()

    def count_faults(self, faults: Iterable[Fault]) -> tuple[tuple[str, int], ...]:
        """Count one more request for each counted fault's text; returns this request's number for each."""
        counts = []
        for text in dict.fromkeys(f.counted_as for f in faults if f.counted and f.counted_as is not None):
            self.fault_counts[text] += 1
            counts.append((text, self.fault_counts[text]))
        return tuple(counts)

    def open_entry(self, request: Request, raw_body: bytes | None) -> Entry:
        """Start the journal's record of a model request (the body kept as JSON when it parses)."""
        entry = self.journal.open(
            method=request.method,
            path=request.scope["path"],  # not request.url: building a URL to read its path back costs 3 us
            query=request.query_params.multi_items(),
            headers=request.headers.raw,
            body=journal_body(raw_body),
            body_bytes=len(raw_body or b""),
        )
        request.state.journal_entry = entry  # for the last-resort error handler (errors.py)
        return entry

    def reset(self) -> int:
        """Back to the state at start: no records, no run-time scenarios, `times` and sequences
        counted afresh, no stored responses, every rate limit whole, nothing cached. Returns how many
        records were cleared."""
        self.catalog.reset()
        self.fault_counts.clear()
        self.sequences.clear()
        self.responses.clear()
        self.quotas.clear()
        self.timelines.clear()
        self.streams.clear()
        return self.journal.clear()

    async def records(self, since: Since | int | None = None) -> list[RequestRecord]:
        """The journal's records above `since` (all without it), oldest first, as they are now; raises
        RestartedError for a `since` from another server instance. Readers that may run beside other
        workers (the dashboard) read records only through this."""
        return self.journal.records(since)

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
            verdict = judge(self.journal.records(since), self.settings.wall_clock())
        return verdict


def state_of(request: Request) -> MockState:
    """The state of the app serving `request`."""
    state: MockState = request.scope[STATE_SCOPE_KEY]
    return state
