"""Framings write a stream's events as each wire wants them; SSE's bytes are pinned by the goldens."""

from __future__ import annotations

import itertools
import json

import pytest
from sse_starlette.event import ServerSentEvent

from mock_server.dialects import DIALECTS, StreamInfo
from mock_server.scenarios import steps
from mock_server.timeline.compile import Timeline, Usage
from mock_server.wire.actions import Write
from mock_server.wire.frames import LINE_END, Event, encode, encode_comment
from mock_server.wire.framing import GOOGLE_JSON_ARRAY, GOOGLE_SSE, JSON_ARRAY, NDJSON, SSE, Framing, laid_out
from mock_server.wire.rendering import render_stream

INFO = StreamInfo(key="0" * 64, created=0, model="m", usage=Usage(1, 1))


def events(*data: str) -> list[Event]:
    return [Event(item) for item in data]


def written(framing: Framing, *data: str) -> bytes:
    out = b"".join(framing.event(event, index) for index, event in enumerate(events(*data)))
    return out + framing.close(len(data))


def test_ndjson_is_one_value_a_line() -> None:
    body = written(NDJSON, '{"a":1}', '{"b":"ü"}')
    assert body == '{"a":1}\n{"b":"ü"}\n'.encode()
    assert [json.loads(line) for line in body.splitlines()] == [{"a": 1}, {"b": "ü"}]


def test_a_json_array_is_written_an_element_at_a_time_and_parses_whole() -> None:
    body = written(JSON_ARRAY, '{"a":1}', '{"b":2}')
    assert body == b'[{"a":1},\r\n{"b":2}]'
    assert json.loads(body) == [{"a": 1}, {"b": 2}]
    assert json.loads(written(JSON_ARRAY)) == []


def test_sse_is_the_events_with_their_blank_lines() -> None:
    assert written(SSE, "x", "y") == b"data: x\n\ndata: y\n\n"
    assert [framing.sse for framing in (SSE, NDJSON, JSON_ARRAY)] == [True, False, False]


def test_sse_only_steps_write_nothing_in_ndjson_and_a_raw_event_is_its_data() -> None:
    timeline = Timeline(
        "t",
        steps=(
            steps.RawEvent(retry=1000),
            steps.Comment("still here"),
            steps.RawEvent(event="note", data='{"note":1}', id="7"),
            steps.Text("hi"),
            steps.Finish(),
        ),
        ids=True,
    )
    stream = render_stream(timeline, DIALECTS["ollama-chat"].stream(INFO), framing=NDJSON)
    body = b"".join(action.data for action in stream.actions if isinstance(action, Write))
    parsed = [json.loads(line) for line in body.splitlines()]
    assert parsed[0] == {"note": 1}
    assert [line.get("message", {}).get("content") for line in parsed[1:]] == ["hi", ""]
    assert sum(action.events for action in stream.actions if isinstance(action, Write)) == 3


def test_google_sse_ends_lines_with_crlf_and_writes_an_error_bare() -> None:
    error = Event('{\n  "error": {}\n}', event="error")
    body = GOOGLE_SSE.event(Event("x", id="1"), 0) + GOOGLE_SSE.event(error, 1) + GOOGLE_SSE.close(2)
    assert body == b'id: 1\r\ndata: x\r\n\r\n{\n  "error": {}\n}\n'


def test_googles_json_array_lays_each_element_out_and_parses_whole() -> None:
    body = written(GOOGLE_JSON_ARRAY, '{"a": [1,{}],"b": "<,:{"}', '{"c": []}')
    assert body == b'[{\n  "a": [\n    1,\n    {}\n  ],\n  "b": "<,:{"\n}\n,\r\n{\n  "c": []\n}\n]'
    assert json.loads(body) == [{"a": [1, {}], "b": "<,:{"}, {"c": []}]


def test_laying_out_is_json_dumps_indent_even_for_text_cut_short() -> None:
    value: dict[str, object] = {"s": 'a "quoted", {braced} \\ string', "n": [1.5, None, True, []], "o": {"p": {}}}
    assert laid_out(json.dumps(value, separators=(",", ":")), 2) == json.dumps(value, indent=2)
    assert laid_out(json.dumps(value, indent=4), 2) == json.dumps(value, indent=2)
    assert laid_out('{"parts": [{"text": "ab', 2) == '{\n  "parts": [\n    {\n      "text": "ab'


_AWKWARD = (None, "", "a", "a\nb", "a\r\nb\rc", "\n", "x\r", "é ü\n中", "data: x\n\n")


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_events_are_written_byte_for_byte_as_sse_starlette_writes_them(line_end: str) -> None:
    for data, name, event_id, retry in itertools.product(_AWKWARD, _AWKWARD, _AWKWARD, (None, 0, 1500)):
        expected = ServerSentEvent(data, event=name, id=event_id, retry=retry, sep=line_end).encode()
        assert encode(Event(data, event=name, id=event_id, retry=retry), line_end) == expected


def test_comments_are_written_byte_for_byte_as_sse_starlette_writes_them() -> None:
    for text in (*_AWKWARD[1:], "keep-alive", "ping\r\nx"):
        assert encode_comment(text) == ServerSentEvent(comment=text, sep=LINE_END).encode()
