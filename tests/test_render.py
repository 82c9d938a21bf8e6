"""Rendering timelines into wire actions: ids, resume, splits, coalescing, and what the stream tells
the journal (its schedule, the last id played)."""

from __future__ import annotations

import gc
import itertools
import weakref
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sse_starlette.event import ServerSentEvent

from mock_server.dialects import DIALECTS, StreamInfo
from mock_server.http.routes import MODEL_ROUTES
from mock_server.http.server import MockServer
from mock_server.scenarios import steps
from mock_server.timeline.compile import Timeline, Usage
from mock_server.wire import frames
from mock_server.wire.actions import Action, Drop, Schedule, Wait, Write
from mock_server.wire.player import Player, Stop
from mock_server.wire.rendering import COALESCE_BYTES, StreamCache, StreamRenderer, render_stream, split_points
from tests.wire import fetch

INFO = StreamInfo(key="0" * 64, created=1700000000, model="m", usage=Usage(1, 2))


def chat() -> StreamRenderer:
    return DIALECTS["openai-chat"].stream(INFO)


def timeline(*timeline_steps: steps.Step, ids: bool = False, end_marker: bool = True) -> Timeline:
    return Timeline("t", steps=timeline_steps, ids=ids, end_marker=end_marker)


def render(script: Timeline, renderer: StreamRenderer, resume_after: int | None = None) -> tuple[Action, ...]:
    return render_stream(script, renderer, resume_after).actions


def written(ops: tuple[object, ...]) -> bytes:
    return b"".join(op.data for op in ops if isinstance(op, Write))


def test_split_cuts_inside_the_first_multibyte_character() -> None:
    data = 'data: {"content":"好"}\n\n'.encode()
    pieces = split_points(data, 3)
    assert len(pieces) == 3
    assert b"".join(pieces) == data
    lead = data.index("好".encode())
    assert any(len(b"".join(pieces[: i + 1])) == lead + 1 for i in range(2))


def test_split_without_multibyte_spreads_cuts_evenly() -> None:
    pieces = split_points(b"x" * 90, 3)
    assert [len(p) for p in pieces] == [30, 30, 30]


def test_ids_number_every_dialect_event_from_one() -> None:
    ops = render(timeline(steps.Text("a"), steps.Text("b"), steps.Finish(), ids=True), chat())
    body = written(ops).decode()
    assert [line for line in body.split("\n") if line.startswith("id:")] == [
        "id: 1",
        "id: 2",
        "id: 3",
        "id: 4",
        "id: 5",
    ]


def test_resume_skips_what_the_client_already_has() -> None:
    script = timeline(steps.Text("a"), steps.Sleep(10), steps.Text("b"), steps.Finish(), ids=True)
    full = render(script, chat())
    resumed = render(script, chat(), resume_after=2)
    assert b'"content":"a"' in written(full)
    assert b'"content":"a"' not in written(resumed)
    assert written(resumed).startswith(b"id: 3\n")
    assert isinstance(resumed[0], Wait)  # the pacing before the next event is kept
    assert not render_stream(script, chat(), resume_after=2).nothing_left
    assert render_stream(script, chat(), resume_after=5).nothing_left


def test_drop_ends_rendering_without_end_marker() -> None:
    ops = render(timeline(steps.Text("a"), steps.Drop()), chat())
    assert isinstance(ops[-1], Drop)
    assert b"[DONE]" not in written(ops)


def test_writes_without_a_wait_between_are_coalesced() -> None:
    ops = render(timeline(steps.Text("a"), steps.Text("b"), steps.Finish()), chat())
    assert len(ops) == 1
    assert isinstance(ops[0], Write)
    assert ops[0].events == 5


@given(
    data=st.one_of(st.none(), st.text()),
    event=st.one_of(st.none(), st.text()),
    event_id=st.one_of(st.none(), st.text()),
    retry=st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
)
def test_encoding_is_sse_starlettes_byte_for_byte(
    data: str | None, event: str | None, event_id: str | None, retry: int | None
) -> None:
    expected = ServerSentEvent(data, event=event, id=event_id, retry=retry, sep="\n").encode()
    assert frames.encode(frames.Event(data, event=event, id=event_id, retry=retry)) == expected


def test_stream_cache_returns_the_same_stream_and_stays_bounded() -> None:
    cache = StreamCache(max_bytes=2000)
    script = timeline(steps.Text("a"), steps.Finish())
    first = cache.stream(script, chat, key="chat")
    assert cache.stream(script, chat, key="chat") is first
    assert first == render_stream(script, chat())
    for n in range(20):
        cache.stream(timeline(steps.Text(str(n)), steps.Finish()), chat, key="chat")
    assert cache.stream(script, chat, key="chat") is not first  # evicted, rendered again
    assert 0 < cache.bytes <= 2000


