"""boto3's `bedrock-runtime` client against the Bedrock routes, unmodified: ConverseStream, Converse,
InvokeModelWithResponseStream and InvokeModel, every fault as botocore meets it, errors as its modeled
exceptions, and the frames themselves read with botocore's own event-stream parser. botocore has no
async client, so these are the sync client's."""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import urllib3.exceptions
from botocore.client import BaseClient
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, EventStreamMessage
from botocore.exceptions import ClientError, ConnectionClosedError, EventStreamError, ReadTimeoutError

from mock_server.dialects import StreamInfo
from mock_server.dialects import bedrock as dialect
from mock_server.http.server import MockServer
from mock_server.scenarios import steps
from mock_server.settings import Settings
from mock_server.timeline.compile import Usage
from tests.conftest import wait_until
from tests.upstreams import Piece, RawUpstream, Script
from tests.wire import Ending, WireResponse, fetch

PROMPT = "Where is Zürich?"
GOLDEN_REPLY, GOLDEN_THOUGHT = "Looking it up.", "Check the weather."
MESSAGES = [{"role": "user", "content": [{"text": PROMPT}]}]
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
UNPACED = {"X-Mock-Chunk-Ms": "0"}


def client_for(
    server: MockServer,
    fault: str = "",
    *,
    key: str = "AKIDEXAMPLE",
    attempts: int = 1,
    headers: dict[str, str] | None = None,
    **config: Any,
) -> BaseClient:
    """A client as its users make one, pointed at the server; `fault` and `headers` go on every request
    (added before the request is signed, as users add headers to boto3's requests)."""
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}, **config),
    )
    sent = {**UNPACED, **({"X-Mock-Fault": fault} if fault else {}), **(headers or {})}

    def add_headers(request: Any, **_: Any) -> None:
        for name, value in sent.items():
            request.headers[name] = value

    client.meta.events.register("before-sign.bedrock-runtime.*", add_headers)
    _OPEN.append(client)
    return client


