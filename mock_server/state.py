"""What one app instance keeps between requests: its settings, its scenarios, its counters."""

from __future__ import annotations

from dataclasses import dataclass

from mock_server.catalog import Catalog
from mock_server.journal import Journal
from mock_server.settings import Settings


@dataclass
class MockState:
    settings: Settings
    catalog: Catalog
    journal: Journal
