"""Every fault behaves the same on every model endpoint, streamed or whole, seen on a raw socket."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mock_server.http.server import MockServer
from mock_server.settings import Settings
from mock_server.wire.player import TIMER_SLACK_S
from tests.conftest import TEST_SCENARIOS, wait_until
from tests.model_requests import SSE_ENDPOINTS, V1_ENDPOINTS, Endpoint
from tests.wire import Ending, WireResponse, fetch

by_id = pytest.mark.parametrize("endpoint", SSE_ENDPOINTS, ids=lambda e: e.id)  # NDJSON's: test_ollama.py
v1_by_id = pytest.mark.parametrize("endpoint", V1_ENDPOINTS, ids=lambda e: e.id)


def post(server: MockServer, endpoint: Endpoint, fault: str, *, stream: bool = True, **kwargs: Any) -> WireResponse:
    body = endpoint.body("golden", stream=stream)
    target = server.url + endpoint.target("golden", stream=stream)
    return fetch(target, method="POST", body=body, headers={"X-Mock-Fault": fault}, **kwargs)


def journal_record(server: MockServer, request_id: str) -> dict[str, Any]:
    """The journal record of a request, once its response has ended."""

    def finished() -> dict[str, Any] | None:
        records = httpx.get(server.url + "/_mock/requests").json()
        record: dict[str, Any] = next(r for r in records if str(r["id"]) == request_id)
        return record if record["outcome"] is not None else None

    return wait_until(finished, f"the response to request {request_id} to end")


@by_id
def test_complete_stream_ends_with_the_dialect_end_marker(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "")
    assert (response.status, response.ending) == (200, Ending.COMPLETE)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.events[-1].startswith(endpoint.end_marker)
    record = journal_record(server, response.headers["x-mock-request-id"])
    expected = (endpoint.path_for("golden"), endpoint.dialect, "completed")
    assert (record["path"], record["dialect"], record["outcome"]) == expected


@by_id
def test_drop_leaves_every_dialect_unterminated(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "drop@5")
    assert (response.status, response.ending) == (200, Ending.EOF)
    assert response.events
    assert endpoint.end_marker not in response.text
    assert journal_record(server, response.headers["x-mock-request-id"])["outcome"] == "dropped"


@by_id
def test_reset_aborts_every_dialect(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "reset@5")
    assert (response.status, response.ending) == (200, Ending.RESET)
    assert journal_record(server, response.headers["x-mock-request-id"])["outcome"] == "reset"


@pytest.mark.slow
@by_id
def test_endless_stall_holds_every_dialect_open(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "stall@5", read_for=1.0)  # wide enough for a busy machine to send the head
    assert (response.status, response.ending) == (200, Ending.TIMEOUT)
    assert response.events
    assert endpoint.end_marker not in response.text


@pytest.mark.slow
@by_id
def test_timed_stall_pauses_then_completes(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "stall@3:300")
    assert response.ending is Ending.COMPLETE
    assert endpoint.end_marker in response.text
    ended_at = response.arrived(endpoint.end_marker.encode())  # from the request, not between reads: see `arrived`
    assert response.head_at < ended_at
    assert ended_at >= 0.3 - TIMER_SLACK_S


@pytest.mark.slow
@by_id
def test_delay_postpones_the_chunk(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "delay@1:300")
    assert response.ending is Ending.COMPLETE
    assert response.reads[-1].at >= 0.3


@by_id
def test_split_writes_events_in_pieces(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "split@1:3")
    assert response.ending is Ending.COMPLETE
    assert endpoint.end_marker in response.text
    assert any(not chunk.endswith(b"\n\n") for _, chunk in response.chunks), "an event was cut between writes"


@by_id
def test_close_ends_the_stream_with_a_close_event_where_the_route_has_one_and_cleanly_elsewhere(
    server: MockServer, endpoint: Endpoint
) -> None:
    response = post(server, endpoint, "close@2")
    assert response.ending is Ending.COMPLETE
    assert endpoint.end_marker not in response.text
    if endpoint.route.close_events:  # /completions: the custom backends' convention
        assert response.events[-1] == 'event: close\ndata: {"reason": "upstream closed"}'
    else:  # a provider's server ends the stream early and cleanly; it has no `close` event
        assert "event: close" not in response.text
        assert len(response.events) == len(post(server, endpoint, "drop@2").events)  # what came before chunk 2


DELTA_EVENT = {"anthropic": "content_block_delta", "openai-responses": "response.reasoning_text.delta"}
"""The event a malformed frame at chunk 2 of `golden` is named as (the open block or item); the
data-only dialects name none."""


def _parses(data: str) -> bool:
    try:
        json.loads(data)
    except json.JSONDecodeError:
        return False
    return True


@by_id
def test_malformed_is_one_dialect_frame_whose_data_does_not_parse(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "malformed@2")
    assert response.ending is Ending.COMPLETE
    before_the_end = response.events[:-1]  # the end marker, `data: [DONE]`, is no JSON either
    (broken,) = [event for event in before_the_end if not _parses(event.split("data: ", 1)[1])]
    name = DELTA_EVENT.get(endpoint.dialect)
    assert broken.startswith(f"event: {name}\ndata: {{" if name else "data: {")
    assert "\n" not in broken.split("data: ", 1)[1], "one data line"
    assert endpoint.end_marker in response.text


@by_id
def test_malformed_data_is_sent_in_the_dialect_framing(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "malformed@2:{not json")
    assert response.ending is Ending.COMPLETE
    name = DELTA_EVENT.get(endpoint.dialect)
    assert (f"event: {name}\n" if name else "") + "data: {not json" in response.events
    assert endpoint.end_marker in response.text


@by_id
def test_unknown_event_is_one_more_well_formed_event_and_the_stream_goes_on(
    server: MockServer, endpoint: Endpoint
) -> None:
    plain, faulty = post(server, endpoint, ""), post(server, endpoint, "unknown_event@2")
    assert faulty.ending is Ending.COMPLETE
    assert len(faulty.events) == len(plain.events) + 1
    assert all(_parses(data) for data in faulty.data if data != "[DONE]")
    if endpoint.dialect in DELTA_EVENT:  # named events: a name of its own, equal to its data's type
        (unknown,) = [e for e in faulty.events if "mock_unknown_event" in e]
        name, data = unknown.removeprefix("event: ").split("\ndata: ")
        assert json.loads(data)["type"] == name
    else:  # data-only: Azure OpenAI's prompt-filter chunk, no choice
        (unknown,) = [json.loads(d) for d in faulty.data if "prompt_filter_results" in d]
        assert unknown["choices"] == []
    assert faulty.events[-1].startswith(endpoint.end_marker)


PINNED_CLOCK = 1_767_225_600.0


@by_id
@pytest.mark.parametrize(("model", "at"), [("golden", 0), ("golden", 3), ("resumable-paced", 4)])
def test_duplicate_sends_the_very_same_bytes_of_the_next_event_twice(
    make_server: Callable[..., MockServer], endpoint: Endpoint, model: str, at: int
) -> None:
    """A retrying proxy repeats bytes: ids and sequence numbers repeat with them, nothing else moves."""
    server = make_server(wall_clock=lambda: PINNED_CLOCK)
    body = endpoint.body(model)
    headers = {"X-Mock-Chunk-Ms": "0"}
    url = server.url + endpoint.target(model)
    plain = fetch(url, method="POST", body=body, headers=headers)
    faulty = fetch(url, method="POST", body=body, headers={**headers, "X-Mock-Fault": f"duplicate@{at}"})
    assert faulty.ending is Ending.COMPLETE
    (twice,) = [i for i, event in enumerate(faulty.events[1:]) if event == faulty.events[i]]
    assert faulty.events[: twice + 1] + faulty.events[twice + 2 :] == plain.events
    if model == "resumable-paced":
        assert faulty.events[twice].startswith("id: ")


@by_id
def test_no_done_ends_cleanly_without_the_end_marker(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "no_done")
    assert response.ending is Ending.COMPLETE
    assert response.events
    assert endpoint.end_marker not in response.text


@by_id
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_status_fault_answers_in_the_dialect_error_shape(server: MockServer, endpoint: Endpoint, stream: bool) -> None:
    response = post(server, endpoint, "status:429", stream=stream)
    assert response.status == 429
    assert response.headers["retry-after"] == "1"
    body = json.loads(response.body)
    if endpoint.dialect == "anthropic":
        assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": body["error"]["message"]}}
    elif endpoint.dialect.startswith("azure"):  # Azure's gateway answers a 429 itself
        assert body["error"]["code"] == "429"
        assert set(body["error"]) == {"message", "code"}
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["code"] == "rate_limit_exceeded"


# --- responses that are not streamed -------------------------------------------------------------


@v1_by_id
def test_whole_response_is_one_json_body(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "", stream=False)
    assert (response.status, response.ending) == (200, Ending.COMPLETE)
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.body)
    assert "Looking it up." in json.dumps(json.loads(response.body))


@v1_by_id
@pytest.mark.parametrize(("fault", "ending"), [("drop@3", "eof"), ("reset@3", "reset")])
def test_cut_whole_response_sends_no_response_at_all(
    server: MockServer, endpoint: Endpoint, fault: str, ending: str
) -> None:
    with pytest.raises(ConnectionError, match=f"no HTTP response head received \\(ending: {ending}"):
        post(server, endpoint, fault, stream=False)


@pytest.mark.slow
@v1_by_id
def test_endless_stall_holds_a_whole_response_back(server: MockServer, endpoint: Endpoint) -> None:
    with pytest.raises(ConnectionError, match="ending: timeout"):
        post(server, endpoint, "stall@3", stream=False, read_for=0.5)


@pytest.mark.slow
@v1_by_id
@pytest.mark.parametrize("fault", ["delay@1:300", "stall@2:300", "split@0"])
def test_timing_faults_delay_or_split_the_whole_body(server: MockServer, endpoint: Endpoint, fault: str) -> None:
    response = post(server, endpoint, fault, stream=False)
    assert response.ending is Ending.COMPLETE
    assert "Looking it up." in json.dumps(json.loads(response.body))
    if fault.startswith("split"):
        assert len(response.reads) >= 2
    else:
        assert response.head_at >= 0.3


@v1_by_id
def test_stream_only_faults_leave_a_whole_body_valid_json(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "malformed@1,no_done,close@4", stream=False)
    assert response.status == 200
    text = json.dumps(json.loads(response.body))
    assert "Looking" in text
    assert "Looking it up." not in text, "the answer ends where `close` ended the stream"


@v1_by_id
def test_error_fault_makes_a_whole_response_an_http_error(server: MockServer, endpoint: Endpoint) -> None:
    response = post(server, endpoint, "error@2:It broke", stream=False)
    body = json.loads(response.body)
    if endpoint.dialect == "anthropic":
        assert response.status == 529
        assert body == {"type": "error", "error": {"type": "overloaded_error", "message": "It broke"}}
    else:
        assert response.status == 500
        assert body["error"]["message"] == "It broke"
    assert journal_record(server, response.headers["x-mock-request-id"])["outcome"] == "error_status"


@pytest.mark.slow
def test_server_stop_closes_a_waiting_whole_response_without_a_response() -> None:
    settings = Settings(port=0, scenario_dirs=(TEST_SCENARIOS,), access_log=False)
    (chat,) = [e for e in V1_ENDPOINTS if e.id == "chat_completions"]
    outcome: dict[str, BaseException] = {}

    def ask(server: MockServer) -> None:
        try:
            post(server, chat, "delay@1:5000", stream=False)
        except ConnectionError as exc:
            outcome["error"] = exc

    with MockServer(settings=settings) as server:
        client = threading.Thread(target=ask, args=(server,))
        client.start()
        wait_until(lambda: httpx.get(server.url + "/_mock/requests").json(), "the server to have the request")
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 4, "stop() does not wait for the 5 s delay"
    client.join()
    assert "no HTTP response head received (ending: eof" in str(outcome["error"])
