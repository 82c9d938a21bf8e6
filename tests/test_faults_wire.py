"""Every fault kind, proven on the wire with a raw socket: no HTTP library between test and bytes."""

from __future__ import annotations

import itertools
import json
import socket
import time

import pytest

from mock_server.http.server import MockServer
from mock_server.wire.player import TIMER_SLACK_S
from tests.wire import Ending, fetch

PROMPT = "alpha beta gamma delta epsilon"


def completions(server: MockServer, fault: str = "", scenario: str = "paced", **query: str) -> str:
    params = {"messages": PROMPT, "scenario": scenario, **query}
    if fault:
        params["fault"] = fault
    return server.url + "/completions?" + "&".join(f"{k}={v.replace(' ', '+')}" for k, v in params.items())


def test_complete_stream_ends_with_terminating_chunk_and_done(server: MockServer) -> None:
    response = fetch(completions(server))
    assert response.status == 200
    assert response.ending is Ending.COMPLETE
    assert response.data[-1] == "[DONE]"
    assert response.content() == "one two three four five six seven eight nine ten"


def test_drop_leaves_chunked_body_unterminated(server: MockServer) -> None:
    response = fetch(completions(server, "drop@3"))
    assert response.ending is Ending.EOF
    assert not response.reads[-1].data.endswith(b"0\r\n\r\n")
    assert response.content() == "one two three"  # role chunk + three content chunks, then nothing
    assert len(response.data) == 4


def test_drop_at_zero_sends_headers_and_no_event(server: MockServer) -> None:
    response = fetch(completions(server, "drop@0"))
    assert response.status == 200
    assert response.ending is Ending.EOF
    assert response.data == []


def test_reset_makes_the_read_fail_with_econnreset(server: MockServer) -> None:
    response = fetch(completions(server, "reset@3"))
    assert response.ending is Ending.RESET
    assert response.content() == "one two three"


def test_close_sends_an_event_named_close_then_ends_cleanly(server: MockServer) -> None:
    response = fetch(completions(server, "close@2"))
    assert response.ending is Ending.COMPLETE
    assert response.events[-1] == 'event: close\ndata: {"reason": "upstream closed"}'
    assert "[DONE]" not in response.data
    assert response.content() == "one two"


def test_close_carries_the_given_data(server: MockServer) -> None:
    response = fetch(completions(server, "close@1:bye"))
    assert response.events[-1] == "event: close\ndata: bye"


def test_close_with_ms_holds_the_connection_open_silently_then_ends_cleanly(server: MockServer) -> None:
    name = server.add_scenario(reply="one two three", faults=[{"kind": "close", "at": 2, "ms": 400}])
    response = fetch(completions(server, scenario=name))
    assert response.ending is Ending.COMPLETE
    assert response.events[-1].startswith("event: close\n")
    close_read = next(at for at, chunk in response.chunks if b"event: close" in chunk)
    assert close_read < response.reads[-1].at
    assert response.reads[-1].at >= 0.4 - TIMER_SLACK_S, "the body ends only after the hold"
    assert response.reads[-1].data.endswith(b"0\r\n\r\n")


def test_error_sends_the_openai_error_event_then_ends(server: MockServer) -> None:
    response = fetch(completions(server, "error@2:overloaded"))
    assert response.ending is Ending.COMPLETE
    last = json.loads(response.data[-1])
    assert last == {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}
    assert response.content() == "one two"


def test_stall_with_ms_pauses_then_goes_on(server: MockServer) -> None:
    response = fetch(completions(server, "stall@2:600"))
    assert response.ending is Ending.COMPLETE
    assert response.content() == "one two three four five six seven eight nine ten"
    assert response.arrived(b'" two"') < response.arrived(b'" three"')
    assert response.arrived(b'" three"') >= 0.6 - TIMER_SLACK_S
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(response.chunks)]
    assert sorted(gaps)[-2] < 0.3  # only one long gap


@pytest.mark.slow
def test_stall_without_ms_holds_the_connection_open(server: MockServer) -> None:
    response = fetch(completions(server, "stall@2"), read_for=1.0)
    assert response.ending is Ending.TIMEOUT
    assert response.content() == "one two"


def test_malformed_sends_a_data_line_that_is_not_json(server: MockServer) -> None:
    response = fetch(completions(server, "malformed@2"))
    assert response.ending is Ending.COMPLETE
    bad = [d for d in response.data if d != "[DONE]" and not _is_json(d)]
    assert len(bad) == 1
    assert response.data.index(bad[0]) == 3  # role chunk, two content chunks, then the bad line