_OPEN: list[BaseClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the connections each test's clients keep (a stream cut short leaves one checked out)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def converse_events(
    client: BaseClient, model: str = "default", received: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Every event of a ConverseStream, each appended to `received` as it arrives."""
    events = received if received is not None else []
    stream = client.converse_stream(modelId=model, messages=MESSAGES)["stream"]
    try:
        for event in stream:
            events.append(event)
    finally:
        stream.close()
    return events


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(
        event["contentBlockDelta"]["delta"].get("text", "") for event in events if "contentBlockDelta" in event
    )


def reasoning_of(events: list[dict[str, Any]]) -> str:
    deltas = (event["contentBlockDelta"]["delta"] for event in events if "contentBlockDelta" in event)
    return "".join(delta["reasoningContent"].get("text", "") for delta in deltas if "reasoningContent" in delta)


def anthropic_body(prompt: str = PROMPT) -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        }
    )


def invoke_events(
    client: BaseClient, model: str = "default", received: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The Anthropic events of an InvokeModelWithResponseStream, decoded from their chunks."""
    events = received if received is not None else []
    stream = client.invoke_model_with_response_stream(modelId=model, body=anthropic_body())["body"]
    try:
        for event in stream:
            events.append(json.loads(event["chunk"]["bytes"]))
    finally:
        stream.close()
    return events


def anthropic_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")


def raw(server: MockServer, operation: str = "converse-stream", model: str = "golden", **headers: str) -> WireResponse:
    """The wire response to a Converse request for PROMPT (an Anthropic body for invoke), over a raw socket."""
    converse = {"messages": MESSAGES}
    body = json.loads(anthropic_body()) if operation.startswith("invoke") else converse
    return fetch(f"{server.url}/model/{model}/{operation}", method="POST", body=body, headers={**UNPACED, **headers})


def frames_of(body: bytes) -> list[EventStreamMessage]:
    """The frames of an event-stream body, parsed by botocore (which checks both CRCs)."""
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    return list(buffer)


@pytest.fixture
def client(server: MockServer) -> BaseClient:
    return client_for(server)


# Streams and whole responses


def test_converse_stream_is_the_scenario_reply_between_message_start_and_metadata(client: BaseClient) -> None:
    events = converse_events(client)
    assert text_of(events) == f"You said: {PROMPT}"
    assert events[0] == {"messageStart": {"role": "assistant"}}
    assert [next(iter(event)) for event in events[-3:]] == ["contentBlockStop", "messageStop", "metadata"]
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    usage = events[-1]["metadata"]["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] > 0
    assert events[-1]["metadata"]["metrics"]["latencyMs"] >= 0


def test_reasoning_text_and_a_tool_use_are_blocks_in_order(client: BaseClient) -> None:
    events = converse_events(client, "golden")
    assert (reasoning_of(events), text_of(events)) == (GOLDEN_THOUGHT, GOLDEN_REPLY)
    deltas = [event["contentBlockDelta"] for event in events if "contentBlockDelta" in event]
    signatures = [
        d["delta"]["reasoningContent"]["signature"]
        for d in deltas
        if "signature" in d["delta"].get("reasoningContent", {})
    ]
    assert len(signatures) == 1
    (start,) = [event["contentBlockStart"] for event in events if "contentBlockStart" in event]
    tool_use = start["start"]["toolUse"]
    assert (start["contentBlockIndex"], tool_use["name"]) == (2, "get_weather")
    assert tool_use["toolUseId"].startswith("tooluse_")
    arguments = "".join(d["delta"]["toolUse"]["input"] for d in deltas if "toolUse" in d["delta"])
    assert json.loads(arguments) == {"city": "Zürich"}
    assert [d["contentBlockIndex"] for d in deltas] == [0] * 4 + [1] * 3 + [2] * 3
    assert [e["contentBlockStop"]["contentBlockIndex"] for e in events if "contentBlockStop" in e] == [0, 1, 2]
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"


def test_converse_is_the_whole_message_with_its_stop_reason_usage_and_request_id(
    server: MockServer, client: BaseClient
) -> None:
    response = client.converse(modelId="golden", messages=MESSAGES)
    reasoning, text, tool_use = response["output"]["message"]["content"]
    assert response["output"]["message"]["role"] == "assistant"
    assert reasoning["reasoningContent"]["reasoningText"]["text"] == GOLDEN_THOUGHT
    assert reasoning["reasoningContent"]["reasoningText"]["signature"]
    assert text == {"text": GOLDEN_REPLY}
    assert (tool_use["toolUse"]["name"], tool_use["toolUse"]["input"]) == ("get_weather", {"city": "Zürich"})
    assert response["stopReason"] == "tool_use"
    assert response["usage"]["totalTokens"] == response["usage"]["inputTokens"] + response["usage"]["outputTokens"]
    assert "latencyMs" in response["metrics"]
    assert response["ResponseMetadata"]["RequestId"] == str(server.records()[-1].id)


def test_the_prompt_is_the_last_user_messages_text_and_the_model_id_picks_the_scenario(
    server: MockServer, client: BaseClient
) -> None:
    messages = [
        {"role": "user", "content": [{"text": "first"}]},
        {"role": "assistant", "content": [{"text": "an answer"}]},
        {"role": "user", "content": [{"text": "second, "}, {"text": "in two parts"}]},
    ]
    response = client.converse(
        modelId=CLAUDE, messages=messages, system=[{"text": "Be brief."}], inferenceConfig={"maxTokens": 10}
    )
    assert response["output"]["message"]["content"] == [{"text": "You said: second, in two parts"}]
    record = server.records()[-1]
    assert (record.path, record.scenario, record.dialect) == (
        f"/model/{CLAUDE}/converse",
        "default",
        "bedrock-converse",
    )
    calls = client.converse(modelId="tool-call", messages=MESSAGES)["output"]["message"]["content"]
    assert calls[0]["toolUse"]["input"] == {"location": "Paris, France", "unit": "celsius"}


def test_an_inference_profile_arn_is_a_model_id_too(server: MockServer, client: BaseClient) -> None:
    """boto3 sends the ARN's `/` percent-encoded: the path still has four segments."""
    arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{CLAUDE}"
    assert text_of(converse_events(client, arn)) == f"You said: {PROMPT}"
    assert server.records()[-1].path == f"/model/{arn}/converse-stream"


def test_invoke_with_response_stream_yields_claudes_events_in_chunks(client: BaseClient) -> None:
    response = client.invoke_model_with_response_stream(modelId="golden", body=anthropic_body())
    assert response["contentType"] == "application/json"
    events = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    assert events[0]["type"] == "message_start"
    assert events[0]["message"]["model"] == "golden"
    assert anthropic_text(events) == GOLDEN_REPLY
    thinking = "".join(e["delta"].get("thinking", "") for e in events if e["type"] == "content_block_delta")
    assert thinking == GOLDEN_THOUGHT
    assert [e["type"] for e in events[-2:]] == ["message_delta", "message_stop"]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert set(metrics) == {"inputTokenCount", "outputTokenCount", "invocationLatency", "firstByteLatency"}


def test_an_invoke_body_may_name_the_scenario(client: BaseClient) -> None:
    body = {**json.loads(anthropic_body()), "scenario": "tool-call"}
    message = json.loads(client.invoke_model(modelId=CLAUDE, body=json.dumps(body))["body"].read())
    assert message["content"][0]["input"] == {"location": "Paris, France", "unit": "celsius"}
    with pytest.raises(client.exceptions.ValidationException):
        client.invoke_model(modelId=CLAUDE, body=json.dumps({**body, "scenario": 1}))


def test_invoke_model_answers_claudes_message(client: BaseClient) -> None:
    response = client.invoke_model(modelId=CLAUDE, body=anthropic_body("hi"))
    assert response["contentType"] == "application/json"
    message = json.loads(response["body"].read())
    assert (message["type"], message["model"], message["stop_reason"]) == ("message", CLAUDE, "end_turn")
    assert message["content"] == [{"type": "text", "text": "You said: hi"}]


# Faults


@pytest.mark.parametrize(
    ("fault", "reason"), [("drop@4", "Response ended prematurely"), ("reset@4", "Connection reset by peer")]
)
def test_a_cut_stream_raises_urllib3s_protocol_error_after_what_came_before(
    server: MockServer, fault: str, reason: str
) -> None:
    """An event stream's body is urllib3's raw response: botocore does not wrap its errors."""
    received: list[dict[str, Any]] = []
    with pytest.raises(urllib3.exceptions.ProtocolError, match=reason):
        converse_events(client_for(server, fault), "golden", received)
    assert (reasoning_of(received), text_of(received)) == (GOLDEN_THOUGHT, "Looking")
    invoked: list[dict[str, Any]] = []
    with pytest.raises(urllib3.exceptions.ProtocolError, match=reason):
        invoke_events(client_for(server, fault), "golden", invoked)
    assert invoked


@pytest.mark.parametrize("fault", ["drop@4", "reset@4", "drop@head", "reset@head"])
def test_a_cut_whole_response_or_head_is_botocores_connection_closed_error(server: MockServer, fault: str) -> None:
    client = client_for(server, fault)
    with pytest.raises(ConnectionClosedError):
        client.converse(modelId="golden", messages=MESSAGES)
    with pytest.raises(ConnectionClosedError):
        client.invoke_model(modelId="golden", body=anthropic_body())
    if fault.endswith("head"):
        with pytest.raises(ConnectionClosedError):
            converse_events(client, "golden")


def test_connection_errors_before_the_head_are_retried(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    assert text_of(converse_events(client_for(server, "reset@head!times=1", attempts=2))) == f"You said: {PROMPT}"
    assert [record.status for record in server.records()] == [None, 200]


def test_an_endless_stall_is_a_read_timeout(server: MockServer) -> None:
    received: list[dict[str, Any]] = []
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        converse_events(client_for(server, "stall@4", read_timeout=0.3), "golden", received)
    assert text_of(received) == "Looking"
    with pytest.raises(ReadTimeoutError):
        client_for(server, "stall@4", read_timeout=0.3).converse(modelId="golden", messages=MESSAGES)


@pytest.mark.parametrize("fault", ["stall@2:300", "delay@2:300", "stall@head:300"])
def test_a_timed_stall_or_delay_holds_the_rest_back(server: MockServer, fault: str) -> None:
    started = time.monotonic()
    assert text_of(converse_events(client_for(server, fault))) == f"You said: {PROMPT}"
    assert time.monotonic() - started >= 0.3


def test_split_cuts_a_frame_inside_a_character_and_the_text_arrives_whole(server: MockServer) -> None:
    assert text_of(converse_events(client_for(server, "split@1:4,split@3:2"), "cjk")) == "你好，世界！"
    response = raw(server, model="cjk", **{"X-Mock-Fault": "split@1:4"})
    types = [frame.headers[":event-type"] for frame in frames_of(response.body)]
    assert types[:2] == ["messageStart", "contentBlockDelta"]
    ends, offset = set(), 0
    for _, chunk in response.chunks:
        offset += len(chunk)
        ends.add(offset)
    assert ends & inside_characters(response.body)  # a read ended inside a character of a payload


def inside_characters(body: bytes) -> set[int]:
    """The offsets in an event-stream body that fall inside a multi-byte character of a frame's payload."""
    inside: set[int] = set()
    start = 0
    while start < len(body):
        total, headers = struct.unpack_from("!II", body, start)
        payload = start + 12 + headers
        position = payload
        for character in body[payload : start + total - 4].decode():
            width = len(character.encode())
            inside.update(range(position + 1, position + width))
            position += width
        start += total
    return inside


def test_a_malformed_frame_fails_its_checksum(server: MockServer) -> None:
    received: list[dict[str, Any]] = []
    with pytest.raises(ChecksumMismatch):
        converse_events(client_for(server, "malformed@4"), "golden", received)
    assert text_of(received) == "Looking"
    with pytest.raises(ChecksumMismatch):
        invoke_events(client_for(server, "malformed@1"), "golden")
    buffer = EventStreamBuffer()
    buffer.add_data(raw(server, **{"X-Mock-Fault": "malformed@1"}).body)
    whole = []
    with pytest.raises(ChecksumMismatch):
        whole.extend(buffer)
    assert [frame.headers[":event-type"] for frame in whole] == ["messageStart", "contentBlockDelta"]


def test_a_mid_stream_error_is_the_models_stream_error_exception(server: MockServer) -> None:
    received: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as caught:
        converse_events(client_for(server, "error@4:The model is overloaded."), "golden", received)
    assert caught.value.response["Error"] == {
        "Code": "modelStreamErrorException",
        "Message": "The model is overloaded.",
    }
    assert text_of(received) == "Looking"
    with pytest.raises(EventStreamError) as invoked:
        invoke_events(client_for(server, "error@2"), "golden")
    assert invoked.value.response["Error"]["Code"] == "modelStreamErrorException"
    frame = frames_of(raw(server, **{"X-Mock-Fault": "error@0"}).body)[1]
    assert frame.headers == {
        ":exception-type": "modelStreamErrorException",
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    assert json.loads(frame.payload)["originalStatusCode"] == 500


@pytest.mark.parametrize(
    ("error", "streamed", "whole"),
    [
        ({"type": "ThrottlingException"}, "throttlingException", "ThrottlingException"),
        ({"type": "serviceUnavailableException"}, "serviceUnavailableException", "ServiceUnavailableException"),
        ({"type": "ModelNotReadyException"}, "modelStreamErrorException", "ModelNotReadyException"),
        ({"code": "429"}, "throttlingException", "ThrottlingException"),
        ({"code": "503"}, "serviceUnavailableException", "ServiceUnavailableException"),
        ({"code": "400"}, "validationException", "ValidationException"),
        ({"code": "500"}, "internalServerException", "InternalServerException"),
        ({"code": "502"}, "modelStreamErrorException", "InternalServerException"),
        ({"type": "server_error"}, "modelStreamErrorException", "ModelErrorException"),
    ],
)
def test_a_scripted_errors_type_or_status_chooses_the_exception(
    server: MockServer, error: dict[str, str], streamed: str, whole: str
) -> None:
    name = server.add_scenario(reply="Hi there", chunk_ms=0, faults=[{"kind": "error", "at": 1, **error}])
    with pytest.raises(EventStreamError) as caught:
        converse_events(client_for(server), name)
    assert caught.value.response["Error"]["Code"] == streamed
    with pytest.raises(ClientError) as failed:
        client_for(server).converse(modelId=name, messages=MESSAGES)
    assert failed.value.response["Error"]["Code"] == whole
    status = failed.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status == dialect.error_status(steps.ErrorEvent(**error))


def test_a_timeout_is_an_exception_of_invokes_stream_only() -> None:
    """InvokeModelWithResponseStream has `modelTimeoutException`; ConverseStream reports it as the model's error."""
    info = StreamInfo(key="ab" * 32, created=0, model="m", usage=Usage(1, 1))
    timeout = steps.ErrorEvent(code="408")
    (invoked,) = dialect.INVOKE.stream(info).events(timeout)
    (conversed,) = dialect.CONVERSE.stream(info).events(timeout)
    assert (invoked.event, conversed.event) == ("modelTimeoutException", "modelStreamErrorException")
    assert json.loads(conversed.data or "")["originalStatusCode"] == 408


def test_malformed_with_data_is_a_corrupt_frame_of_that_payload() -> None:
    info = StreamInfo(key="ab" * 32, created=0, model="m", usage=Usage(1, 1))
    for spec, name in ((dialect.CONVERSE, "contentBlockDelta"), (dialect.INVOKE, "chunk")):
        renderer = spec.stream(info)
        renderer.start()
        (event,) = renderer.events(steps.Malformed("{not json"))
        assert (event.event, event.data, event.corrupt) == (name, "{not json", True)


def test_an_error_in_a_whole_response_is_the_model_error_exception(client: BaseClient, server: MockServer) -> None:
    with pytest.raises(client.exceptions.ModelErrorException) as caught:
        client_for(server, "error@2").converse(modelId="golden", messages=MESSAGES)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert caught.value.response["Error"]["Message"] == dialect.error_body(424, None)["message"]


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, "ValidationException"),
        (403, "AccessDeniedException"),
        (404, "ResourceNotFoundException"),
        (408, "ModelTimeoutException"),
        (424, "ModelErrorException"),
        (429, "ThrottlingException"),
        (500, "InternalServerException"),
        (503, "ServiceUnavailableException"),
    ],
)
def test_status_faults_raise_botocores_modeled_exception(server: MockServer, status: int, exception: str) -> None:
    client = client_for(server, f"status:{status}")
    raised = getattr(client.exceptions, exception)
    for call in (
        lambda: client.converse(modelId="default", messages=MESSAGES),
        lambda: converse_events(client),
        lambda: client.invoke_model(modelId="default", body=anthropic_body()),
        lambda: invoke_events(client),
    ):
        with pytest.raises(raised) as caught:
            call()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert caught.value.response["Error"]["Message"]
    response = raw(server, **{"X-Mock-Fault": f"status:{status}"})
    assert response.headers["x-amzn-errortype"] == f"{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    assert list(json.loads(response.body)) == ["message"]
    assert response.headers["x-amzn-requestid"] == response.headers["x-mock-request-id"]


def test_a_throttled_request_is_retried_by_botocore_and_then_succeeds(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    client = client_for(server, "status:429!times=1", attempts=2)
    assert text_of(converse_events(client)) == f"You said: {PROMPT}"
    assert [record.status for record in server.records()] == [429, 200]


def test_duplicate_sends_a_frame_twice(server: MockServer) -> None:
    assert text_of(converse_events(client_for(server, "duplicate@4"), "golden")) == "Looking it it up."


def test_an_unknown_event_type_is_skipped(server: MockServer) -> None:
    assert text_of(converse_events(client_for(server, "unknown_event@4"), "golden")) == GOLDEN_REPLY
    assert anthropic_text(invoke_events(client_for(server, "unknown_event@2"), "golden")) == GOLDEN_REPLY
    frames = frames_of(raw(server, **{"X-Mock-Fault": "unknown_event@0"}).body)
    assert frames[1].headers[":event-type"] == dialect.UNKNOWN_EVENT


def test_no_done_ends_cleanly_without_metadata_and_close_without_the_stop(server: MockServer) -> None:
    events = converse_events(client_for(server, "no_done"), "golden")
    assert text_of(events) == GOLDEN_REPLY
    assert "messageStop" in events[-1]
    closed = converse_events(client_for(server, "close@4"), "golden")
    assert text_of(closed) == "Looking"
    assert not any("messageStop" in event or "metadata" in event for event in closed)


def test_an_event_step_is_a_frame_of_its_type_and_what_only_sse_has_writes_nothing(server: MockServer) -> None:
    delta = {"contentBlockIndex": 0, "delta": {"text": "raw "}}
    name = server.add_scenario(
        steps=[
            {"comment": "warming up"},
            {"event": {"event": "contentBlockDelta", "data": json.dumps(delta)}},
            {"text": "Hi"},
        ],
        ids=True,
        retry_ms=1000,
    )
    events = converse_events(client_for(server), name)
    assert text_of(events) == "raw Hi"
    resumed = raw(server, model=name, **{"Last-Event-ID": "2"})
    assert len(frames_of(resumed.body)) == len(events)  # no ids: nothing to resume from


GOLDEN_FRAMES = (Path(__file__).parent / "golden" / "bedrock-converse.eventstream").read_bytes()


@pytest.mark.parametrize(
    ("fault", "raised", "events"),
    [
        ("", None, 17),
        ("drop@3", urllib3.exceptions.ProtocolError, 3),
        ("error@2", EventStreamError, 2),
        ("malformed@5", ChecksumMismatch, 5),
        ("duplicate@1", None, 18),
    ],
)
def test_a_proxied_bedrock_stream_counts_frames_however_its_bytes_arrive(
    fault: str, raised: type[Exception] | None, events: int
) -> None:
    """An upstream's frames, cut into 7-byte pieces on the way, reach the client whole, and `@N`
    counts frames: a fault lands between two of them, in Bedrock's framing."""
    pieces = tuple(Piece(GOLDEN_FRAMES[at : at + 7]) for at in range(0, len(GOLDEN_FRAMES), 7))
    script = Script(headers=(b"Content-Type: application/vnd.amazon.eventstream",), pieces=pieces)
    with (
        RawUpstream(script) as upstream,
        MockServer(settings=Settings(port=0, access_log=False, upstream=upstream.url, upstream_only=True)) as server,
    ):
        received: list[dict[str, Any]] = []
        if raised is None:
            converse_events(client_for(server, fault), "golden", received)
        else:
            with pytest.raises(raised):
                converse_events(client_for(server, fault), "golden", received)
    assert len(received) == events
    if not fault:
        assert (reasoning_of(received), text_of(received)) == (GOLDEN_THOUGHT, GOLDEN_REPLY)


def test_a_proxied_bedrock_stream_is_passed_on_but_not_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(headers=(b"Content-Type: application/vnd.amazon.eventstream",), pieces=(Piece(GOLDEN_FRAMES),))
    with (
        caplog.at_level(logging.WARNING, logger="mock_llm_sse.recorder"),
        RawUpstream(script) as upstream,
        MockServer(settings=Settings(port=0, access_log=False, upstream=upstream.url, record_dir=tmp_path)) as server,
    ):
        assert text_of(converse_events(client_for(server), "anything")) == GOLDEN_REPLY
        wait_until(lambda: "event-stream frames" in caplog.text, "the recorder to pass the stream by")
    assert not list(tmp_path.glob("*.yaml"))


# Errors of ours, the key


def test_bad_bodies_and_unknown_scenarios_are_answered_in_bedrocks_shape(server: MockServer) -> None:
    url = f"{server.url}/model/default/converse"
    for body, field in [
        ({}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"content": "hi"}]}, "messages[0].content"),
    ]:
        answer = httpx.post(url, json=body)
        assert answer.status_code == 400
        assert answer.headers["x-amzn-errortype"].startswith("ValidationException:")
        assert list(answer.json()) == ["message"]
        assert f"`{field}`" in answer.json()["message"]
    with pytest.raises(ClientError) as caught:
        client_for(server, headers={"X-Mock-Scenario": "nope"}).converse(modelId="x", messages=MESSAGES)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "nope" in caught.value.response["Error"]["Message"]
    unknown = httpx.post(f"{server.url}/model/default/count-tokens", json={})
    assert (unknown.status_code, list(unknown.json())) == (404, ["message"])
    assert unknown.headers["x-amzn-errortype"].startswith("ResourceNotFoundException:")


