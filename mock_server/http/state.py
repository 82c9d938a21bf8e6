"""What one app instance keeps between requests: its settings, its scenarios, its counters."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from mock_server.journal.journal import Journal, Since
from mock_server.journal.verdict import Verdict, judge
from mock_server.scenarios.catalog import Catalog
from mock_server.settings import Settings
from mock_server.timeline.compile import TimelineCache
from mock_server.wire.rendering import RenderCache

PENDING_POLL_S = 0.01


@dataclass
class MockState:
    settings: Settings
    catalog: Catalog
    journal: Journal
    timelines: TimelineCache = field(default_factory=TimelineCache)
    renders: RenderCache = field(default_factory=RenderCache)

    def reset(self) -> int:
        """Back to the state at start: no records, no run-time scenarios, `times` counted afresh,
        nothing cached. Returns how many records were cleared."""
        self.catalog.reset()
        self.timelines.clear()
        self.renders.clear()
        return self.journal.clear()

    async def verdict(self, since: Since | int | None = None, settle_s: float = 0.0, wait_s: float = 0.0) -> Verdict:
        """The verdict on the records above `since`, judged now, once responses in flight have had up
        to `settle_s` to end. Checks still pending get up to `wait_s` more to be decided (each is
        judged again at its moment, with whatever requests have come since). Raises RestartedError for
        a `since` from another server instance."""
        deadline = time.monotonic() + wait_s
        records = await self.journal.settled(since, settle_s)
        verdict = judge(records, self.settings.wall_clock())
        while verdict.pending and (left := deadline - time.monotonic()) > 0:
            due = min(check.decided_at for check in verdict.pending) - verdict.judged_at
            await asyncio.sleep(min(left, max(due, 0.0) + PENDING_POLL_S))
            verdict = judge(self.journal.records(since), self.settings.wall_clock())
        return verdict
