"""The request journal: the SPEC's fields, an outcome that says how every response ended, bounds."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mock_server.errors import RestartedError
from mock_server.http.server import MockServer
from mock_server.journal.journal import Entry, Journal, RequestRecord, Since
from mock_server.journal.log import MemoryLog
from mock_server.journal.trail import ToolCall, ToolTrail
from mock_server.scenarios.model import Thresholds
from mock_server.scenarios.steps import Ending as StreamEnding
from mock_server.store import open_store
from mock_server.wire.actions import Schedule
from mock_server.wire.outcome import Outcome, PlayResult
from tests.stores import state_of_kind
from tests.wire import Ending, WireResponse, fetch


async def opened(journal: Journal, **request: Any) -> Entry:
    """A new record of a request, kept, as the server keeps one (`new_entry`, then `keep`)."""
    entry = journal.new_entry(**request)
    await journal.keep(entry)
    return entry


pytestmark = pytest.mark.anyio  # the journal's own API is async: its tests are too

SPEC_FIELDS = [
    "id",
    "received_at",
    "method",
    "path",
    "query",
    "headers",
    "body",
    "prompt",
    "scenario",
    "dialect",
    "status",
    "events_sent",
    "outcome",
    "last_event_id",
    "duration_ms",
]
VERDICT_FACTS = [
    "ids",
    "last_id_sent",
    "retry_ms",
    "retry_after",
    "ending",
    "close_at_ms",
    "stall_at_ms",
    "stall_ms",
    "thresholds",
]
UPSTREAM_FACTS = ["upstream_status", "upstream_head_ms"]
LOOP_FACTS = ["conversation", "tools", "rate_limit_key", "rate_limited"]
METRICS_FACTS = ["endpoint", "due_end_ms", "events_timing"]
WORKERS_FACTS = ["worker"]


def record_of(server: MockServer, response: WireResponse) -> RequestRecord:
    """The journal record of the request that got `response`."""
    request_id = int(response.headers["x-mock-request-id"])
    (record,) = server.records(since=request_id - 1)[:1]
    assert record.id == request_id
    return record


def test_record_has_the_spec_fields_then_the_facts_the_verdict_needs(server):
    response = fetch(
        server.url + "/completions",
        method="POST",
        headers={"Authorization": "Bearer sk-test", "X-Trace": "t-1"},
        body={"model": "gpt-test", "messages": [{"role": "user", "content": "hello there"}]},
    )
    record = record_of(server, response)
    assert (
        list(record.to_json())
        == SPEC_FIELDS + VERDICT_FACTS + UPSTREAM_FACTS + LOOP_FACTS + METRICS_FACTS + WORKERS_FACTS
    )
    assert (record.endpoint, record.due_end_ms is not None) == ("/completions", True)
    assert (record.upstream_status, record.upstream_head_ms) == (None, None)
    assert record.method == "POST"
    assert record.path == "/completions"
    assert record.headers["authorization"] == "Bearer ..."  # masked: the journal keeps no usable key
    assert record.headers["x-trace"] == "t-1"
    assert record.body == {"model": "gpt-test", "messages": [{"role": "user", "content": "hello there"}]}
    assert record.prompt == "hello there"
    assert record.scenario == "default"
    assert record.dialect == "openai-chat"
    assert record.status == 200
    assert record.outcome is Outcome.COMPLETED
    assert record.events_sent == len(response.events)
    assert record.last_event_id is None
    assert record.duration_ms is not None
    assert record.duration_ms > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("query", "outcome", "ending"),
    [
        ("scenario=paced", Outcome.COMPLETED, Ending.COMPLETE),
        ("scenario=paced&fault=drop@3", Outcome.DROPPED, Ending.EOF),
        ("scenario=paced&fault=reset@3", Outcome.RESET, Ending.RESET),
        ("scenario=paced&fault=close@3", Outcome.COMPLETED, Ending.COMPLETE),
        ("scenario=paced&fault=error@3", Outcome.COMPLETED, Ending.COMPLETE),
        ("scenario=paced&fault=malformed@3", Outcome.COMPLETED, Ending.COMPLETE),
        ("scenario=paced&fault=split@3", Outcome.COMPLETED, Ending.COMPLETE),
        ("scenario=paced&fault=delay@3:50", Outcome.COMPLETED, Ending.COMPLETE),
        ("scenario=paced&fault=stall@3:50", Outcome.COMPLETED, Ending.COMPLETE),
        ("scenario=paced&fault=no_done", Outcome.COMPLETED, Ending.COMPLETE),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_outcome_and_events_sent_match_what_the_client_received(server, query, outcome, ending):
    response = fetch(f"{server.url}/completions?messages=hi&{query}")
    record = record_of(server, response)
    assert response.ending is ending
    assert (record.outcome, record.events_sent) == (outcome, len(response.events))


@pytest.mark.parametrize(
    ("query", "status"),
    [("fault=status:503", 503), ("scenario=rate-limited", 429), ("scenario=no-such-scenario", 404)],
)
def test_an_http_error_before_the_stream_is_error_status(server, query, status):
    response = fetch(f"{server.url}/completions?messages=hi&{query}")
    record = record_of(server, response)
    assert (response.status, record.status, record.outcome, record.events_sent) == (
        status,
        status,
        Outcome.ERROR_STATUS,
        0,
    )


def test_client_that_reads_three_events_and_closes_is_client_disconnected_after_three(server):
    # The role chunk and "one" leave together, then a chunk every 250 ms; the client hangs up after
    # its third event, while the server sleeps before the fourth (250 ms leave room for a busy machine).
    response = fetch(f"{server.url}/completions?messages=hi&scenario=paced&chunk_ms=250", max_events=3)
    record = record_of(server, response)
    assert len(response.events) == 3
    assert (record.outcome, record.events_sent) == (Outcome.CLIENT_DISCONNECTED, 3)


def test_hang_up_during_a_long_sleep_is_noticed_at_once(server):
    response = fetch(f"{server.url}/completions?messages=hi&scenario=paced&chunk_ms=30000", max_events=2)
    record = record_of(server, response)
    assert (record.outcome, record.events_sent) == (Outcome.CLIENT_DISCONNECTED, 2)
    assert record.duration_ms is not None
    assert record.duration_ms < 5000


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["stall@3", "stall@3:30000"], ids=["forever", "30s"])
def test_client_giving_up_during_a_stall_is_stalled(server, fault):
    response = fetch(f"{server.url}/completions?messages=hi&scenario=paced&fault={fault}", read_for=0.5)
    record = record_of(server, response)
    assert response.ending is Ending.TIMEOUT
    assert (record.outcome, record.events_sent) == (Outcome.STALLED, 4)
    assert record.duration_ms is not None
    assert record.duration_ms < 5000


def test_stream_in_flight_has_no_outcome_until_it_ends(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /completions?messages=hi&fault=stall@0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = sock.recv(4096).decode()
        request_id = int(head.lower().split("x-mock-request-id: ")[1].split("\r\n")[0])
        began = time.monotonic()
        (in_flight,) = server.records(since=request_id - 1, settle_s=0.2)
        assert time.monotonic() - began >= 0.2  # it waited for the bounded settle, then answered
        assert (in_flight.outcome, in_flight.status, in_flight.duration_ms) == (None, None, None)
        assert "outcome='in flight'" in repr(in_flight)
    (ended,) = server.records(since=request_id - 1)
    assert ended.outcome is Outcome.STALLED


def test_journal_keeps_the_newest_records(make_server):
    server = make_server(journal_size=3)
    for _ in range(5):
        fetch(server.url + "/completions?messages=hi&chunk_ms=0")
    assert [r.id for r in server.requests] == [3, 4, 5]


async def test_journal_ids_go_on_after_clear_and_since_filters(make_journal):
    journal = make_journal(size=10)
    for _ in range(3):
        await opened(journal, method="GET", path="/", query=[], headers=[], body=None)
    assert await journal.clear() == 3
    record = await opened(journal, method="GET", path="/", query=[], headers=[], body=None)
    assert record.id == 4
    assert [r.id for r in await journal.records(since=3)] == [4]
    assert await journal.records(since=4) == []


async def test_a_journal_keeps_the_newest_records(make_journal):
    journal = make_journal(size=3)
    for _ in range(5):
        await opened(journal, method="GET", path="/", query=[], headers=[], body=None)
    assert [r.id for r in await journal.records()] == [3, 4, 5]
    assert (await journal.log.stats())[0] == 3


async def test_settled_returns_as_soon_as_records_in_flight_end(make_journal):
    journal = make_journal()
    record = await opened(journal, method="GET", path="/completions", query=[], headers=[], body=None)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, record.on_play_end(200), PlayResult(Outcome.DROPPED, 4))
    began = time.monotonic()
    (settled,) = await journal.settled(timeout_s=10)
    assert (settled.outcome, settled.events_sent, settled.status) == (Outcome.DROPPED, 4, 200)
    assert time.monotonic() - began < 5


async def test_record_repr_is_one_readable_line():
    journal = Journal(wall_clock=lambda: 0.0)
    live = await opened(
        journal, method="GET", path="/completions", query=[], headers=[(b"last-event-id", b"4")], body=None
    )
    live.note_selection(prompt="", scenario="mid-stream-drop", dialect="openai-chat", thresholds=Thresholds())
    live.finish(200, Outcome.CLIENT_DISCONNECTED, 3)
    text = repr(live.snapshot())
    assert text.startswith(
        "<RequestRecord #1 GET /completions scenario='mid-stream-drop' status=200 "
        "outcome='client_disconnected' events_sent=3 last_event_id='4' "
    )
    assert text.endswith("ms>")


TIMED = ("received_at", "duration_ms", "close_at_ms", "stall_at_ms", "due_end_ms")
"""Fields read from the clocks: two entries noted alike differ in them by a few microseconds."""
NOTES: list[Callable[[Entry], None]] = [
    lambda e: e.note_selection(
        prompt="hi", scenario="s", dialect="openai-chat", thresholds=Thresholds(), endpoint="/v1/chat/completions"
    ),
    lambda e: e.note_conversation("c-1", ToolTrail()),
    lambda e: e.note_tool_calls((ToolCall("call_1", "get_weather"),)),
    lambda e: e.note_rate_limit("key sk-...1234#5f2b9c0e1a7d"),
    lambda e: e.note_stream(ids=True, retry_ms=1500, ending=StreamEnding.DONE),
    lambda e: e.note_schedule(Schedule(close_at_s=0.2, stall_at_s=0.5, stall_s=1.0, end_s=2.0)),
    lambda e: e.note_headers([("Retry-After", "3")]),
    lambda e: e.note_upstream(200, 1.5),
]


def untimed(record: RequestRecord) -> dict[str, Any]:
    return {name: value for name, value in record.to_json().items() if name not in TIMED}


def arrived(journal: Journal) -> Entry:
    return journal.new_entry(
        method="POST",
        path="/v1/chat/completions",
        query=[("a", "1")],
        headers=[(b"x-api-key", b"sk-secret-1234")],
        body={"messages": [{"role": "user", "content": "hi"}]},
        body_bytes=48,
    )


def by_copies(journal: Journal) -> RequestRecord:
    """The record as each note used to make it: the one before, copied with the note's fields."""
    entry = arrived(journal)
    assert entry.record.id == 0
    for note in NOTES:
        note(entry)
        assert entry.record is not None  # read after each note: a copy with its fields
    entry.finish(200, Outcome.COMPLETED, 5, 5)
    return entry.record


