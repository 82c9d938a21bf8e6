"""Ollama's native API as the official `ollama` client calls it (`Client`, `AsyncClient`): /api/chat
and /api/generate streamed as NDJSON or whole, tool calls, thinking, errors, every fault in NDJSON
terms, and the model list. Byte-level faults are checked on a raw socket (tests/wire.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import ollama
import pytest

from mock_server.dialects.ollama import MID_STREAM_ERROR, go_json
from mock_server.http.server import MockServer
from tests.wire import Ending, WireResponse, fetch

T = TypeVar("T")
UNPACED = {"X-Mock-Chunk-Ms": "0"}
HELLO = [{"role": "user", "content": "hello"}]


Connect = Callable[..., ollama.Client]


@pytest.fixture
def connect(server: MockServer) -> Iterator[Connect]:
    """Clients of the session's server, unpaced unless `paced`, with `fault` in X-Mock-Fault (more
    headers and options as keywords); all closed after the test."""
    opened: list[ollama.Client] = []

    def make(
        fault: str = "", headers: dict[str, str] | None = None, paced: bool = False, **options: Any
    ) -> ollama.Client:
        all_headers = {**({} if paced else UNPACED), "X-Mock-Fault": fault, **(headers or {})}
        opened.append(ollama.Client(host=server.url, headers=all_headers, **options))
        return opened[-1]

    yield make
    for opened_client in opened:
        opened_client.close()  # type: ignore[no-untyped-call]  # the client's close() has no annotations


async def in_async_client(server: MockServer, work: Callable[[ollama.AsyncClient], Awaitable[T]], fault: str = "") -> T:
    """`work` done with an AsyncClient of the server, closed after."""
    async_client = ollama.AsyncClient(host=server.url, headers={**UNPACED, "X-Mock-Fault": fault})
    try:
        return await work(async_client)
    finally:
        await async_client.close()  # type: ignore[no-untyped-call]


def chat_text(connect: Connect, fault: str = "", model: str = "default", **kwargs: Any) -> tuple[str, list[Any]]:
    """Streams a chat through the client; when it raises, what had arrived is the exception's last note."""
    chunks: list[Any] = []
    try:
        for chunk in connect(fault).chat(model=model, messages=HELLO, stream=True, **kwargs):
            chunks.append(chunk)
    except Exception as exc:
        exc.add_note("".join(c.message.content or "" for c in chunks))
        raise
    return "".join(c.message.content or "" for c in chunks), chunks


def received(exc: pytest.ExceptionInfo[BaseException]) -> str:
    """The text a client had when it raised (the note `chat_text` adds)."""
    return exc.value.__notes__[-1]


def lines(response: WireResponse) -> list[bytes]:
    """The NDJSON lines of a body, each with its line end; a last line without one is kept as it is."""
    return response.body.splitlines(keepends=True)


def post(server: MockServer, path: str, body: dict[str, Any], fault: str = "", **headers: str) -> WireResponse:
    return fetch(server.url + path, method="POST", body=body, headers={**UNPACED, "X-Mock-Fault": fault, **headers})