def test_stream_cache_keeps_no_timeline_alive() -> None:
    cache = StreamCache()
    script = timeline(steps.Text("a"), steps.Finish())
    cache.stream(script, chat, key="chat")
    gone = weakref.ref(script)
    del script
    gc.collect()
    assert gone() is None


def test_schedule_finds_the_close_event_and_the_first_stall_from_the_waits() -> None:
    script = timeline(
        steps.Text("a"),
        steps.Sleep(100),
        steps.Text("b"),
        steps.Split(2, 10),  # the split's own wait comes before the close event's last piece
        steps.RawEvent(event="close", data="bye"),
        steps.Sleep(50),
        steps.Stall(200),
        steps.Text("c"),
        steps.Stall(),
        end_marker=False,
    )
    played = render_stream(script, chat()).schedule
    assert (played.close_at_s, played.stall_at_s, played.stall_s) == (0.11, 0.16, 0.2)
    assert played.end_s == pytest.approx(0.36)  # the waits to the endless stall
    forever = timeline(steps.Text("a"), steps.Sleep(30), steps.Stall())
    assert render_stream(forever, chat()).schedule == Schedule(stall_at_s=0.03, end_s=0.03)
    cut = timeline(steps.Text("a"), steps.Drop(), steps.Stall())
    assert render_stream(cut, chat()).schedule == Schedule()


def last_id_played(actions: tuple[Action, ...], connection_open_for: int) -> int | None:
    """The id the player reports once the connection has taken `connection_open_for` writes."""
    writes = itertools.count()
    seconds = itertools.count()  # every look at the clock is a second later: no wait holds the player
    player = Player(actions, write=lambda data: next(writes) < connection_open_for, clock=lambda: float(next(seconds)))
    while player.resume() is Stop.SLEEP:
        pass
    return player.last_id


def test_the_player_reports_the_id_of_the_last_event_the_connection_took() -> None:
    script = timeline(steps.Text("a"), steps.Sleep(10), steps.Text("b"), steps.Finish(), ids=True)
    actions = render(script, chat())  # the role chunk and "a" (ids 1, 2), a wait, then "b", the finish and [DONE]
    assert [last_id_played(actions, n) for n in (0, 1, 2)] == [None, 2, 5]
    assert last_id_played(render(script, chat(), resume_after=2), 5) == 5
    assert last_id_played(render(timeline(steps.Text("a")), chat()), 5) is None


def test_a_resumed_stream_opens_with_its_preamble_again() -> None:
    script = timeline(
        steps.RawEvent(retry=1500), steps.Comment("hello"), steps.Text("a"), steps.Sleep(5), steps.Text("b"), ids=True
    )
    resumed = written(render(script, chat(), resume_after=2)).decode()
    assert resumed.startswith("retry: 1500\n: hello\n\nid: 3\n")


def test_a_stream_without_waits_leaves_in_coalesced_writes_on_a_new_server_as_later(
    make_server: Callable[..., MockServer],
) -> None:
    """The batched path cannot be missed: the first unpaced stream of a server just started (nothing
    cached, nothing warm) is written as few, large writes as the streams after it (each write of
    a chunked body is a chunk of its own)."""
    server = make_server()
    name = server.add_scenario(reply=" ".join(f"token{i}" for i in range(20_000)))
    url = server.url + f"/completions?scenario={name}&messages=x"
    writes = []
    for _ in range(3):
        response = fetch(url, timeout=30)
        assert response.status == 200
        assert response.body.count(b"\n\n") >= 20_000
        writes.append(len(response.chunks))
    size = len(response.body)
    assert writes[0] == writes[1] == writes[2] <= size // COALESCE_BYTES + 3


@pytest.mark.parametrize("name", ["messages", "bedrock_invoke_with_response_stream", "chat_completions"])
def test_a_stream_is_rendered_anew_in_a_later_second_only_for_a_dialect_that_writes_the_time(
    make_server: Callable[..., MockServer], name: str
) -> None:
    """The rendered stream is kept per response time only where the frames carry it (OpenAI's
    `created`): Anthropic's and Bedrock's streams are rendered once, whatever the second."""
    now = 1_700_000_000.0
    server = make_server(wall_clock=lambda: now)
    assert server.app is not None
    scenario = server.add_scenario(reply="one two three")
    route = next(route for route in MODEL_ROUTES if route.name == name)
    url = server.url + route.example_target(scenario, True)
    kept = []
    for _ in range(2):
        response = fetch(url, method=route.method, body=route.example(scenario, True, "x"))
        assert response.status == 200
        kept.append(server.app.state.caches.streams.bytes)
        now += 5
    assert (kept[1] > kept[0]) is route.dialect.dated
