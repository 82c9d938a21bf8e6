"""Verdicts on real clients: each finding earned by a misbehaving client (httpx, raw sockets), and
not by a well-behaved one (the official SDK, a client that waits, resumes, gives up in time).

The browser's EventSource findings are in tests/browser/test_eventsource_verdict.py.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from httpx_sse import connect_sse
from openai import OpenAI

from mock_server.http.server import MockServer
from mock_server.journal.verdict import Verdict
from tests.conftest import wait_until

QUICK = {"grace_ms": 300, "patience_ms": 400, "close_grace_ms": 200}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def mock(make_server: Callable[..., MockServer]) -> MockServer:
    """A server of the test's own: a journal holding only this test's requests."""
    return make_server()


def codes(verdict: Verdict) -> list[str]:
    return [finding.code for finding in verdict.findings]


def sse(server: MockServer, scenario: str, *, last_event_id: str | None = None) -> Iterator[Any]:
    """The events of one GET /completions stream, read with httpx-sse."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        connect_sse(
            client, "GET", "/completions", params={"messages": "hi", "scenario": scenario}, headers=headers
        ) as source,
    ):
        yield from source.iter_sse()


def chat(server: MockServer, max_retries: int) -> OpenAI:
    return OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=max_retries)


# Retries after HTTP errors


@pytest.mark.slow
def test_retrying_a_429_at_once_ignores_retry_after_and_the_sdk_waits(mock: MockServer) -> None:
    limited = mock.add_scenario(
        reply="hi", headers={"Retry-After": "1"}, faults=[{"kind": "status", "status": 429, "times": 1}]
    )
    for _ in range(2):  # a hand-written retry that does not look at the headers
        response = httpx.get(f"{mock.url}/completions", params={"messages": "hi", "scenario": limited})
    assert response.status_code == 200
    assert codes(mock.verdict()) == ["retry_after_ignored"]

    mock.reset()
    limited = mock.add_scenario(
        reply="hi", headers={"Retry-After": "1"}, faults=[{"kind": "status", "status": 429, "times": 1}]
    )
    with chat(mock, max_retries=2) as client:
        reply = client.chat.completions.create(model=limited, messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "hi"
    assert len(mock.requests) == 2
    assert mock.verdict().findings == ()


def test_retrying_a_401_is_retried_non_retryable_and_the_sdk_does_not(mock: MockServer) -> None:
    for _ in range(3):
        httpx.get(f"{mock.url}/completions", params={"messages": "hi", "scenario": "unauthorized"})
    verdict = mock.verdict()
    assert codes(verdict) == ["retried_non_retryable"]
    assert verdict.findings[0].records == (1, 2, 3)

    mock.reset()
    with chat(mock, max_retries=2) as client, pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="unauthorized", messages=MESSAGES)  # type: ignore[arg-type]
    assert mock.verdict().findings == ()


@pytest.mark.slow
def test_hammering_a_503_is_a_storm_without_backoff_and_the_sdk_backs_off(mock: MockServer) -> None:
    failing = mock.add_scenario(status=503)
    for _ in range(7):
        httpx.get(f"{mock.url}/completions", params={"messages": "hi", "scenario": failing})
        time.sleep(0.1)  # a client retrying every 100 ms, never backing off
    assert codes(mock.verdict()) == ["retry_storm", "no_backoff"]

    mock.reset()
    failing = mock.add_scenario(status=503)
    with chat(mock, max_retries=2) as client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=failing, messages=MESSAGES)  # type: ignore[arg-type]
    assert len(mock.requests) == 3
    assert mock.verdict().findings == ()


# Streams cut short


