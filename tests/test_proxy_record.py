"""The proxy, its faults on live streams, the recorder and replay, against a real local upstream: a
second MockServer, whose journal shows what was forwarded to it."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from mock_server.http.server import MockServer
from mock_server.settings import Settings
from mock_server.wire.tcp import FRAMED_APART_BYTES
from tests.conftest import recorded, wait_until
from tests.wire import Ending, fetch, segments_until_first_event, segments_until_the_end

CHAT = "/v1/chat/completions"
SECRET = "sk-live-do-not-write-1234567890"


def body(prompt: str = "hello there friend", **fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": prompt}], **fields}


@pytest.fixture
def upstream() -> Iterator[MockServer]:
    """The upstream: paced, with its clock pinned so the same request gets the same bytes."""
    settings = Settings(port=0, access_log=False, wall_clock=lambda: 1_700_000_000.0)
    with MockServer(settings=settings) as server:
        server.add_scenario("paced", reply="{prompt}", chunk_ms=20, match={"prompt": "^paced"})
        yield server


def proxy(upstream: MockServer, **settings: Any) -> MockServer:
    return MockServer(settings=Settings(port=0, access_log=False, upstream=upstream.url, **settings))


def events_of(text: str) -> list[str]:
    return [block for block in text.split("\n\n") if block]


def test_the_proxy_passes_the_upstream_stream_on_byte_for_byte(upstream: MockServer) -> None:
    direct = httpx.post(upstream.url + CHAT, json=body())
    with proxy(upstream) as server:
        proxied = httpx.post(server.url + CHAT, json=body())
        record = server.records()[-1]
    assert proxied.status_code == 200
    assert proxied.content == direct.content
    assert proxied.headers["content-type"] == direct.headers["content-type"]
    assert (record.scenario, record.upstream_status) == ("upstream", 200)
    assert record.upstream_head_ms is not None
    assert record.upstream_head_ms >= 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts TCP segments with Linux's TCP_INFO")
def test_a_streams_head_and_first_event_go_out_in_one_packet(upstream: MockServer) -> None:
    # Each event after the first comes 300 ms later: only the head and the first can share a packet.
    slow = "?chunk_ms=300"
    segments, data = segments_until_first_event(upstream.url + CHAT + slow, body())
    assert data.startswith(b"HTTP/1.1 200 ")
    assert segments == 1
    with proxy(upstream) as server:
        segments, data = segments_until_first_event(server.url + CHAT + slow, body())
    assert data.startswith(b"HTTP/1.1 200 ")
    assert segments == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts TCP segments with Linux's TCP_INFO")
@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxied"])
def test_an_unpaced_stream_goes_out_in_one_packet_head_events_and_end(upstream: MockServer, proxied: bool) -> None:
    # The upstream's whole response comes in one read: the proxy passes it on in one write, its end included.
    upstream.add_scenario("unpaced", reply="{prompt}", match={"prompt": "^unpaced"})
    with proxy(upstream) as server:
        url = server.url if proxied else upstream.url
        segments, data = segments_until_the_end(url + CHAT, body("unpaced reply"))
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    assert segments == 1


def test_a_long_unpaced_stream_passes_on_in_large_chunks_and_counts_every_event(upstream: MockServer) -> None:
    # Read from the upstream hundreds of kilobytes at a time, each read cut inside an event.
    upstream.add_scenario("long", reply=" ".join(f"word{i}" for i in range(4000)), match={"prompt": "^long"})
    direct = fetch(upstream.url + CHAT, method="POST", body=body("long reply"))
    with proxy(upstream) as server:
        proxied = fetch(server.url + CHAT, method="POST", body=body("long reply"))
        record = server.records()[-1]
    assert (proxied.ending, proxied.body) == (Ending.COMPLETE, direct.body)
    assert max(len(chunk) for _, chunk in proxied.chunks) >= FRAMED_APART_BYTES
    assert record.events_sent == len(events_of(direct.body.decode()))


def test_a_head_with_no_event_at_once_is_not_held_back_for_one(upstream: MockServer) -> None:
    upstream.add_scenario("late", reply="{prompt}", first_chunk_ms=3000, match={"prompt": "^late"})
    with proxy(upstream) as server:
        for url in (upstream.url, server.url):
            got = fetch(url + CHAT, method="POST", body=body("late reply"), read_for=1.5)
            assert got.status == 200
            assert got.head_at < 1.0
            assert got.body == b""


def test_our_headers_and_parameters_stay_here_the_rest_goes_upstream(upstream: MockServer) -> None:
    with proxy(upstream) as server:
        httpx.post(
            server.url + CHAT + "?fault=delay@1:1&seed=3&api-version=2024",
            json=body(),
            headers={"Authorization": f"Bearer {SECRET}", "X-Mock-Fault": "delay@2:1", "X-Custom": "kept"},
        )
    (seen,) = upstream.records()
    assert seen.query == {"api-version": "2024"}
    assert seen.headers["x-custom"] == "kept"
    assert seen.headers["authorization"].startswith("Bearer sk-")  # masked in the upstream's journal
    assert not [name for name in seen.headers if name.startswith("x-mock-")]
    assert seen.body == body()


def test_an_sdk_streams_through_the_proxy(upstream: MockServer) -> None:
    with proxy(upstream) as server, openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as client:
        stream = client.chat.completions.create(**body(), extra_headers={"X-Mock-Fault": "drop@3"})
        received: list[str] = []

        def read() -> None:
            received.extend(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

        with pytest.raises(openai.APIConnectionError):
            read()
    assert "".join(received) == "You said:"


def test_drop_cuts_the_live_stream_after_the_nth_upstream_event(upstream: MockServer) -> None:
    with proxy(upstream) as server:
        cut = fetch(server.url + CHAT + "?fault=drop@3", method="POST", body=body())
        record = wait_until(lambda: next((r for r in server.records() if r.outcome), None), "the proxied record")
    full = httpx.post(upstream.url + CHAT, json=body()).text
    assert cut.ending is Ending.EOF
    assert cut.text == "".join(f"{e}\n\n" for e in events_of(full)[:3])
    assert (record.outcome, record.events_sent) == ("dropped", 3)


def test_error_and_duplicate_strike_between_upstream_events(upstream: MockServer) -> None:
    full = events_of(httpx.post(upstream.url + CHAT, json=body()).text)
    with proxy(upstream) as server:
        errored = events_of(httpx.post(server.url + CHAT, json=body(), headers={"X-Mock-Fault": "error@2"}).text)
        doubled = events_of(httpx.post(server.url + CHAT, json=body(), headers={"X-Mock-Fault": "duplicate@1"}).text)
    assert errored[:2] == full[:2]
    assert '"error"' in errored[2]
    assert "server_error" in errored[2]
    assert len(errored) == 3
    assert doubled == [full[0], full[1], *full[1:]]


def test_forwarded_requests_share_one_compiled_timeline_whatever_their_prompts(upstream: MockServer) -> None:
    with proxy(upstream) as server:
        assert server.app is not None
        cached = []
        for prompt in ("first prompt", "another prompt", "a third one"):
            assert httpx.post(server.url + CHAT, json=body(prompt)).status_code == 200
            cached.append(server.app.state.caches.timelines.bytes)
    assert cached[0] > 0
    assert cached == [cached[0]] * 3


def test_stall_and_delay_hold_the_live_stream(upstream: MockServer) -> None:
    with proxy(upstream) as server:
        held = httpx.post(server.url + CHAT, json=body(), headers={"X-Mock-Fault": "stall@2:300,delay@3:300"})
    assert held.elapsed.total_seconds() >= 0.55
    assert held.text == httpx.post(upstream.url + CHAT, json=body()).text


@pytest.mark.parametrize("fault", ["status:429", "reset@head"])
def test_faults_before_the_head_do_not_call_the_upstream(upstream: MockServer, fault: str) -> None:
    with proxy(upstream) as server:
        try:
            answer = httpx.post(server.url + CHAT, json=body(), headers={"X-Mock-Fault": fault})
            assert answer.status_code == 429
        except httpx.TransportError:
            assert fault == "reset@head"
    assert upstream.records() == []


def test_an_upstream_error_status_passes_through_unchanged(upstream: MockServer) -> None:
    direct = httpx.post(upstream.url + CHAT, json=body(), headers={"X-Mock-Fault": "status:503"})
    with proxy(upstream) as server:
        passed = httpx.post(server.url + CHAT, json=body(), params={"x": "1"}, headers={"X-Custom-Fault": "no"})
        upstream.add_scenario("down", status=503, match={"prompt": "^down"})
        failed = httpx.post(server.url + CHAT, json=body("down"))
        record = server.records()[-1]
    assert passed.status_code == 200
    assert failed.status_code == 503 == direct.status_code
    assert failed.json() == httpx.post(upstream.url + CHAT, json=body("down")).json()
    assert (record.status, record.upstream_status, record.outcome) == (503, 503, "error_status")


def test_an_unreachable_upstream_is_a_502_naming_it() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings = Settings(port=0, access_log=False, upstream=f"http://127.0.0.1:{port}")
    with MockServer(settings=settings) as server:
        answer = httpx.post(server.url + CHAT, json=body())
        record = server.records()[-1]
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert f"127.0.0.1:{port}" in error["message"]
    assert (record.status, record.upstream_status) == (502, None)


def test_a_recording_holds_no_secret_and_replays_the_same_bytes(upstream: MockServer, tmp_path: Path) -> None:
    with proxy(upstream, record_dir=tmp_path) as server:
        first = httpx.post(
            server.url + CHAT + f"?api_key={SECRET}",
            json=body("paced reply"),
            headers={"Authorization": f"Bearer {SECRET}", "x-api-key": SECRET, "Cookie": f"s={SECRET}"},
        )
        (written,) = recorded(server, tmp_path)
        again = httpx.post(server.url + CHAT, json=body("paced reply"))
        records = server.records()
    assert len(upstream.records()) == 1, "the second request was replayed, not forwarded"
    assert again.content == first.content
    assert records[-1].scenario == written.stem
    assert records[-1].upstream_status is None
    text = written.read_text(encoding="utf-8")
    assert SECRET not in text
    assert "sk-live" not in text
    recording = yaml.safe_load(text)["recording"]
    assert [event["at_ms"] for event in recording["events"]] == sorted(e["at_ms"] for e in recording["events"])
    assert recording["events"][-1]["at_ms"] >= 30  # the upstream paced its chunks 20 ms apart


def test_a_replayed_recording_takes_faults_and_speed(upstream: MockServer, tmp_path: Path) -> None:
    with proxy(upstream, record_dir=tmp_path) as server:
        first = httpx.post(server.url + CHAT, json=body("paced reply")).text
        recorded(server, tmp_path)
    (file,) = tmp_path.glob("*.yaml")
    document = yaml.safe_load(file.read_text(encoding="utf-8"))
    file.write_text(yaml.safe_dump({**document, "speed": 0}), encoding="utf-8")
    offline = Settings(port=0, access_log=False, scenario_dirs=(tmp_path,), record_dir=tmp_path, record_mode="none")
    with MockServer(settings=offline) as server:
        fast = httpx.post(server.url + CHAT, json=body("paced reply"))
        cut = fetch(server.url + CHAT, method="POST", body=body("paced reply"), headers={"X-Mock-Fault": "drop@2"})
        unknown = httpx.post(server.url + CHAT, json=body("never recorded"))
    assert fast.text == first
    assert fast.elapsed.total_seconds() < 0.5
    assert cut.ending is Ending.EOF
    assert cut.text == "".join(f"{e}\n\n" for e in events_of(first)[:2])
    assert unknown.status_code == 404
    error = unknown.json()["error"]
    assert error["code"] == "no_recording"
    assert "never recorded" in error["message"]
    assert file.stem in error["message"]


def test_settings_refuse_upstream_flags_without_an_upstream(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--upstream-only needs --upstream"):
        Settings(upstream_only=True)
    with pytest.raises(ValueError, match="needs --upstream URL to record from"):
        Settings(record_dir=tmp_path)
    with pytest.raises(ValueError, match="not an http:// or https:// URL"):
        Settings(upstream="ftp://example.test")
    (tmp_path / "not-a-ca.pem").write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="no CA certificate could be read"):
        Settings(upstream="https://example.test", upstream_ca=tmp_path / "not-a-ca.pem")
    Settings(record_dir=tmp_path, record_mode="none")


@pytest.mark.parametrize(("kind", "ending"), [("drop", Ending.EOF), ("reset", Ending.RESET)])
def test_an_upstream_that_breaks_mid_stream_breaks_the_client_stream_the_same_way(
    upstream: MockServer, kind: str, ending: Ending
) -> None:
    upstream.add_scenario(
        "breaks", reply="one two three four", faults=[{"kind": kind, "at": 2}], match={"prompt": "^breaks"}
    )
    with proxy(upstream) as server:
        cut = fetch(server.url + CHAT, method="POST", body=body("breaks now"))
        record = wait_until(lambda: next((r for r in server.records() if r.outcome), None), "the proxied record")
    assert cut.ending is ending
    assert len(cut.events) == 3  # the role chunk, then "one" and " two"
    assert record.outcome == ("dropped" if kind == "drop" else "reset")


def test_an_upstream_that_sends_no_head_in_time_is_a_504() -> None:
    with socket.socket() as silent:  # takes connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = Settings(port=0, access_log=False, upstream=url, upstream_timeout_s=0.3)
        with MockServer(settings=settings) as server:
            answer = httpx.post(server.url + CHAT, json=body())
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "upstream_timeout"
    assert url in answer.json()["error"]["message"]


def test_a_proxy_scenario_adds_its_faults_to_the_live_stream(upstream: MockServer) -> None:
    with proxy(upstream) as server:
        server.add_scenario("live-cut", proxy=True, faults=[{"kind": "drop", "at": 2}], match={"prompt": "^cut me"})
        cut = fetch(server.url + CHAT, method="POST", body=body("cut me please"))
        whole = fetch(server.url + CHAT, method="POST", body=body("leave me"))
    assert (cut.ending, len(cut.events)) == (Ending.EOF, 2)
    assert whole.ending is Ending.COMPLETE
    assert [r.prompt for r in upstream.records()] == ["cut me please", "leave me"]


def test_upstream_only_forwards_even_what_a_scenario_answers(upstream: MockServer) -> None:
    with proxy(upstream, upstream_only=True) as server:
        httpx.post(server.url + CHAT, json=body(), headers={"X-Mock-Scenario": "tool-call"})
        (record,) = server.records()
    assert record.scenario == "upstream"
    assert len(upstream.records()) == 1


def test_record_mode_all_forwards_and_records_again(upstream: MockServer, tmp_path: Path) -> None:
    with proxy(upstream, record_dir=tmp_path, record_mode="all") as server:
        for _ in range(2):
            httpx.post(server.url + CHAT, json=body())
            recorded(server, tmp_path)
    assert len(upstream.records()) == 2
    assert len(list(tmp_path.glob("*.yaml"))) == 1, "the same request is recorded under the same name"


def test_a_whole_json_response_passes_through_and_faults_count_its_bytes(upstream: MockServer, tmp_path: Path) -> None:
    whole = body(stream=False)
    direct = httpx.post(upstream.url + CHAT, json=whole)
    with proxy(upstream, record_dir=tmp_path) as server:
        passed = httpx.post(server.url + CHAT, json=whole)
        cut = fetch(server.url + CHAT + "?fault=drop@10", method="POST", body=body("another", stream=False))
    assert passed.json() == direct.json()
    assert passed.headers["content-type"] == "application/json"
    assert (cut.ending, len(cut.body)) == (Ending.EOF, 10)


def test_a_recording_is_an_ordinary_scenario_file(upstream: MockServer, tmp_path: Path) -> None:
    with proxy(upstream, record_dir=tmp_path) as server:
        httpx.post(server.url + CHAT, json=body())
        (written,) = recorded(server, tmp_path)
    checked = subprocess.run(
        [sys.executable, "-m", "mock_server", "validate", str(written)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "mock_server", "scenarios", "--scenarios", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert written.stem in listed.stdout


def test_split_writes_a_live_event_in_pieces(upstream: MockServer) -> None:
    with proxy(upstream) as server:
        split = fetch(server.url + CHAT + "?fault=split@1:3", method="POST", body=body())
    whole = events_of(httpx.post(upstream.url + CHAT, json=body()).text)
    pieces = [data for _, data in split.chunks]
    assert split.text == "".join(f"{e}\n\n" for e in whole)
    second = f"{whole[1]}\n\n".encode()
    assert b"".join(pieces[1:4]) == second, "the second event came in three writes"
    assert all(piece != second for piece in pieces)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"proxy": True, "steps": [{"text": "hi"}]}, "steps and proxy each say where the response comes from"),
        (
            {"recording": {"events": [{"at_ms": 5, "data": "data: a\n\n"}, {"at_ms": 1, "data": "data: b\n\n"}]}},
            "event 1 arrives at 1 ms, before event 0",
        ),
        ({"recording": {"status": 99}}, "99 is not a status a recording can replay"),
        ({"speed": -1}, "speed"),
    ],
)
def test_recording_and_proxy_fields_are_checked(make_server: Any, fields: dict[str, Any], problem: str) -> None:
    server = make_server()
    answer = httpx.put(server.url + "/_mock/scenarios/bad", json=fields)
    assert answer.status_code == 422
    assert problem in answer.text


def test_a_page_gets_one_set_of_cors_headers_through_the_proxy(upstream: MockServer) -> None:
    origin = {"Origin": "http://app.test"}
    assert httpx.post(upstream.url + CHAT, json=body(), headers=origin).headers.get_list("access-control-allow-origin")
    with proxy(upstream) as server:
        answer = httpx.post(server.url + CHAT, json=body(), headers=origin)
    assert answer.headers.get_list("access-control-allow-origin") == ["http://app.test"]
    assert len(answer.headers.get_list("vary")) <= 1


def test_the_verdict_judges_a_replayed_recording(tmp_path: Path) -> None:
    recording = {
        "match": {"prompt": "^recorded$"},
        "thresholds": {"grace_ms": 100},
        "recording": {"events": [{"at_ms": 0, "data": f"data: {n}\n\n"} for n in range(4)]},
    }
    (tmp_path / "recorded.yaml").write_text(yaml.safe_dump(recording), encoding="utf-8")
    with MockServer(settings=Settings(port=0, access_log=False, scenario_dirs=(tmp_path,))) as server:
        cut = fetch(server.url + CHAT + "?fault=drop@2", method="POST", body=body("recorded"))
        verdict = server.verdict(wait_s=2)
    assert cut.events == ["data: 0", "data: 1"]
    assert [finding.code for finding in verdict.findings] == ["cut_stream_not_retried"]