@pytest.mark.parametrize("read_after", [0, 2, 5, len(NOTES)])
async def test_a_record_is_the_same_whenever_it_is_read_and_the_store_has_it_as_read(make_journal, read_after):
    """The journal's record carries every note, read between notes or not, and what a reader got
    stays as it was; a shared store keeps the record as noted when the stream begins and as it
    ended (what every worker's journal shows)."""
    journal = make_journal()
    entry = arrived(journal)
    reference = by_copies(Journal())
    held = None
    for n, note in enumerate(NOTES):
        if n == read_after:
            held, held_json = entry.record, entry.record.to_json()
        note(entry)
        if n == 1:  # as the server keeps it: with its selection noted, when the stream begins
            await journal.keep(entry)
            (begun,) = await journal.records()
            assert begun.to_json() == entry.record.to_json()
            assert (begun.scenario, begun.dialect, begun.endpoint, begun.outcome) == (
                "s",
                "openai-chat",
                "/v1/chat/completions",
                None,
            )
    entry.finish(200, Outcome.COMPLETED, 5, 5)
    if held is not None:  # (read before it was kept, it got its id in place, as it always has)
        assert {**held.to_json(), "id": 0} == {**held_json, "id": 0}, "a record read stays as it was read"
    final = entry.record
    assert untimed(final) == {**untimed(reference), "id": final.id}
    assert final.tools == ToolTrail().handed_out((ToolCall("call_1", "get_weather"),))
    assert final.headers == {"x-api-key": "sk-...1234"}
    (stored,) = await journal.settled(timeout_s=10)
    assert stored.to_json() == final.to_json()