@pytest.mark.slow
@pytest.mark.parametrize("fault", [{"kind": "no_done"}, {"kind": "drop", "at": 2}], ids=["no_done", "drop"])
def test_a_client_that_keeps_a_cut_stream_is_flagged_and_one_that_asks_again_is_not(
    mock: MockServer, fault: dict[str, Any]
) -> None:
    cut = mock.add_scenario(reply="one two three", faults=[fault], thresholds=QUICK)
    try:
        events = list(sse(mock, cut))
    except httpx.RemoteProtocolError:
        events = []  # the drop: this client shows what it has and moves on
    assert all(event.data != "[DONE]" for event in events)
    at_once = mock.verdict(wait_s=0)
    assert at_once.findings == (), "nothing yet: the client still has the grace to ask again"
    assert [check.code for check in at_once.pending] == ["cut_stream_not_retried"]
    verdict = mock.verdict()  # waits for the grace to pass
    assert codes(verdict) == ["cut_stream_not_retried"]
    assert verdict.findings[0].records == (1,)

    mock.reset()
    once = mock.add_scenario(reply="one two three", faults=[{**fault, "times": 1}], thresholds=QUICK)
    for _ in range(3):  # retries until the end marker arrives
        try:
            if any(event.data == "[DONE]" for event in sse(mock, once)):
                break
        except httpx.RemoteProtocolError:
            continue
    assert len(mock.requests) == 2
    assert mock.verdict().findings == ()


def test_reconnecting_at_once_ignores_retry_and_waiting_for_it_does_not(mock: MockServer) -> None:
    def reconnect(name: str, honour_retry: bool) -> None:
        last_id, retry_ms = None, 0
        for _ in range(3):
            try:
                for event in sse(mock, name, last_event_id=last_id):
                    last_id, retry_ms = event.id or last_id, event.retry or retry_ms
                return
            except httpx.RemoteProtocolError:
                time.sleep(retry_ms / 1000 if honour_retry else 0)

    fields = {
        "reply": "one two three four",
        "ids": True,
        "retry_ms": 500,
        "faults": [{"kind": "drop", "at": 2, "once": True}],
    }
    reconnect(mock.add_scenario(**fields), honour_retry=False)
    verdict = mock.verdict()
    assert codes(verdict) == ["retry_field_ignored"]
    assert verdict.calls == ((1, 2),)

    mock.reset()
    reconnect(mock.add_scenario(**fields), honour_retry=True)
    assert [r.last_event_id for r in mock.requests] == [None, "3"]
    assert mock.verdict().findings == ()


# Silence and close


def stalled_request(server: MockServer, whole: bool) -> httpx.Request:
    """A request for a new scenario that stalls for good: a stream after its first chunk, or a whole
    (non-streaming) chat completion that never comes."""
    name = server.add_scenario(reply="one two three", faults=[{"kind": "stall", "at": 1}], thresholds=QUICK)
    if whole:
        body = {"model": name, "messages": MESSAGES}
        return httpx.Request("POST", f"{server.url}/v1/chat/completions", json=body)
    return httpx.Request("GET", f"{server.url}/completions", params={"messages": "hi", "scenario": name})


@pytest.mark.slow
@pytest.mark.parametrize("whole", [False, True], ids=["stream", "whole"])
def test_waiting_on_a_stall_forever_is_no_read_timeout_and_a_read_timeout_is_not(mock: MockServer, whole: bool) -> None:
    request = stalled_request(mock, whole)
    with socket.create_connection(("127.0.0.1", mock.port)) as sock:
        head = f"{request.method} {request.url.raw_path.decode()} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        body = request.read()
        sock.sendall(f"{head}Content-Length: {len(body)}\r\nContent-Type: application/json\r\n\r\n".encode() + body)
        wait_until(lambda: mock.records(settle_s=0), "the server to have the request")
        # This client waits and waits; the verdict is pending until the patience has run out.
        verdict = mock.verdict(wait_s=5)
        assert codes(verdict) == ["no_read_timeout"]
        assert "and is still waiting" in verdict.findings[0].detail

    mock.reset()
    with httpx.Client(timeout=httpx.Timeout(5, read=0.15)) as client, pytest.raises(httpx.ReadTimeout):
        client.send(stalled_request(mock, whole))
    assert mock.verdict(wait_s=5).findings == ()


def test_keeping_the_connection_after_a_close_event_is_flagged_and_hanging_up_is_not(mock: MockServer) -> None:
    closing = mock.add_scenario(reply="one two three", faults=[{"kind": "close", "at": 2, "ms": 800}], thresholds=QUICK)
    names = [event.event for event in sse(mock, closing)]  # reads on until the server ends the stream
    assert names[-1] == "close"
    verdict = mock.verdict()
    # Neither hung up on the close nor asked again: the server cannot tell whether the user saw an error.
    assert codes(verdict) == ["cut_stream_not_retried", "close_event_ignored"]

    mock.reset()
    closing = mock.add_scenario(reply="one two three", faults=[{"kind": "close", "at": 2, "ms": 800}], thresholds=QUICK)
    for event in sse(mock, closing):
        if event.event == "close":
            break  # hangs up on the close event
    (record,) = mock.requests
    assert record.outcome == "client_disconnected"
    assert codes(mock.verdict()) == ["cut_stream_not_retried"]  # a warning: it may have shown an error


