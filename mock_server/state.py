"""What one app instance keeps between requests: its settings, its scenarios, its counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from mock_server.catalog import Catalog
from mock_server.journal import Journal
from mock_server.render import RenderCache
from mock_server.settings import Settings
from mock_server.timeline import TimelineCache


@dataclass
class MockState:
    settings: Settings
    catalog: Catalog
    journal: Journal
    timelines: TimelineCache = field(default_factory=TimelineCache)
    renders: RenderCache = field(default_factory=RenderCache)

    def reset(self) -> int:
        """Back to the state at start: no records, no run-time scenarios, `times` counted afresh.
        Returns how many records were cleared."""
        self.catalog.reset()
        return self.journal.clear()
