"""Resume over raw HTTP: ids on every event, Last-Event-ID replays from the next one, 204 at the end."""

from __future__ import annotations

import pytest

from mock_server.wire.outcome import Outcome
from tests.wire import Ending, WireResponse, fetch

# Bundled: ids on, `retry: 1000`, chunk_ms 50, and a `once` drop before chunk 3.
DROP_ONCE = "/completions?messages=hi&scenario=mid-stream-drop&chunk_ms=0"
FULL_REPLY = "The quick brown fox jumps over the lazy dog, and then jumps back again."


def ids(response: WireResponse) -> list[int]:
    """The `id:` of every event that carries data."""
    return [
        int(line[4:])
        for event in response.events
        if "\ndata:" in f"\n{event}"
        for line in event.split("\n")
        if line.startswith("id: ")
    ]


def resume(url: str, last_event_id: str) -> WireResponse:
    return fetch(url, headers={"Last-Event-ID": last_event_id})


def test_every_event_has_an_id_counting_from_one(server):
    response = fetch(server.url + DROP_ONCE)
    data_events = [e for e in response.events if "data:" in e]
    assert ids(response) == list(range(1, len(data_events) + 1))
    assert response.ending is Ending.EOF  # the once-drop fired: role chunk + 3 chunks, then FIN


def test_retry_ms_is_sent_first_and_again_on_resume(server):
    first = fetch(server.url + DROP_ONCE)
    resumed = resume(server.url + DROP_ONCE, "2")
    assert first.text.startswith("retry: 1000\nid: 1\n")  # a field line, not an event of its own
    assert resumed.text.startswith("retry: 1000\nid: 3\n")


def test_resume_continues_after_the_last_event_id_without_the_once_fault(server):
    first = fetch(server.url + DROP_ONCE)
    last_seen = ids(first)[-1]
    resumed = resume(server.url + DROP_ONCE, str(last_seen))
    assert ids(resumed)[0] == last_seen + 1
    assert resumed.ending is Ending.COMPLETE
    assert resumed.data[-1] == "[DONE]"
    assert first.content() + resumed.content() == FULL_REPLY


def test_resume_from_the_middle_skips_exactly_what_the_client_has(server):
    full = resume(server.url + DROP_ONCE, "0")  # 0 precedes the first id: the whole stream, no drop
    resumed = resume(server.url + DROP_ONCE, "5")
    assert ids(full)[0] == 1
    assert full.ending is Ending.COMPLETE
    assert ids(resumed) == ids(full)[5:]
    assert resumed.data == full.data[5:]


def test_a_fault_without_once_fails_the_resumed_request_again(server):
    name = server.add_scenario(reply="a b c d e f", ids=True, faults=[{"kind": "drop", "at": 3}])
    url = f"{server.url}/completions?messages=hi&scenario={name}"
    first = fetch(url)
    resumed = resume(url, str(ids(first)[-1]))
    assert (first.ending, resumed.status, resumed.ending, resumed.events) == (Ending.EOF, 200, Ending.EOF, [])


@pytest.mark.parametrize("beyond", [0, 1, 100], ids=["last-id", "last-id+1", "far-beyond"])
def test_last_event_id_at_or_past_the_end_gets_204_no_content(server, beyond):
    complete = resume(server.url + DROP_ONCE, "0")
    last = ids(complete)[-1]
    response = resume(server.url + DROP_ONCE, str(last + beyond))
    assert (response.status, response.body, response.ending) == (204, b"", Ending.COMPLETE)
    record = server.records(since=int(response.headers["x-mock-request-id"]) - 1)[0]
    assert (record.status, record.outcome, record.events_sent, record.last_event_id) == (
        204,
        Outcome.COMPLETED,
        0,
        str(last + beyond),
    )


def test_one_event_before_the_end_is_not_204(server):
    complete = resume(server.url + DROP_ONCE, "0")
    response = resume(server.url + DROP_ONCE, str(ids(complete)[-2]))
    assert response.status == 200
    assert response.data == ["[DONE]"]


def test_a_non_numeric_last_event_id_replays_from_the_start_as_a_resumed_request(server):
    response = resume(server.url + DROP_ONCE, "not-a-number")
    assert ids(response)[0] == 1
    assert response.ending is Ending.COMPLETE  # resumed: the once-drop does not fire


def test_without_ids_last_event_id_replays_from_the_start(server):
    url = f"{server.url}/completions?messages=hi&scenario=paced&chunk_ms=0"
    response = resume(url, "3")
    assert response.status == 200
    assert ids(response) == []
    assert response.content() == "one two three four five six seven eight nine ten"


def test_journal_records_the_last_event_id_and_what_the_resumed_request_sent(server):
    resumed = resume(server.url + DROP_ONCE, "5")
    record = server.records(since=int(resumed.headers["x-mock-request-id"]) - 1)[0]
    assert (record.last_event_id, record.outcome, record.events_sent) == ("5", Outcome.COMPLETED, len(resumed.data))


def test_resume_resends_the_retry_field_but_no_piece_of_a_split_event(server):
    name = server.add_scenario(
        reply="alpha beta gamma", ids=True, retry_ms=500, faults=[{"kind": "split", "at": 0, "ms": 0}]
    )
    url = f"{server.url}/completions?messages=hi&scenario={name}"
    full = fetch(url)
    resumed = resume(url, "2")
    assert resumed.text.startswith("retry: 500\n")
    assert resumed.events[1:] == full.events[3:]  # after: retry, role chunk (split), "alpha"