# The control API


def test_get_verdict_judges_the_records_since_an_id_and_waits_for_pending_checks(mock: MockServer) -> None:
    for _ in range(2):
        httpx.get(f"{mock.url}/completions", params={"messages": "hi", "scenario": "unauthorized"})
    cut = mock.add_scenario(reply="one two", faults=[{"kind": "no_done"}], thresholds={"grace_ms": 300})
    list(sse(mock, cut))
    with httpx.Client(base_url=mock.url) as client:
        everything = client.get("/_mock/verdict").json()
        assert [f["code"] for f in everything["findings"]] == ["retried_non_retryable"]
        assert [p["code"] for p in everything["pending"]] == ["cut_stream_not_retried"]
        waited = client.get("/_mock/verdict", params={"since": 2, "wait_ms": 5000}).json()
    assert (waited["requests"], waited["calls"], waited["pending"]) == (1, [[3]], [])
    assert [(f["code"], f["severity"], f["records"]) for f in waited["findings"]] == [
        ("cut_stream_not_retried", "warning", [3])
    ]
    assert (waited["errors"], waited["warnings"]) == (0, 1)


@pytest.mark.parametrize("query", ["since=x", "wait_ms=-1", "settle_ms=100000000"])
def test_get_verdict_refuses_bad_parameters_naming_them(mock: MockServer, query: str) -> None:
    response = httpx.get(f"{mock.url}/_mock/verdict?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.text


@pytest.mark.slow
@pytest.mark.parametrize("last_event_id", ["²".encode("latin-1"), b"7" * 5000, b"12x", b""], ids=repr)
def test_the_verdict_survives_any_last_event_id(mock: MockServer, last_event_id: bytes) -> None:
    """A `Last-Event-ID` that is no event number (the byte 0xB2 reads as `²`, a digit to Python, and 5,000
    digits pass Python's int limit) is read by the one parser the stream and the verdict share."""
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", mock.port), timeout=10) as sock:
            sock.sendall(
                b"GET /completions?messages=hi&scenario=resumable-paced HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Connection: close\r\nLast-Event-ID: " + last_event_id + b"\r\n\r\n"
            )
            while sock.recv(65536):
                pass
    assert httpx.get(mock.url + "/_mock/verdict", timeout=10).status_code == 200
    assert mock.verdict(wait_s=0).judged == 2
    with contextlib.suppress(AssertionError):  # findings are the client's business; a ValueError was ours
        mock.assert_client_behaved(wait_s=0)


# Agent loops and rate limits, through the official SDK

WEATHER_TOOL: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
]
UNPACED = {"X-Mock-Chunk-Ms": "0"}


def agent(server: MockServer) -> OpenAI:
    """A client of a server whose `agent` scenario calls a tool for a request that offers tools, and
    answers in text once the results are back."""
    server.add_scenario("agent", tool_mode="auto", match={"tools_offered": True})
    return OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


def ask(client: OpenAI, messages: list[Any], **headers: str) -> Any:
    reply = client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=WEATHER_TOOL, extra_headers={**UNPACED, **headers}
    )
    return reply.choices[0].message


def test_a_correct_agent_loop_over_two_turns_earns_no_finding(mock: MockServer) -> None:
    with agent(mock) as client:
        messages: list[Any] = []
        for question in ("Weather in Paris?", "And in Oslo?"):
            messages.append({"role": "user", "content": question})
            called = ask(client, messages)
            messages.append(called.model_dump(exclude_none=True))
            messages += [{"role": "tool", "tool_call_id": c.id, "content": "sunny"} for c in called.tool_calls]
            messages.append(ask(client, messages).model_dump(exclude_none=True))
    assert len(mock.requests) == 4
    mock.assert_client_behaved(wait_s=0)


