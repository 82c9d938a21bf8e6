"""Faults as real clients meet them at the edges of a response: before the status line (`@head`),
only on some requests (`!once`, `!times=N`, `!p=P`), with the headers a provider sends or leaves out,
and with the provider's request id."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anthropic
import httpx
import openai
import pytest
from anthropic import Anthropic
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from mock_server.errors import OverrideError
from mock_server.http.server import MockServer
from mock_server.scenarios.faults import parse_fault
from tests.model_requests import BODY_ENDPOINTS, Endpoint
from tests.wire import Ending, fetch

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
UNPACED = {"X-Mock-Chunk-Ms": "0"}
by_id = pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=lambda e: e.id)


@contextmanager
def chat(server: MockServer, max_retries: int = 0) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=max_retries) as client:
        yield client


def raw_read(server: MockServer, endpoint: Endpoint, fault: str, *, stream: bool) -> bytes:
    """Everything the server sends on one connection before it ends it."""
    body = httpx.Request("POST", "http://x", json=endpoint.body("default", stream=stream)).content
    target = endpoint.target("default", stream=stream)
    head = (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Mock-Fault: {fault}\r\n\r\n"
    ).encode()
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head + body)
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            received += b"<reset>"
    return received


@by_id
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("fault", ["drop@head", "reset@head"])
def test_a_head_fault_ends_the_connection_before_the_status_line(
    make_server: Callable[..., MockServer], endpoint: Endpoint, stream: bool, fault: str
) -> None:
    server = make_server()
    received = raw_read(server, endpoint, fault, stream=stream)
    assert received == (b"<reset>" if fault == "reset@head" else b"")
    (record,) = server.requests
    assert (record.status, record.outcome, record.events_sent) == (
        None,
        "dropped" if fault == "drop@head" else "reset",
        0,
    )


def test_the_sdk_retries_a_stream_that_failed_before_its_head(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    with chat(server, max_retries=2) as client:
        stream = client.chat.completions.create(
            model="default",
            messages=MESSAGES,
            stream=True,
            extra_headers={**UNPACED, "X-Mock-Fault": "reset@head!times=2"},
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "You said: hi"
    assert [r.status for r in server.requests] == [None, None, 200]  # two connection errors, then the answer


def test_a_stall_at_the_head_delays_the_status_line(server: MockServer) -> None:
    response = fetch(server.url + "/completions?messages=hi&chunk_ms=0&fault=stall@head:400")
    assert response.ending is Ending.COMPLETE
    assert response.head_at >= 0.35
    assert response.content() == "You said: hi"


def test_an_endless_stall_at_the_head_is_a_read_timeout_before_any_header(
    make_server: Callable[..., MockServer],
) -> None:
    server = make_server()
    with (
        OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0, timeout=0.5) as client,
        pytest.raises(openai.APITimeoutError),
    ):
        client.chat.completions.create(
            model="default", messages=MESSAGES, stream=True, extra_headers={"X-Mock-Fault": "stall@head"}
        )
    (record,) = server.records(settle_s=5)
    assert (record.status, record.outcome) == (None, "stalled")


@pytest.mark.parametrize(
    ("item", "once", "times", "probability"),
    [
        ("drop@3!once", True, None, 1.0),
        ("status:429!times=2", False, 2, 1.0),
        ("reset@5!p=0.3", False, None, 0.3),
        ("stall@1:200!once!times=3", True, 3, 1.0),
        ("close@2:bye!now", False, None, 1.0),  # `!now` is no condition: part of the close's data
    ],
)
def test_conditions_are_read_from_the_end_of_a_fault(
    item: str, once: bool, times: int | None, probability: float
) -> None:
    fault = parse_fault(item)
    assert (fault.once, fault.times, fault.probability, fault.counted_as) == (once, times, probability, item)


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("drop@3!twice", "unknown condition !twice"),
        ("drop@3!once!once", "gives !once twice"),
        ("drop@3!p=1.5", "a probability from 0 to 1"),
        ("drop@3!times=0", "greater than or equal to 1"),
        ("split@head", "only drop, reset, stall can strike at `head`"),
    ],
)
def test_a_bad_condition_or_head_is_a_400_saying_what_is_accepted(server: MockServer, item: str, says: str) -> None:
    with pytest.raises(OverrideError, match=says):
        parse_fault(item)
    response = httpx.get(server.url + "/completions", params={"messages": "hi", "fault": item})
    assert response.status_code == 400
    assert says in response.json()["error"]["message"]


def test_times_counts_the_requests_that_carried_the_same_fault_text(make_server: Callable[..., MockServer]) -> None:
    server = make_server()

    def status(fault: str) -> int:
        return httpx.get(
            server.url + "/completions", params={"messages": "hi", "chunk_ms": "0", "fault": fault}
        ).status_code

    assert [status("status:429!times=2") for _ in range(3)] == [429, 429, 200]
    assert status("status:503!times=1") == 503  # another text, counted apart
    server.reset()
    assert status("status:429!times=2") == 429  # counted afresh


def test_fail_once_then_succeed_from_a_header_meets_the_sdk_retry(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    with chat(server, max_retries=2) as client:
        completion = client.chat.completions.create(
            model="default", messages=MESSAGES, extra_headers={**UNPACED, "X-Mock-Fault": "status:503!times=1"}
        )
    assert completion.choices[0].message.content == "You said: hi"
    assert [r.status for r in server.requests] == [503, 200]


def test_once_skips_a_resumed_request(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    query = "/completions?messages=hi&scenario=resumable-paced&chunk_ms=0&fault=drop@2!once"
    first = fetch(server.url + query)
    assert first.ending is Ending.EOF
    resumed = fetch(server.url + query, headers={"Last-Event-ID": "1"})
    assert resumed.ending is Ending.COMPLETE


def test_probability_is_drawn_from_the_seed(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    endings = [
        fetch(server.url + "/completions?messages=hi&chunk_ms=0&seed=7&fault=drop@1!p=0.5").ending for _ in range(12)
    ]
    assert {Ending.EOF, Ending.COMPLETE} == set(endings)
    server.reset()
    again = [
        fetch(server.url + "/completions?messages=hi&chunk_ms=0&seed=7&fault=drop@1!p=0.5").ending for _ in range(12)
    ]
    assert again == endings  # the same seed and the same requests since reset: the same draws


def test_a_header_given_as_null_is_not_sent(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    bare = server.add_scenario(status=429, headers={"Retry-After": None})
    response = httpx.get(server.url + "/completions", params={"messages": "hi", "scenario": bare})
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    told = server.add_scenario(status=429)
    assert httpx.get(server.url + "/completions", params={"scenario": told}).headers["retry-after"] == "1"
    by_fault = server.add_scenario(
        faults=[{"kind": "status", "status": 429, "headers": {"Retry-After": None, "X-Why": "quota"}}]
    )
    response = httpx.get(server.url + "/completions", params={"scenario": by_fault})
    assert (response.status_code, response.headers.get("retry-after"), response.headers["x-why"]) == (
        429,
        None,
        "quota",
    )


def test_an_sdk_backs_off_on_its_own_from_a_429_without_retry_after(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    bare = server.add_scenario(status=429, headers={"Retry-After": None})
    with chat(server, max_retries=1) as client, pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=bare, messages=MESSAGES)
    first, second = server.requests
    assert first.retry_after is None
    assert 0.2 < second.received_at - (first.ended_at or 0) < 2  # the SDK's own backoff, not a Retry-After


@by_id
def test_every_response_carries_the_providers_request_id(server: MockServer, endpoint: Endpoint) -> None:
    target = server.url + endpoint.target("default", stream=False)
    response = httpx.post(target, json=endpoint.body("default", stream=False), headers=UNPACED)
    name = "request-id" if endpoint.dialect == "anthropic" else "x-request-id"
    assert response.headers[name] == response.headers["x-mock-request-id"]


def test_the_sdks_expose_the_request_id_of_an_error(server: MockServer) -> None:
    with chat(server) as client, pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="rate-limited", messages=MESSAGES)
    assert raised.value.request_id == raised.value.response.headers["x-mock-request-id"]
    with (
        Anthropic(base_url=server.url, api_key="x", max_retries=0) as anthropic_client,
        pytest.raises(anthropic.RateLimitError) as caught,
    ):
        anthropic_client.messages.create(
            model="rate-limited", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.request_id == caught.value.response.headers["x-mock-request-id"]
