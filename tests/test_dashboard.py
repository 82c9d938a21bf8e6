"""The dashboard's server side: the page and its files, the live feed (`/_mock/ui/feed`), a record's
frames rendered again (`/_mock/requests/{id}/frames`), and the admin token on each."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest

from mock_server.http.app import create_app
from mock_server.settings import Settings
from tests import wire
from tests.conftest import wait_until
from tests.model_requests import BODY_ENDPOINTS

TOKEN = "s3cret"
FEED_LEAVES_OUT = ("body", "headers", "thresholds", "tools")


def same_second(text: str) -> str:
    """`text` with its moments blanked: a response made again is made at the second its request was
    received, which the first one may have passed."""
    return re.sub(r'"(created|created_at)":("[^"]*"|\d+)', r'"\1":0', text)


def read_events(lines: Iterator[str]) -> list[tuple[str, Any]]:
    """The SSE events in `lines` (to their end), as (kind, data)."""
    events = []
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((kind, json.loads(line.removeprefix("data: "))))
    return events


def feed_events(url: str, *, headers: dict[str, str] | None = None, max_s: float = 1.0) -> list[tuple[str, Any]]:
    """Every event of a feed that lasts `max_s`, in order, as (kind, data)."""
    with httpx.stream("GET", f"{url}/_mock/ui/feed", params={"max_s": max_s}, headers=headers, timeout=10) as feed:
        assert feed.status_code == 200
        assert feed.headers["content-type"].startswith("text/event-stream")
        return read_events(feed.iter_lines())


def test_the_page_and_its_files_are_served_from_the_package(make_server):
    server = make_server()
    page = httpx.get(server.url + "/_mock/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        assert f"/_mock/ui/{name}" in page.text
        asset = httpx.get(f"{server.url}/_mock/ui/{name}")
        assert (asset.status_code, asset.headers["content-type"].split(";")[0]) == (200, kind)
    assert "http://" not in page.text.replace("http://www.w3.org", ""), "nothing from another server"
    assert httpx.get(server.url + "/_mock/ui/secrets.txt").status_code == 404


def test_feed_sends_the_records_in_flight_and_ended_the_verdict_and_an_end(make_server):
    server = make_server()
    wire.fetch(server.url + "/completions?messages=before&chunk_ms=0")
    with httpx.stream("GET", f"{server.url}/_mock/ui/feed", params={"max_s": 3}, timeout=10) as feed:
        lines = feed.iter_lines()
        assert next(lines) == "event: hello"
        wire.fetch(server.url + "/completions?messages=during&fault=drop@3&chunk_ms=100")
        events = read_events(lines)
    records = [data for kind, data in events if kind == "record"]
    assert [r["prompt"] for r in records if r["outcome"] is not None] == ["before", "during"]
    during = [r for r in records if r["prompt"] == "during"]
    assert during[-1]["outcome"] == "dropped"
    assert during[-1]["events_timing"]["due_ms"], "the timeline's facts travel with the record"
    assert during[-1]["query"]["fault"] == "drop@3"
    journal = {record["id"]: record for record in httpx.get(server.url + "/_mock/requests").json()}
    for sent in (r for r in records if r["outcome"] is not None):
        kept = {name: value for name, value in journal[sent["id"]].items() if name not in FEED_LEAVES_OUT}
        assert {name: value for name, value in sent.items() if name != "request_headers"} == kept
    verdicts = [data for kind, data in events if kind == "verdict"]
    assert verdicts
    assert verdicts[-1]["calls"] == [[1], [2]]
    assert events[-1][0] == "end"
    assert "max_s" in events[-1][1]["reason"]


def test_feed_sends_a_record_again_when_it_ends(make_server):
    server = make_server()
    with httpx.stream("GET", f"{server.url}/_mock/ui/feed", params={"max_s": 2.5}, timeout=10) as feed:
        wire.fetch(server.url + "/completions?messages=slow&chunk_ms=300")
        seen = [json.loads(line[6:]) for line in feed.iter_lines() if line.startswith('data: {"id"')]
    outcomes = [record["outcome"] for record in seen]
    assert outcomes[-1] == "completed"
    assert len(seen) <= 3, "sent when new, and again when it changed, not every poll"


def test_feed_tells_which_records_the_journal_no_longer_holds(make_server):
    server = make_server()
    wire.fetch(server.url + "/completions?messages=cleared+soon&chunk_ms=0")
    with httpx.stream("GET", f"{server.url}/_mock/ui/feed", params={"max_s": 3}, timeout=10) as feed:
        lines = feed.iter_lines()
        assert next(lines) == "event: hello"
        httpx.delete(server.url + "/_mock/requests").raise_for_status()
        wire.fetch(server.url + "/completions?messages=after+the+clear&chunk_ms=0")
        events = read_events(lines)
    kept = [data for kind, data in events if kind == "kept"]
    assert kept[0] == {"oldest": 1}
    assert kept[-1] == {"oldest": 2}
    assert [data["prompt"] for kind, data in events if kind == "record"] == ["cleared soon", "after the clear"]


def test_feed_and_frames_need_the_admin_token_the_page_does_not(make_server):
    server = make_server(admin_token=TOKEN)
    assert httpx.get(server.url + "/_mock/ui").status_code == 200
    for path in ("/_mock/ui/feed?max_s=0.1", "/_mock/requests/1/frames"):
        refused = httpx.get(server.url + path, headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401
        assert "the token is wrong" in refused.json()["error"]["message"]
        assert httpx.get(server.url + path).status_code == 401
        assert httpx.get(server.url + path.replace("?", f"?token={TOKEN}&")).status_code == 401, "never from a URL"
    events = feed_events(server.url, headers={"Authorization": f"Bearer {TOKEN}"}, max_s=0.3)
    assert [kind for kind, _ in events] == ["hello", "verdict", "end"]


def test_feed_answers_head_with_its_head_alone(make_server):
    server = make_server()
    head = httpx.head(server.url + "/_mock/ui/feed", timeout=5)
    assert (head.status_code, head.headers["content-type"].split(";")[0]) == (200, "text/event-stream")


def test_feed_is_refused_to_a_page_of_another_origin(make_server):
    server = make_server()
    refused = httpx.get(server.url + "/_mock/ui/feed", headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
def test_feed_ends_when_its_client_leaves_and_leaves_no_task_behind(spec_version):
    app = create_app(Settings(access_log=False))
    sent: list[bytes] = []

    async def main() -> set[asyncio.Task[Any]]:
        left = asyncio.Event()

        async def receive() -> MutableMapping[str, Any]:
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message.get("body", b""))
            if b"event: verdict" in message.get("body", b""):
                left.set()  # the client reads the start of the feed, then leaves

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": spec_version},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/_mock/ui/feed",
            "raw_path": b"/_mock/ui/feed",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:8383")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8383),
        }
        before = asyncio.all_tasks()
        started = time.monotonic()
        await asyncio.wait_for(app(scope, receive, send), 5)
        assert time.monotonic() - started < 2, "the feed noticed its client leaving within a few polls"
        return asyncio.all_tasks() - before

    assert asyncio.run(main()) == set()
    assert any(b"event: hello" in body for body in sent)
    assert not any(b"event: end" in body for body in sent)


def test_frames_render_the_bytes_the_client_received(make_server):
    server = make_server()
    received = wire.fetch(server.url + "/completions?messages=the+same+bytes&chunk_ms=0&seed=7")
    record_id = received.headers["x-mock-request-id"]
    frames = httpx.get(f"{server.url}/_mock/requests/{record_id}/frames").json()
    assert frames["status"] == 200
    assert ["x-mock-request-id", record_id] in frames["headers"]
    writes = [op for op in frames["ops"] if op["op"] == "write"]
    rendered = "".join(op["data"] for op in writes)

    assert same_second(rendered) == same_second(received.text)
    assert sum(op["events"] for op in writes) == len(received.events)
    assert frames["notes"]
    assert [r["prompt"] for r in httpx.get(server.url + "/_mock/requests").json()] == ["the same bytes"], (
        "rendering again journals nothing"
    )


def test_frames_show_where_the_fault_cuts_the_stream(make_server):
    server = make_server()
    received = wire.fetch(server.url + "/completions?messages=cut+me+short+please&fault=drop@3&chunk_ms=10")
    frames = httpx.get(f"{server.url}/_mock/requests/{received.headers['x-mock-request-id']}/frames").json()
    ops = [op["op"] for op in frames["ops"]]
    assert ops[-1] == "drop"
    assert ops.count("write") == 3
    assert frames["ops"][-1]["at_ms"] == pytest.approx(30)


def test_frames_of_a_record_the_journal_does_not_hold_are_a_404(make_server):
    server = make_server()
    missing = httpx.get(server.url + "/_mock/requests/42/frames")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "record_not_found"


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=lambda e: e.id)
def test_frames_render_every_endpoints_bytes_again(server, endpoint):
    received = wire.fetch(
        server.url + endpoint.target("default"), method="POST", body=endpoint.body("default", prompt="same again")
    )
    record_id = received.headers["x-mock-request-id"]
    frames = httpx.get(f"{server.url}/_mock/requests/{record_id}/frames").json()
    rendered = "".join(op["data"] for op in frames["ops"] if op["op"] == "write")
    assert frames["status"] == received.status
    assert same_second(rendered) == same_second(received.text)


def test_a_stopping_server_ends_its_feeds_at_once_with_an_end_event(make_server):
    server = make_server()
    lines: list[str] = []

    def read() -> None:
        with httpx.stream("GET", server.url + "/_mock/ui/feed", timeout=30) as feed:
            for line in feed.iter_lines():
                lines.append(line)

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: "event: verdict" in lines or None, "the feed to start")
    started = time.monotonic()
    server.stop()
    reader.join(10)
    assert time.monotonic() - started < 2, "not held for the shutdown's grace time"
    assert read_events(iter(lines))[-1] == ("end", {"reason": "the server is stopping"})


def test_frames_say_when_the_rendering_differs_from_the_record(make_server):
    server = make_server()
    url = server.url + "/completions?messages=twice&chunk_ms=0&fault=status:429!times=1"
    first, second = wire.fetch(url), wire.fetch(url)
    assert (first.status, second.status) == (429, 200)
    frames = httpx.get(f"{server.url}/_mock/requests/{second.headers['x-mock-request-id']}/frames").json()
    assert frames["status"] == 429, "a counted fault counts as on a fresh server"
    assert "answered 429 where the record says 200" in frames["notes"][-1]


@pytest.fixture
def state_spec(every_state: str) -> str:
    """The dashboard reads records through the state: its tests run against each state store."""
    return every_state