def test_a_loop_that_drops_the_tool_result_is_tool_result_missing(mock: MockServer) -> None:
    with agent(mock) as client:
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        called = ask(client, messages)
        # The bug: the assistant's tool call goes into the history, its result never does.
        messages += [called.model_dump(exclude_none=True), {"role": "user", "content": "Well?"}]
        ask(client, messages)
    (finding,) = mock.verdict(wait_s=0).findings
    assert (finding.code, finding.severity.value, finding.records) == ("tool_result_missing", "error", (1, 2))
    assert called.tool_calls[0].id in finding.detail
    assert "append its result" in finding.advice


def test_giving_up_on_a_call_and_starting_afresh_is_no_finding(mock: MockServer) -> None:
    with agent(mock) as client:
        ask(client, [{"role": "user", "content": "Weather in Paris?"}], **{"X-Mock-Conversation": "c1"})
        ask(client, [{"role": "user", "content": "Never mind: a joke?"}], **{"X-Mock-Conversation": "c1"})
    assert mock.records()[1].conversation == "c1"
    mock.assert_client_behaved(wait_s=0)


def test_a_loop_that_runs_an_answered_call_again_is_tool_call_repeated(mock: MockServer) -> None:
    with agent(mock) as client:
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        called = ask(client, messages)
        results = [{"role": "tool", "tool_call_id": c.id, "content": "sunny"} for c in called.tool_calls]
        messages += [called.model_dump(exclude_none=True), *results]
        messages.append(ask(client, messages).model_dump(exclude_none=True))
        # The bug: the pending calls are never cleared, so the next turn runs them and sends their results again.
        messages += [{"role": "user", "content": "Thanks. And tomorrow?"}, *results]
        ask(client, messages)
    (finding,) = mock.verdict(wait_s=0).findings
    assert (finding.code, finding.records) == ("tool_call_repeated", (1, 3))
    trail = mock.records()[2].tools
    assert trail is not None
    assert trail.repeated == (called.tool_calls[0].id,)


def test_a_responses_chain_that_skips_the_call_output_is_tool_result_missing(mock: MockServer) -> None:
    tools: list[Any] = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    with agent(mock) as client:
        first = client.responses.create(model="gpt-4o", input="Weather?", tools=tools, extra_headers=UNPACED)
        (call,) = [item for item in first.output if item.type == "function_call"]
        output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "rain"}
        client.responses.create(model="gpt-4o", input=[output], previous_response_id=first.id, tools=tools)
        mock.assert_client_behaved(wait_s=0)  # the chain brings the call's output: fine
        client.responses.create(model="gpt-4o", input="And now?", previous_response_id=first.id, tools=tools)
    (finding,) = mock.verdict(wait_s=0).findings
    assert (finding.code, finding.records) == ("tool_result_missing", (1, 3))


def test_a_client_hammering_a_rate_limit_with_new_prompts_is_rate_limit_ignored(
    make_server: Callable[..., MockServer],
) -> None:
    server = make_server(rpm=2)
    with OpenAI(base_url=server.openai_base_url, api_key="sk-live-abcdef1234", max_retries=0) as client:
        for number in range(4):  # a new prompt every 0.2 s, 429 or not
            time.sleep(0.2)
            with contextlib.suppress(openai.RateLimitError):
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"#{number}"}])
    third, fourth = server.records()[2:]
    assert (third.status, third.rate_limited, fourth.rate_limited) == (429, "server", "server")
    assert third.rate_limit_key == fourth.rate_limit_key
    assert third.rate_limit_key is not None
    assert third.rate_limit_key.startswith("key sk-...1234#")
    assert "abcdef" not in third.rate_limit_key
    (finding,) = server.verdict(wait_s=0).findings
    assert (finding.code, finding.records) == ("rate_limit_ignored", (3, 4))


def test_a_client_that_stops_at_a_rate_limit_earns_no_finding(make_server: Callable[..., MockServer]) -> None:
    server = make_server(rpm=1)
    with OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        for number in range(2):
            try:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"#{number}"}])
            except openai.RateLimitError:
                break
    with OpenAI(base_url=server.openai_base_url, api_key="sk-other-key-5678", max_retries=0) as other:
        other.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])  # its own limit
    assert [r.status for r in server.records()] == [200, 429, 200]
    server.assert_client_behaved(wait_s=0)