def test_split_writes_the_next_event_in_pieces_cutting_a_utf8_character(server: MockServer) -> None:
    url = server.url + "/completions?messages=x&scenario=cjk&fault=split@1:3"
    response = fetch(url)
    assert response.ending is Ending.COMPLETE
    first = next(i for i, (_, data) in enumerate(response.chunks) if not data.endswith(b"\n\n"))
    pieces = [data for _, data in response.chunks[first : first + 3]]
    assert not pieces[0].endswith(b"\n\n")
    assert not pieces[1].endswith(b"\n\n")
    assert pieces[2].endswith(b"\n\n")  # three writes make one event
    assert '"好"' in b"".join(pieces).decode("utf-8")
    assert any(not _decodes(piece) for piece in pieces)  # a cut falls inside a character
    assert response.content() == "你好，世界！"


def test_split_pieces_arrive_apart(server: MockServer) -> None:
    response = fetch(completions(server, "split@1:3"))
    times = [at for at, data in response.chunks]
    split_start = next(i for i, (_, data) in enumerate(response.chunks) if not data.endswith(b"\n\n"))
    assert times[split_start] < times[split_start + 2]
    assert times[split_start + 2] >= 0.06 - TIMER_SLACK_S  # the event is due at 20 ms, then 2 pauses of 20 ms
    assert response.content() == "one two three four five six seven eight nine ten"


def test_delay_adds_time_before_the_chunk(server: MockServer) -> None:
    response = fetch(completions(server, "delay@2:500"))
    assert response.arrived(b'" two"') < response.arrived(b'" three"')
    assert response.arrived(b'" three"') >= 0.5 - TIMER_SLACK_S
    assert response.content() == "one two three four five six seven eight nine ten"


def test_status_answers_with_an_error_body_before_any_stream_byte(server: MockServer) -> None:
    response = fetch(completions(server, "status:429"))
    assert response.status == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json"
    body = json.loads(response.body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 500, 503])
def test_status_fault_uses_the_given_status(server: MockServer, status: int) -> None:
    response = fetch(completions(server, f"status:{status}"))
    assert response.status == status
    assert "data:" not in response.body.decode()
    assert json.loads(response.body)["error"]["message"]


def test_no_done_ends_cleanly_without_done(server: MockServer) -> None:
    response = fetch(completions(server, "no_done"))
    assert response.ending is Ending.COMPLETE
    assert "[DONE]" not in response.data
    assert json.loads(response.data[-1])["choices"][0]["finish_reason"] == "stop"


def test_content_type_override_is_sent(server: MockServer) -> None:
    response = fetch(server.url + "/completions?messages=hi&scenario=wrong-content-type")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.ending is Ending.COMPLETE


def test_keepalive_sends_comment_pings_while_waiting(server: MockServer) -> None:
    response = fetch(server.url + "/completions?messages=hi&scenario=pinged")
    pings = [data for _, data in response.chunks if data == b": ping\n\n"]
    assert len(pings) == 2  # 250 ms of waiting, a ping every 100 ms
    assert response.chunks[0][1] == b": ping\n\n"


def test_faults_combine(server: MockServer) -> None:
    response = fetch(completions(server, "malformed@1,close@3"))
    assert response.events[-1].startswith("event: close")
    assert sum(1 for d in response.data if not _is_json(d)) == 1


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_times_fails_the_first_attempt_and_lets_the_retry_through(server: MockServer) -> None:
    url = server.url + "/completions?messages=x&scenario=fails-once"
    first, second = fetch(url), fetch(url)
    assert first.status == 503
    assert second.status == 200
    assert second.content() == "second time lucky"


def test_once_drop_does_not_fire_on_a_resumed_request(server: MockServer) -> None:
    url = server.url + "/completions?messages=x&scenario=mid-stream-drop&chunk_ms=0"
    first = fetch(url)
    assert first.ending is Ending.EOF
    last_id = [line for line in first.text.split("\n") if line.startswith("id: ")][-1][4:]
    resumed = fetch(url, headers={"Last-Event-ID": last_id})
    assert resumed.ending is Ending.COMPLETE
    assert first.content() + resumed.content() == (
        "The quick brown fox jumps over the lazy dog, and then jumps back again."
    )


@pytest.mark.slow
def test_a_client_that_reads_slowly_gets_every_byte(server: MockServer) -> None:
    """Writes wait for a lagging client (flow control) and nothing is lost or reordered."""
    url = server.url + "/completions?messages=x&scenario=long-reply&chunk_ms=0"
    expected = fetch(url).body
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(
            b"GET /completions?messages=x&scenario=long-reply&chunk_ms=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Connection: close\r\n\r\n"
        )
        time.sleep(0.5)  # the server fills the socket buffers and must wait
        received = b""
        while chunk := sock.recv(1024):
            received += chunk
    _, _, body = received.partition(b"\r\n\r\n")
    assert body.endswith(b"0\r\n\r\n")
    decoded = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        decoded, body = decoded + rest[:size], rest[size + 2 :]
    assert decoded == expected