async def test_snapshots_do_not_change_the_journal(make_journal):
    journal = make_journal()
    await opened(journal, method="GET", path="/", query=[("a", "1")], headers=[(b"h", b"v")], body=None)
    (snapshot,) = await journal.records()
    snapshot.headers["h"] = "changed"
    with pytest.raises(AttributeError):
        snapshot.status = 500
    assert (await journal.records())[0].headers == {"h": "v"}


def test_journal_size_flag_reaches_the_settings(monkeypatch):
    from click.testing import CliRunner

    from mock_server import cli

    seen = []

    def run_foreground(app, settings, sock, on_ready):
        seen.append(settings)
        sock.close()

    monkeypatch.setattr(cli, "run_foreground", run_foreground)
    result = CliRunner().invoke(cli.main, ["serve", "--port", "0", "--journal-size", "5"])
    assert result.exit_code == 0, result.output
    assert seen[0].journal_size == 5
    refused = CliRunner().invoke(cli.main, ["serve", "--port", "0", "--journal-size", "0"])
    assert refused.exit_code == 2
    assert "--journal-size" in refused.output


def test_keepalive_pings_and_the_retry_field_are_not_counted_as_events(server):
    name = server.add_scenario(reply="a b", first_chunk_ms=200, keepalive_ms=40, retry_ms=700)
    response = fetch(f"{server.url}/completions?messages=hi&scenario={name}")
    record = record_of(server, response)
    assert response.events.count(": ping") >= 2
    assert response.text.startswith("retry: 700\n: ping\n\n")
    assert record.events_sent == len(response.data)


