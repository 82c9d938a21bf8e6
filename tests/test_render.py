"""Rendering timelines into wire ops: ids, resume, splits, coalescing."""

from __future__ import annotations

import gc
import weakref

from hypothesis import given
from hypothesis import strategies as st
from sse_starlette.event import ServerSentEvent

from mock_server.dialects import DIALECTS, Dialect, StreamInfo
from mock_server.scenarios import steps
from mock_server.timeline.compile import Timeline, Usage
from mock_server.wire import frames
from mock_server.wire.actions import Drop, Wait, Write
from mock_server.wire.rendering import RenderCache, Schedule, last_id_sent, nothing_left, render, schedule, split_points

INFO = StreamInfo(key="0" * 64, created=1700000000, model="m", usage=Usage(1, 2))


def chat() -> Dialect:
    return DIALECTS["openai-chat"].stream(INFO)


def timeline(*timeline_steps: steps.Step, ids: bool = False, end_marker: bool = True) -> Timeline:
    return Timeline("t", steps=timeline_steps, ids=ids, end_marker=end_marker)


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
    assert not nothing_left(resumed)
    assert nothing_left(render(script, chat(), resume_after=5))


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


def test_render_cache_returns_the_same_ops_and_stays_bounded() -> None:
    cache = RenderCache(max_bytes=2000)
    spec = DIALECTS["openai-chat"]
    script = timeline(steps.Text("a"), steps.Finish())
    first = cache.render(script, spec, INFO)
    assert cache.render(script, spec, INFO) is first
    assert first == render(script, spec.stream(INFO))
    for n in range(20):
        cache.render(timeline(steps.Text(str(n)), steps.Finish()), spec, INFO)
    assert cache.render(script, spec, INFO) is not first  # evicted, rendered again
    assert 0 < cache.bytes <= 2000


def test_render_cache_keeps_no_timeline_alive() -> None:
    cache = RenderCache()
    script = timeline(steps.Text("a"), steps.Finish())
    cache.render(script, DIALECTS["openai-chat"], INFO)
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
    assert schedule(render(script, chat())) == Schedule(close_at_s=0.11, stall_at_s=0.16, stall_s=0.2)
    forever = timeline(steps.Text("a"), steps.Sleep(30), steps.Stall())
    assert schedule(render(forever, chat())) == Schedule(stall_at_s=0.03)
    cut = timeline(steps.Text("a"), steps.Drop(), steps.Stall())
    assert schedule(render(cut, chat())) == Schedule()


def test_last_id_sent_counts_whole_writes_up_to_the_events_sent() -> None:
    script = timeline(steps.Text("a"), steps.Sleep(10), steps.Text("b"), steps.Finish(), ids=True)
    ops = render(script, chat())  # the role chunk and "a" (ids 1, 2), then "b", the finish and [DONE]
    assert [last_id_sent(ops, n) for n in (0, 2, 5)] == [None, 2, 5]
    assert last_id_sent(render(script, chat(), resume_after=2), 3) == 5
    assert last_id_sent(render(timeline(steps.Text("a")), chat()), 3) is None
