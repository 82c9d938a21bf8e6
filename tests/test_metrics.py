"""GET /_mock/metrics: Prometheus's text format of what the server did, read back with
prometheus_client's own parser, as Prometheus would scrape it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mock_server.http.server import MockServer
from tests.conftest import wait_until
from tests.wire import fetch

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: MockServer, **headers: str) -> Samples:
    response = httpx.get(server.url + "/_mock/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_requests_count_by_endpoint_scenario_and_outcome(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    fetch(f"{server.url}/completions?messages=hi")
    fetch(f"{server.url}/completions?messages=hi&fault=drop@2")
    httpx.post(
        server.url + "/openai/deployments/default/chat/completions?api-version=2024-10-21",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers={"X-Mock-Chunk-Ms": "0"},
    )
    httpx.post(server.url + "/v1/nowhere", json={})
    samples = scrape(server)
    requests = {labels: value for (name, labels), value in samples.items() if name == "mock_llm_requests_total"}
    assert requests[(("endpoint", "/completions"), ("outcome", "completed"), ("scenario", "default"))] == 1
    assert requests[(("endpoint", "/completions"), ("outcome", "dropped"), ("scenario", "default"))] == 1
    azure = (
        ("endpoint", "/openai/deployments/{deployment}/chat/completions"),
        ("outcome", "completed"),
        ("scenario", "default"),
    )
    assert requests[azure] == 1  # the route as declared: one series whatever the deployment
    assert samples[("mock_llm_faults_total", (("kind", "drop"),))] == 1
    events = sum(record.events_sent for record in server.requests)
    assert samples[("mock_llm_events_written_total", ())] == events > 0


def test_lateness_counts_each_completed_stream(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    for _ in range(3):
        fetch(f"{server.url}/completions?messages=hi&chunk_ms=20")
    samples = scrape(server)
    assert samples[("mock_llm_stream_lateness_seconds_count", ())] == 3
    assert samples[("mock_llm_stream_lateness_seconds_bucket", (("le", "+Inf"),))] == 3
    assert 0 <= samples[("mock_llm_stream_lateness_seconds_sum", ())] < 3


def test_open_streams_and_the_journal_are_gauges_of_now(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    stalled = threading.Thread(target=fetch, args=(f"{server.url}/completions?messages=hi&fault=stall@1:1500",))
    stalled.start()
    wait_until(lambda: scrape(server)[("mock_llm_open_streams", ())] == 1, "the stalled stream to be open")
    stalled.join()
    samples = scrape(server)
    assert samples[("mock_llm_open_streams", ())] == 0
    assert samples[("mock_llm_journal_records", ())] == 1
    assert samples[("mock_llm_journal_bytes", ())] > 0
    server.reset()
    after = scrape(server)
    assert after[("mock_llm_journal_records", ())] == 0
    total = (("endpoint", "/completions"), ("outcome", "completed"), ("scenario", "default"))
    assert after[("mock_llm_requests_total", total)] == 1  # a counter: reset forgets the journal, not the count


def test_findings_of_the_verdict_by_code(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    for _ in range(2):
        httpx.get(f"{server.url}/completions", params={"messages": "hi", "scenario": "unauthorized"})
    samples = scrape(server)
    assert samples[("mock_llm_verdict_findings", (("code", "retried_non_retryable"), ("severity", "error")))] == 1


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"Authorization": "Bearer s3cret"}, 200)])
def test_metrics_need_the_admin_token_when_there_is_one(
    make_server: Callable[..., MockServer], headers: dict[str, str], status: int
) -> None:
    server = make_server(admin_token="s3cret")
    assert httpx.get(server.url + "/_mock/metrics", headers=headers).status_code == status