@pytest.mark.parametrize(
    ("query", "facts"),
    [
        ("scenario=paced", {"ending": "done", "ids": False, "retry_ms": None, "retry_after": None}),
        ("scenario=paced&fault=no_done", {"ending": "no_done"}),
        ("scenario=paced&fault=drop@3", {"ending": "drop"}),
        ("scenario=paced&fault=reset@3", {"ending": "reset"}),
        ("scenario=paced&fault=close@3", {"ending": "close"}),
        ("scenario=paced&fault=error@3", {"ending": "error"}),
        ("scenario=mid-stream-drop", {"ending": "drop", "ids": True, "retry_ms": 1000, "last_id_sent": 4}),
        ("scenario=rate-limited", {"ending": None, "retry_after": "2", "status": 429}),
        ("scenario=no-such-scenario", {"ending": None, "retry_after": None, "status": 404}),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_record_notes_how_the_stream_ends_and_what_the_client_was_told(server, query, facts):
    record = record_of(server, fetch(f"{server.url}/completions?messages=hi&{query}"))
    assert {name: getattr(record, name) for name in facts} == facts


def test_last_id_sent_is_the_id_of_the_last_event_written_also_on_resume(server):
    full = record_of(server, fetch(f"{server.url}/completions?messages=hi&scenario=resumable-paced"))
    resumed = fetch(f"{server.url}/completions?messages=hi&scenario=resumable-paced", headers={"Last-Event-ID": "3"})
    assert full.last_id_sent == full.events_sent
    assert record_of(server, resumed).last_id_sent == full.last_id_sent
    assert resumed.events[0].startswith("id: 4\n")


def test_stall_and_close_moments_follow_the_stream_schedule(server):
    # paced: a chunk every 20 ms; `@3` is the moment chunk 3 is due, 60 ms into the stream.
    stalled = record_of(server, fetch(f"{server.url}/completions?messages=hi&scenario=paced&fault=stall@3:100"))
    assert stalled.stall_ms == 100
    assert stalled.stall_at_ms is not None
    assert 60 <= stalled.stall_at_ms < 1000
    forever = record_of(server, fetch(f"{server.url}/completions?messages=hi&fault=stall@2", read_for=0.3))
    assert (forever.stall_at_ms is not None, forever.stall_ms, forever.ending) == (True, None, "stall")
    closed = record_of(server, fetch(f"{server.url}/completions?messages=hi&scenario=paced&fault=close@5"))
    assert closed.close_at_ms is not None
    assert 100 <= closed.close_at_ms < 1000
    assert record_of(server, fetch(f"{server.url}/completions?messages=hi&scenario=paced")).close_at_ms is None


def test_record_keeps_the_scenario_thresholds_or_the_defaults(server):
    name = server.add_scenario(reply="hi", thresholds={"grace_ms": 250, "max_attempts": 2})
    chosen = record_of(server, fetch(f"{server.url}/completions?messages=hi&scenario={name}"))
    unknown = record_of(server, fetch(f"{server.url}/completions?messages=hi&scenario=no-such-scenario"))
    assert (chosen.thresholds.grace_ms, chosen.thresholds.max_attempts, chosen.thresholds.patience_ms) == (
        250,
        2,
        30_000,
    )
    assert chosen.to_json()["thresholds"] == {
        "grace_ms": 250,
        "patience_ms": 30_000,
        "close_grace_ms": 1000,
        "max_attempts": 2,
    }
    assert unknown.thresholds == Thresholds()


async def test_a_journal_copies_headers_in_linear_time():
    headers = [(f"x-h{i}".encode(), b"v") for i in range(100_000)]
    began = time.perf_counter()
    entry = await opened(Journal(), method="GET", path="/", query=[], headers=headers, body=None)
    assert time.perf_counter() - began < 2  # a copy through Starlette's Headers took minutes
    assert len(entry.record.headers) == 100_000


async def test_a_repeated_header_keeps_its_first_value_as_starlette_reads_it():
    entry = await opened(Journal(), method="GET", path="/", query=[], headers=[(b"A", b"1"), (b"a", b"2")], body=None)
    assert entry.record.headers == {"a": "1"}


async def test_the_journal_keeps_no_more_than_its_bytes_forgetting_the_oldest(make_journal):
    journal = make_journal(max_bytes=3 * (3000 + 1024))  # three records of 3,000 bytes, with their overhead
    for _ in range(10):
        await opened(journal, method="POST", path="/", query=[], headers=[], body="x" * 3000, body_bytes=3000)
    assert [r.id for r in await journal.records()] == [8, 9, 10]
    huge = await opened(journal, method="POST", path="/", query=[], headers=[], body="x", body_bytes=50_000)
    assert [r.id for r in await journal.records()] == [huge.id]  # the newest stays, however large


def test_a_server_journal_is_bounded_in_bytes(make_server):
    server = make_server(journal_max_bytes=100_000)
    prompt = "word " * 8_000  # 40 kB
    for _ in range(5):
        fetch(server.url + "/v1/chat/completions?chunk_ms=0", method="POST", body={"messages": prompt, "stream": False})
    assert [r.id for r in server.requests] == [4, 5]


async def test_since_names_an_id_of_this_instance_or_is_refused(make_journal):
    journal = make_journal()
    for _ in range(3):
        await opened(journal, method="GET", path="/", query=[], headers=[], body=None)
    assert [r.id for r in await journal.records(Since.parse("1"))] == [2, 3]
    assert [r.id for r in await journal.records(Since.parse(f"{journal.instance}:2"))] == [3]
    assert await journal.records(3) == []
    with pytest.raises(RestartedError, match=r"from server instance abc123, but this is instance"):
        await journal.records(Since.parse("abc123:1"))
    with pytest.raises(RestartedError, match=r"has given ids up to 3 only"):
        await journal.records(4)
    assert Journal().instance != journal.instance


@pytest.mark.parametrize("text", ["", "abc", "-1", "1.5", ":3", "²", "1" * 19])
def test_since_that_is_no_id_says_what_is_accepted(text):
    with pytest.raises(ValueError, match="INSTANCE:ID"):
        Since.parse(text)


def test_a_record_keeps_its_conversation_and_the_tool_calls_handed_out_once_the_head_was_sent(make_server):
    server = make_server()
    tools = server.add_scenario(reply="", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "rain"},
        {"role": "assistant", "tool_calls": [{"id": "call_b", "type": "function", "function": {"name": "f"}}]},
    ]
    sent = {"model": tools, "messages": history}
    answered = fetch(
        server.url + "/v1/chat/completions", method="POST", headers={"X-Mock-Conversation": "c7"}, body=sent
    )
    record = record_of(server, answered)
    assert record.conversation == "c7"
    assert record.tools is not None
    ((call_id, name),) = [(call.id, call.name) for call in record.tools.calls]
    assert (call_id.startswith("call_"), name) == (True, "get_weather")
    assert (record.tools.history, record.tools.unanswered, record.tools.results) == (
        ("call_a", "call_b"),
        ("call_b",),
        (),
    )
    assert list(record.to_json()["tools"]["calls"]) == [{"id": call_id, "name": "get_weather"}]

    with pytest.raises(ConnectionError):
        fetch(server.url + "/v1/chat/completions", method="POST", headers={"X-Mock-Fault": "reset@head"}, body=sent)
    (cut_record,) = server.records()[-1:]
    assert cut_record.tools is not None
    assert cut_record.tools.calls == ()  # the client got no answer, so no call


def test_a_paced_stream_keeps_when_each_write_was_due_and_written(make_server):
    server = make_server()
    response = fetch(f"{server.url}/completions?messages=one+two+three&chunk_ms=40")
    timing = record_of(server, response).events_timing
    assert timing is not None
    # "You said: one two three": the role with the first word, then a write each 40 ms
    assert timing.due_ms == tuple(40.0 * i for i in range(len(timing.due_ms)))
    assert len(timing.due_ms) >= 5
    assert sum(timing.events) == record_of(server, response).events_sent
    assert all(0 <= written - due < 1000 for due, written in zip(timing.due_ms, timing.written_ms, strict=True))
    assert timing.more == 0
    (shown,) = [
        r for r in httpx.get(f"{server.url}/_mock/requests").json() if r["id"] == record_of(server, response).id
    ]
    assert shown["events_timing"]["written_ms"] == list(timing.written_ms)


def test_past_the_bound_the_writes_are_summed_up(make_server):
    from mock_server.wire.outcome import TIMED_WRITES

    server = make_server()
    words = "+".join(f"w{i}" for i in range(TIMED_WRITES + 40))
    response = fetch(f"{server.url}/completions?messages={words}&chunk_ms=0.01")
    timing = record_of(server, response).events_timing
    assert timing is not None
    assert len(timing.due_ms) == TIMED_WRITES
    assert timing.more > 0
    assert timing.late_ms >= timing.more_late_ms >= 0


def test_a_request_answered_before_any_event_has_no_timing(server):
    response = fetch(f"{server.url}/completions?messages=hi&fault=status:429")
    assert record_of(server, response).events_timing is None


@pytest.fixture
def state_spec(every_state: str) -> str:
    """The journal tests that start a server run against each state store."""
    return every_state


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def make_journal(request, tmp_path):
    """A factory of journals kept in each store in turn (`size` and `max_bytes` as the server's flags)."""
    state = state_of_kind(request.param, tmp_path, request)
    made = []

    def make(size: int = 1000, max_bytes: int = 64 << 20) -> Journal:
        store = open_store(state, size, max_bytes)
        made.append(store)
        return Journal(store if store is not None else MemoryLog(size, max_bytes))

    yield make
    for store in made:
        if store is not None:
            await store.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