def test_with_require_auth_the_token_is_the_access_key_id(make_server: Callable[..., MockServer]) -> None:
    server = make_server(require_auth="AKIDSESAME")
    assert text_of(converse_events(client_for(server, key="AKIDSESAME"))) == f"You said: {PROMPT}"
    with pytest.raises(ClientError) as caught:
        client_for(server, key="AKIDOTHER").converse(modelId="default", messages=MESSAGES)
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("UnrecognizedClientException", 403)
    unsigned = httpx.post(f"{server.url}/model/default/converse", json={"messages": MESSAGES})
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-errortype"].startswith("MissingAuthenticationTokenException:")
    assert "aws_access_key_id" in unsigned.json()["message"]
    bearer = httpx.post(
        f"{server.url}/model/default/converse",
        json={"messages": MESSAGES},
        headers={"Authorization": "Bearer AKIDSESAME"},
    )
    assert bearer.status_code == 200


def test_any_credentials_pass_without_require_auth(server: MockServer) -> None:
    unsigned = httpx.post(f"{server.url}/model/default/converse", json={"messages": MESSAGES})
    assert unsigned.status_code == 200


# The model list


def control_client(server: MockServer, key: str = "AKIDEXAMPLE") -> BaseClient:
    """The `bedrock` (control plane) client, whose `list_foundation_models` lists the models."""
    client = boto3.client(
        "bedrock",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    _OPEN.append(client)
    return client


def test_every_scenario_is_a_foundation_model_as_v1_models_lists_them(server: MockServer) -> None:
    summaries = control_client(server).list_foundation_models()["modelSummaries"]
    listed = [summary["modelId"] for summary in summaries]
    assert listed == [model["id"] for model in httpx.get(server.url + "/v1/models").json()["data"]]
    assert "golden" in listed
    golden = summaries[listed.index("golden")]
    assert golden["modelArn"] == "arn:aws:bedrock:us-east-1::foundation-model/golden"
    assert (golden["responseStreamingSupported"], golden["outputModalities"]) == (True, ["TEXT"])


def test_the_model_list_wants_the_token_too(make_server: Callable[..., MockServer]) -> None:
    server = make_server(require_auth="AKIDSESAME")
    assert control_client(server, "AKIDSESAME").list_foundation_models()["modelSummaries"]
    with pytest.raises(ClientError) as caught:
        control_client(server, "AKIDOTHER").list_foundation_models()
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"


# The wire


def test_frames_carry_the_event_type_content_type_and_message_type(server: MockServer) -> None:
    response = raw(server)
    assert (response.status, response.ending) == (200, Ending.COMPLETE)
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    frames = frames_of(response.body)
    assert all(
        (frame.headers[":content-type"], frame.headers[":message-type"]) == ("application/json", "event")
        for frame in frames
    )
    assert [frame.headers[":event-type"] for frame in frames][:: len(frames) - 1] == ["messageStart", "metadata"]
    invoked = frames_of(raw(server, "invoke-with-response-stream").body)
    assert {frame.headers[":event-type"] for frame in invoked} == {"chunk"}
    assert raw(server, "invoke-with-response-stream").headers["x-amzn-bedrock-content-type"] == "application/json"