# --- the answer, streamed and whole -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_chat_streams_one_piece_a_line_then_the_done_line(server: MockServer, connect: Connect, mode: str) -> None:
    async def stream(async_client: ollama.AsyncClient) -> list[ollama.ChatResponse]:
        return [chunk async for chunk in await async_client.chat(model="default", messages=HELLO, stream=True)]

    if mode == "sync":
        chunks = list(connect().chat(model="default", messages=HELLO, stream=True))
    else:
        chunks = asyncio.run(in_async_client(server, stream))
    *pieces, last = chunks
    assert [c.message.content for c in pieces] == ["You", " said:", " hello"]
    assert not any(c.done for c in pieces)
    assert (last.done, last.done_reason, last.message.content, last.message.role) == (True, "stop", "", "assistant")
    assert (last.prompt_eval_count, last.eval_count) == (1, 4)  # o200k_base: "You", " said", ":", " hello"
    durations = (last.load_duration, last.prompt_eval_duration, last.eval_duration)
    assert last.total_duration == sum(duration or 0 for duration in durations)
    assert {c.model for c in chunks} == {"default"}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_chat_whole_is_one_object(server: MockServer, connect: Connect, mode: str) -> None:
    async def ask(async_client: ollama.AsyncClient) -> ollama.ChatResponse:
        return await async_client.chat(model="default", messages=HELLO)

    answer = (
        connect().chat(model="default", messages=HELLO) if mode == "sync" else asyncio.run(in_async_client(server, ask))
    )
    assert (answer.message.content, answer.done, answer.done_reason, answer.eval_count) == (
        "You said: hello",
        True,
        "stop",
        4,  # o200k_base: "You", " said", ":", " hello"
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_generate_streams_response_pieces_and_answers_whole(server: MockServer, connect: Connect, mode: str) -> None:
    async def both(async_client: ollama.AsyncClient) -> tuple[list[ollama.GenerateResponse], ollama.GenerateResponse]:
        streamed = [chunk async for chunk in await async_client.generate(model="default", prompt="hi", stream=True)]
        return streamed, await async_client.generate(model="default", prompt="hi")

    if mode == "sync":
        streamed = list(connect().generate(model="default", prompt="hi", stream=True))
        whole = connect().generate(model="default", prompt="hi")
    else:
        streamed, whole = asyncio.run(in_async_client(server, both))
    assert "".join(c.response or "" for c in streamed) == whole.response == "You said: hi"
    assert [c.done for c in streamed[-2:]] == [False, True]
    assert (whole.done, whole.done_reason) == (True, "stop")


def test_a_request_without_stream_is_streamed_as_ollama_does(server: MockServer) -> None:
    response = post(server, "/api/chat", {"model": "default", "messages": HELLO})
    assert response.headers["content-type"] == "application/x-ndjson"
    assert len(lines(response)) == 4


def test_the_stream_is_ndjson_every_line_an_object(server: MockServer) -> None:
    response = post(server, "/api/chat", {"model": "golden", "messages": HELLO})
    assert (response.status, response.ending) == (200, Ending.COMPLETE)
    assert response.headers["content-type"] == "application/x-ndjson"
    assert all(line.endswith(b"\n") and isinstance(json.loads(line), dict) for line in lines(response))
    record = server.records()[-1]
    assert (record.dialect, record.outcome, record.events_sent) == ("ollama-chat", "completed", 8)


def test_tool_calls_arrive_whole_with_their_arguments_an_object(server: MockServer, connect: Connect) -> None:
    _, chunks = chat_text(connect, model="golden")
    (with_call,) = [c for c in chunks if c.message.tool_calls]
    (call,) = with_call.message.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", {"city": "Zürich"})
    whole = connect().chat(model="golden", messages=HELLO)
    assert whole.message.tool_calls == with_call.message.tool_calls
    assert (whole.message.content, whole.done_reason) == ("Looking it up.", "stop")


def test_a_tool_call_cut_while_it_is_written_never_arrives(server: MockServer, connect: Connect) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:  # golden: 3 reasoning chunks, 3 of text, then the call
        chat_text(connect, "drop@8", model="golden")
    assert received(caught) == "Looking it up."
    response = post(server, "/api/chat", {"model": "golden", "messages": HELLO}, "drop@8")
    assert (response.ending, len(lines(response))) == (Ending.EOF, 6)
    assert b"tool_calls" not in response.body


@pytest.mark.parametrize(
    ("think", "thinking"), [(None, "Check the weather."), (True, "Check the weather."), (False, "")]
)
def test_thinking_comes_unless_think_is_false(
    server: MockServer, think: bool | None, thinking: str, connect: Connect
) -> None:
    _, chunks = chat_text(connect, model="golden", think=think)
    assert "".join(c.message.thinking or "" for c in chunks) == thinking
    assert (connect().chat(model="golden", messages=HELLO, think=think).message.thinking or "") == thinking
    generated = connect().generate(model="golden", prompt="hi", think=think, stream=True)
    assert "".join(c.thinking or "" for c in generated) == thinking


def test_a_think_level_turns_thinking_on(server: MockServer, connect: Connect) -> None:
    answer = connect().chat(model="golden", messages=HELLO, think="low")
    assert answer.message.thinking == "Check the weather."


def test_the_counts_are_the_chunks_and_the_durations_the_pacing(server: MockServer, connect: Connect) -> None:
    name = server.add_scenario(reply="one two three", first_chunk_ms=50, chunk_ms=20)
    ms = 1_000_000
    fields = ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration", "load_duration")
    expected = (4, 50 * ms, 3, 60 * ms, ms)  # waits: 50 ms, then 20 ms before chunks 2 and 3 and the end
    messages = [{"role": "user", "content": "count to three please"}]
    plain = connect(paced=True)
    *_, last = plain.chat(model=name, messages=messages, stream=True)
    whole = plain.chat(model=name, messages=messages)
    for answer in (last, whole):
        assert tuple(getattr(answer, field) for field in fields) == expected
        assert answer.total_duration == 111 * ms


def test_length_is_a_done_reason_of_its_own(server: MockServer, connect: Connect) -> None:
    name = server.add_scenario(reply="cut short", finish_reason="length")
    assert connect().chat(model=name, messages=HELLO).done_reason == "length"
    *_, last = connect().generate(model=name, prompt="hi", stream=True)
    assert last.done_reason == "length"


def test_lines_are_written_as_go_writes_json(server: MockServer) -> None:
    assert go_json({"a": "<b> & ü\u2028"}) == '{"a":"\\u003cb\\u003e \\u0026 ü\\u2028"}'
    name = server.add_scenario(reply="<b>&</b>", chunk="char")
    response = post(server, "/api/generate", {"model": name, "prompt": "hi"})
    assert b'"response":"\\u003c"' in response.body
    assert "".join(json.loads(line).get("response", "") for line in lines(response)) == "<b>&</b>"


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_an_http_error_is_a_response_error_with_its_status(server: MockServer, stream: bool, connect: Connect) -> None:
    def ask() -> None:
        if stream:
            list(connect("status:503").chat(model="default", messages=HELLO, stream=True))
        else:
            connect("status:503").chat(model="default", messages=HELLO)

    with pytest.raises(ollama.ResponseError) as caught:
        ask()
    assert caught.value.status_code == 503
    assert caught.value.error == "server busy, please try again.  maximum pending requests exceeded"


def test_an_http_error_body_is_ollamas_and_keeps_retry_after(server: MockServer) -> None:
    response = post(server, "/api/chat", {"model": "default", "messages": HELLO}, "status:429")
    assert response.status == 429
    assert response.headers["retry-after"] == "1"
    assert json.loads(response.body) == {"error": "too many requests"}


def test_async_client_raises_the_same_response_error(server: MockServer) -> None:
    async def ask(async_client: ollama.AsyncClient) -> None:
        await async_client.generate(model="default", prompt="hi")

    with pytest.raises(ollama.ResponseError) as caught:
        asyncio.run(in_async_client(server, ask, "status:500"))
    assert (caught.value.status_code, caught.value.error) == (500, MID_STREAM_ERROR)


def test_an_unknown_scenario_is_a_404_listing_the_known(server: MockServer, connect: Connect) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        connect(headers={"X-Mock-Scenario": "goldne"}).chat(model="default", messages=HELLO)
    assert caught.value.status_code == 404
    assert "Did you mean 'golden'" in caught.value.error


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"think": "loud"}, "`think` must be"),
        ({"stream": "yes"}, "`stream` must be a boolean"),
        ({"model": 5}, "`model`"),
    ],
)
def test_a_bad_field_is_a_400_naming_it(server: MockServer, body: dict[str, Any], says: str) -> None:
    response = httpx.post(server.url + "/api/chat", json={"model": "default", "messages": HELLO, **body})
    assert response.status_code == 400
    assert says in response.json()["error"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_mid_stream_error_is_a_line_of_its_own_and_the_end(server: MockServer, mode: str, connect: Connect) -> None:
    if mode == "sync":
        with pytest.raises(ollama.ResponseError) as caught:
            chat_text(connect, "error@2")
        assert received(caught) == "You said:"
    else:

        async def stream(async_client: ollama.AsyncClient) -> None:
            async for _ in await async_client.chat(model="default", messages=HELLO, stream=True):
                pass

        with pytest.raises(ollama.ResponseError) as caught:
            asyncio.run(in_async_client(server, stream, "error@2"))
    assert (caught.value.error, caught.value.status_code) == (MID_STREAM_ERROR, -1)
    response = post(server, "/api/chat", {"model": "default", "messages": HELLO}, "error@2:It broke")
    assert lines(response)[-1] == b'{"error":"It broke"}\n'
    assert response.ending is Ending.COMPLETE


def test_an_error_in_a_whole_answer_is_a_500(server: MockServer, connect: Connect) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        connect("error@2").chat(model="default", messages=HELLO)
    assert (caught.value.status_code, caught.value.error) == (500, MID_STREAM_ERROR)


# --- every fault, as the client meets it --------------------------------------------------------------


def test_drop_cuts_the_stream_between_lines(server: MockServer, connect: Connect) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        chat_text(connect, "drop@2")
    assert received(caught) == "You said:"
    response = post(server, "/api/chat", {"model": "default", "messages": HELLO}, "drop@2")
    assert response.ending is Ending.EOF
    assert response.body.endswith(b"}\n")
    assert b'"done":true' not in response.body


def test_a_raw_step_before_a_drop_cuts_inside_a_line(server: MockServer, connect: Connect) -> None:
    name = server.add_scenario(
        steps=[{"text": "Hi"}, {"raw": '{"model":"x","message":{"content":" the'}, {"drop": True}]
    )
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        chat_text(connect, model=name)
    assert received(caught) == "Hi"
    response = post(server, "/api/chat", {"model": name, "messages": HELLO})
    assert response.ending is Ending.EOF
    assert lines(response)[-1] == b'{"model":"x","message":{"content":" the'


def test_reset_aborts_the_read(server: MockServer, connect: Connect) -> None:
    with pytest.raises(httpx.ReadError) as caught:
        chat_text(connect, "reset@2")
    assert received(caught) == "You said:"


@pytest.mark.parametrize("fault", ["close@2", "no_done"])
def test_close_and_no_done_end_cleanly_without_the_done_line(server: MockServer, fault: str, connect: Connect) -> None:
    text, chunks = chat_text(connect, fault)
    assert text == ("You said:" if fault == "close@2" else "You said: hello")
    assert not any(c.done for c in chunks)
    response = post(server, "/api/chat", {"model": "default", "messages": HELLO}, fault)
    assert response.ending is Ending.COMPLETE
    assert all(json.loads(line)["done"] is False for line in lines(response))


@pytest.mark.parametrize("data", [None, "{not json"])
def test_malformed_is_a_line_that_is_not_json(server: MockServer, data: str | None, connect: Connect) -> None:
    fault = "malformed@1" + (f":{data}" if data else "")
    with pytest.raises(json.JSONDecodeError):
        chat_text(connect, fault)
    response = post(server, "/api/chat", {"model": "default", "messages": HELLO}, fault)
    broken = lines(response)[1]
    if data is None:  # a piece of this stream cut off inside its content string
        assert broken.endswith(b'"message":{"role":"assistant","content":"\n')
        assert broken.startswith(lines(response)[0][:40])
    else:
        assert broken == b"{not json\n"
    assert b'"done":true' in lines(response)[-1]


def test_unknown_event_is_a_line_with_fields_the_client_ignores(server: MockServer, connect: Connect) -> None:
    text, chunks = chat_text(connect, "unknown_event@1")
    assert text == "You said: hello"
    assert len(chunks) == 5
    response = post(server, "/api/generate", {"model": "default", "prompt": "hi"}, "unknown_event@1")
    unknown = json.loads(lines(response)[1])
    assert (unknown["remote_model"], unknown["response"], unknown["done"]) == ("default", "", False)


def test_duplicate_sends_a_line_twice(server: MockServer, connect: Connect) -> None:
    text, _ = chat_text(connect, "duplicate@1")
    assert text == "You said: said: hello"
    response = post(server, "/api/chat", {"model": "default", "messages": HELLO}, "duplicate@1")
    assert lines(response)[1] == lines(response)[2]


def test_split_cuts_a_line_and_a_character_across_writes(server: MockServer, connect: Connect) -> None:
    name = server.add_scenario(reply="Grüße aus Zürich")
    body = {"model": name, "messages": HELLO}
    response = post(server, "/api/chat", body, "split@2:4")
    writes = [chunk for _, chunk in response.chunks]
    assert any(not chunk.endswith(b"\n") for chunk in writes), "a line was cut between writes"
    assert any(_cuts_a_character(chunk) for chunk in writes), "a character was cut between writes"
    assert chat_text(connect, "split@2:4", model=name)[0] == "Grüße aus Zürich"


def _cuts_a_character(chunk: bytes) -> bool:
    try:
        chunk.decode()
    except UnicodeDecodeError:
        return True
    return False


def test_an_endless_stall_is_a_read_timeout(server: MockServer, connect: Connect) -> None:
    with pytest.raises(httpx.ReadTimeout) as caught:
        for _ in connect("stall@1", timeout=0.3).chat(model="default", messages=HELLO, stream=True):
            pass
    assert isinstance(caught.value, httpx.ReadTimeout)


@pytest.mark.parametrize("fault", ["stall@1:300", "delay@1:300"])
def test_a_timed_stall_or_delay_holds_the_rest_back(server: MockServer, fault: str, connect: Connect) -> None:
    started = time.monotonic()
    assert chat_text(connect, fault)[0] == "You said: hello"
    assert time.monotonic() - started >= 0.3


# --- what exists only in SSE --------------------------------------------------------------------------


@pytest.fixture
def sse_minded(server: MockServer) -> str:
    """A scenario written for SSE clients: ids, `retry:`, keep-alive pings, a comment and a raw event."""
    return server.add_scenario(
        steps=[{"comment": "warming up"}, {"event": {"event": "note", "data": '{"note":1}'}}, {"text": "Hi"}],
        ids=True,
        retry_ms=1000,
        keepalive_ms=50,
        first_chunk_ms=200,
    )


def test_ids_retry_pings_and_comments_are_left_out_of_ndjson(server: MockServer, sse_minded: str) -> None:
    response = post(server, "/api/chat", {"model": sse_minded, "messages": HELLO}, **{"X-Mock-Chunk-Ms": "200"})
    assert json.loads(lines(response)[0]) == {"note": 1}  # a raw event is its data alone
    assert len(lines(response)) == 3
    record = server.records()[-1]
    assert (record.ids, record.last_id_sent, record.retry_ms, record.events_sent) == (False, None, None, 3)


def test_last_event_id_does_not_resume_an_ndjson_stream(server: MockServer, sse_minded: str) -> None:
    body = {"model": sse_minded, "messages": HELLO}
    resumed = post(server, "/api/chat", body, **{"Last-Event-ID": "2"})
    assert (resumed.status, len(lines(resumed))) == (200, 3)


# --- the model list -----------------------------------------------------------------------------------


def test_every_scenario_is_a_model_as_v1_models_lists_them(server: MockServer, connect: Connect) -> None:
    listed = [model.model for model in connect().list().models]
    assert listed == [model["id"] for model in httpx.get(server.url + "/v1/models").json()["data"]]
    assert listed == sorted(scenario["name"] for scenario in httpx.get(server.url + "/_mock/scenarios").json())
    assert "golden" in listed


def test_show_describes_a_scenario_and_is_a_404_for_any_other_model(server: MockServer, connect: Connect) -> None:
    shown = connect().show("golden")
    assert shown.capabilities == ["completion", "tools", "thinking"]
    assert "FROM golden" in (shown.modelfile or "")
    with pytest.raises(ollama.ResponseError) as caught:
        connect().show("llama3.2")
    assert (caught.value.status_code, caught.value.error) == (404, "model 'llama3.2' not found")


def test_the_listing_routes_want_the_token_when_one_is_required(make_server: Any) -> None:
    locked = make_server(require_auth="s3cret")
    without, with_token = (
        ollama.Client(host=locked.url),
        ollama.Client(host=locked.url, headers={"Authorization": "Bearer s3cret"}),
    )
    try:
        with pytest.raises(ollama.ResponseError) as caught:
            without.list()
        assert caught.value.status_code == 401
        assert with_token.list().models
        assert with_token.show("golden").capabilities
    finally:
        without.close()  # type: ignore[no-untyped-call]
        with_token.close()  # type: ignore[no-untyped-call]
