"""What the server has done, counted for Prometheus (`GET /_mock/metrics`).

The counts are kept as each request is selected and as it ends (once a request, never per chunk),
in plain dictionaries; Prometheus's text is made only when it is asked for, so the streams pay
nothing for it. The counters count since the server started (`POST /_mock/reset` does not set them
back, as Prometheus expects of a counter); the gauges say how things are now.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

LATENESS_BUCKETS_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0)
"""The lateness histogram's upper bounds in ms (then +Inf)."""
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of Prometheus's text format."""
OTHER_ENDPOINT = "other"
"""The endpoint of a request no model route took (an unknown path): one label, whatever the path."""


@dataclass
class Tally:
    """The counts since start: requests, faults, events and each completed stream's lateness."""

    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """By (endpoint, scenario, outcome)."""
    faults: Counter[str] = field(default_factory=Counter)
    events: int = 0
    lateness_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BUCKETS_MS) + 1))
    lateness_sum_ms: float = 0.0

    def carried(self, kinds: Iterable[str]) -> None:
        """A request carries these faults (its scenario's and its own)."""
        self.faults.update(kinds)

    def finished(
        self, endpoint: str | None, scenario: str | None, outcome: str, events: int, late_ms: float | None
    ) -> None:
        """A request ended: the route that took it, its scenario, how it ended, the events it wrote,
        and for a completed stream, how late its last write was (ms)."""
        self.requests[(endpoint or OTHER_ENDPOINT, scenario or "", outcome)] += 1
        self.events += events
        if late_ms is not None:
            late = max(0.0, late_ms)
            self.lateness_buckets[bisect.bisect_left(LATENESS_BUCKETS_MS, late)] += 1
            self.lateness_sum_ms += late


@dataclass(frozen=True, slots=True)
class Now:
    """How things are at a scrape: the journal's size, its open streams, the verdict's findings."""

    open_streams: int
    journal_records: int
    journal_bytes: int
    findings: Sequence[tuple[str, str]] = ()
    """(code, severity) of each finding of the verdict on the journal."""


def exposition(tally: Tally, now: Now) -> bytes:
    """Prometheus's text format of the counts and of how things are now."""
    # prometheus_client is imported here, on the first scrape: serving streams never needs it.
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.registry import Collector

    class _Now(Collector):
        def collect(self) -> Iterator[Metric]:
            return _families(tally, now)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Now())
    return generate_latest(registry)


def _families(tally: Tally, now: Now) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    requests = CounterMetricFamily(
        "mock_llm_requests",
        "Model requests answered, by endpoint, scenario and outcome",
        labels=["endpoint", "scenario", "outcome"],
    )
    for (endpoint, scenario, outcome), count in sorted(tally.requests.items()):
        requests.add_metric([endpoint, scenario, outcome], count)
    yield requests
    faults = CounterMetricFamily("mock_llm_faults", "Faults requests carried, by kind", labels=["kind"])
    for kind, count in sorted(tally.faults.items()):
        faults.add_metric([kind], count)
    yield faults
    yield CounterMetricFamily("mock_llm_events_written", "Stream events written to clients", value=tally.events)
    yield GaugeMetricFamily("mock_llm_open_streams", "Responses being sent now", value=now.open_streams)
    buckets = []
    total = 0
    for bound, count in zip([*LATENESS_BUCKETS_MS, float("inf")], tally.lateness_buckets, strict=True):
        total += count
        buckets.append(("+Inf" if bound == float("inf") else f"{bound / 1000:g}", total))
    yield HistogramMetricFamily(
        "mock_llm_stream_lateness_seconds",
        "How late each completed stream's last event was against its schedule",
        buckets=buckets,
        sum_value=tally.lateness_sum_ms / 1000,
    )
    yield GaugeMetricFamily("mock_llm_journal_records", "Records the journal holds", value=now.journal_records)
    yield GaugeMetricFamily("mock_llm_journal_bytes", "About how many bytes the journal holds", value=now.journal_bytes)
    findings = GaugeMetricFamily(
        "mock_llm_verdict_findings", "Findings of the verdict on the journal now, by code", labels=["code", "severity"]
    )
    by_code = Counter(now.findings)
    for (code, severity), count in sorted(by_code.items()):
        findings.add_metric([code, severity], count)
    yield findings
