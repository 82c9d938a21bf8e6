"""The /_mock/ control API over HTTP, as a test suite in any language would use it."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from mock_server import MockServer, __version__
from mock_server.settings import Settings
from tests.wire import Ending, fetch

TOKEN = "s3cret"


@pytest.fixture
def api(make_server):
    server = make_server()
    with httpx.Client(base_url=server.url + "/_mock") as client:
        yield client


def test_health_counts_the_scenarios_and_names_the_process(api):
    response = api.get("/health")
    body = response.json()
    assert body.pop("instance") == response.headers["x-mock-instance"]
    assert abs(body.pop("started_at") - time.time()) < 600
    assert body == {
        "status": "ok",
        "version": __version__,
        "scenarios": len(api.get("/scenarios").json()),
        "worker": 1,
        "workers": 1,
        "pid": os.getpid(),  # a MockServer serves in a thread of the test's process
    }


def test_put_registers_then_replaces_a_scenario(api):
    created = api.put("/scenarios/greeting", json={"reply": "Hello!", "description": "says hello"})
    assert (created.status_code, created.json()) == (
        201,
        {"name": "greeting", "description": "says hello", "source": "runtime"},
    )
    assert api.put("/scenarios/greeting", json={"reply": "Hi again!"}).status_code == 200
    assert {"name": "greeting", "description": "", "source": "runtime"} in api.get("/scenarios").json()
    stream = fetch(f"{api.base_url.copy_with(path='/completions')}?messages=x&scenario=greeting")
    assert stream.content() == "Hi again!"


def test_put_accepts_yaml_by_content_type(api):
    body = "reply: from yaml\nchunk: char\n"
    response = api.put("/scenarios/yaml-one", content=body, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 201
    assert api.get("/scenarios/yaml-one").json()["scenario"] == {
        "name": "yaml-one",
        "reply": "from yaml",
        "chunk": "char",
    }


def test_put_lists_every_problem_with_its_path(api):
    body = {"chunk_ms": -1, "faults": [{"kind": "dorp"}], "replly": "Hi"}
    response = api.put("/scenarios/broken", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_scenario"
    assert "3 problem(s)" in error["message"]
    assert [(p["path"], p["message"]) for p in error["problems"]] == [
        ("chunk_ms", "-1 is less than 0; use a number of milliseconds (0 or more)"),
        (
            "faults.0.kind",
            "'dorp' is not a fault kind; use one of drop, reset, close, error, stall, malformed, split, delay, "
            "status, no_done, duplicate, unknown_event",
        ),
        ("replly", "unknown field 'replly'; did you mean 'reply'?"),
    ]
    assert "broken" not in [s["name"] for s in api.get("/scenarios").json()]


def test_put_problems_name_the_value_given_and_what_is_accepted(api):
    body = {"reply": "x", "chunk": "paragraph", "faults": [{"kind": "explode"}], "steps": [{"sleep_ms": "soon"}]}
    response = api.put("/scenarios/named", content=json.dumps(body, indent=2))
    assert response.status_code == 422
    assert response.json()["error"]["problems"] == [
        {
            "path": "chunk",
            "line": 3,
            "message": "'paragraph' is not a way to chunk a reply; use word, char, or a number of characters "
            "(1 or more)",
        },
        {
            "path": "faults.0.kind",
            "line": 6,
            "message": "'explode' is not a fault kind; use one of drop, reset, close, error, stall, malformed, split, "
            "delay, status, no_done, duplicate, unknown_event",
        },
        {"path": "steps.0.sleep_ms", "line": 11, "message": "'soon' is not a number of milliseconds"},
    ]


def test_put_problems_carry_lines_of_a_pretty_printed_body(api):
    body = json.dumps({"reply": "x", "chunk_ms": "fast"}, indent=2)
    response = api.put("/scenarios/lined", content=body)
    (problem,) = response.json()["error"]["problems"]
    assert (problem["path"], problem["line"]) == ("chunk_ms", 3)


@pytest.mark.parametrize(
    ("name", "body", "path", "message"),
    [
        ("mine", "{not json", "", "invalid JSON: Expecting property name enclosed in double quotes"),
        ("mine", "", "", "a scenario is a mapping of fields, not nothing"),
        ("mine", "[1, 2]", "", "a scenario is a mapping of fields, not list"),
        ("mine", '{"name": "theirs"}', "name", "'theirs' differs from 'mine', the name it is added as"),
        ("bad name!", "{}", "name", "'bad name!' is not a scenario name; use 1 to 128 letters, digits,"),
    ],
    ids=["not-json", "empty", "not-a-mapping", "two-names", "bad-name"],
)
def test_put_refuses_a_body_that_is_no_scenario(api, name, body, path, message):
    response = api.put(f"/scenarios/{name}", content=body)
    assert response.status_code == 422
    (problem,) = response.json()["error"]["problems"]
    assert problem["path"] == path
    assert problem["message"].startswith(message)


def test_get_one_scenario_returns_an_object_put_accepts(api):
    bundled = api.get("/scenarios/mid-stream-drop").json()
    assert bundled["source"].endswith("mid-stream-drop.yaml")
    copy = {**bundled["scenario"], "name": "copy"}
    assert api.put("/scenarios/copy", json=copy).status_code == 201
    assert {**api.get("/scenarios/copy").json()["scenario"], "name": "mid-stream-drop"} == bundled["scenario"]


def test_match_patterns_come_back_as_the_source_they_were_written_as(api):
    match = {"prompt": "(?i)weather", "model": "^gpt-", "headers": {"x-team": "^(red|blue)$"}}
    assert api.put("/scenarios/matched", json={"reply": "Sunny.", "match": match}).status_code == 201
    scenario = api.get("/scenarios/matched").json()["scenario"]
    assert scenario == {"name": "matched", "reply": "Sunny.", "match": match}
    assert api.put("/scenarios/matched", json=scenario).status_code == 200


def test_get_an_unknown_scenario_is_404_with_suggestions(api):
    response = api.get("/scenarios/mid-stream-dorp")
    assert response.status_code == 404
    assert "Did you mean 'mid-stream-drop'?" in response.json()["error"]["message"]


def test_delete_removes_a_runtime_scenario_and_uncovers_the_file_one(api):
    api.put("/scenarios/default", json={"reply": "shadowing the bundled default"})
    assert api.get("/scenarios/default").json()["source"] == "runtime"
    assert api.delete("/scenarios/default").json() == {"deleted": "default"}
    assert api.get("/scenarios/default").json()["source"].endswith("default.yaml")


def test_delete_refuses_a_file_scenario_and_an_unknown_one(api):
    from_file = api.delete("/scenarios/stall")
    assert from_file.status_code == 409
    assert "comes from" in from_file.json()["error"]["message"]
    assert "stall.yaml" in from_file.json()["error"]["message"]
    unknown = api.delete("/scenarios/nope")
    assert unknown.status_code == 404
    assert "Known scenarios:" in unknown.json()["error"]["message"]


def test_requests_since_delete_and_ids_that_go_on(api):
    completions = str(api.base_url.copy_with(path="/completions"))
    for _ in range(3):
        fetch(completions + "?messages=hi&chunk_ms=0")
    assert [r["id"] for r in api.get("/requests", params={"since": 1}).json()] == [2, 3]
    record = api.get("/requests").json()[0]
    assert (record["outcome"], record["path"], record["query"]["messages"]) == ("completed", "/completions", "hi")
    assert api.delete("/requests").json() == {"cleared": 3}
    fetch(completions + "?messages=hi&chunk_ms=0")
    assert [r["id"] for r in api.get("/requests").json()] == [4]


def test_requests_waits_for_a_response_that_is_just_ending(api):
    completions = str(api.base_url.copy_with(path="/completions"))
    for _ in range(3):  # a hang-up reaches the server a moment after the client closes
        response = fetch(completions + "?messages=hi&scenario=paced&chunk_ms=250", max_events=3)
        (record,) = api.get("/requests", params={"since": int(response.headers["x-mock-request-id"]) - 1}).json()
        assert (record["outcome"], record["events_sent"]) == ("client_disconnected", 3)


def test_reset_clears_journal_runtime_scenarios_and_times_counters(api):
    completions = str(api.base_url.copy_with(path="/completions"))
    flaky = {"reply": "ok", "faults": [{"kind": "status", "status": 503, "times": 1}]}
    api.put("/scenarios/fails-first", json=flaky)
    assert [fetch(completions + "?messages=x&scenario=fails-first").status for _ in range(2)] == [503, 200]
    assert api.post("/reset").json() == {"reset": True, "cleared": 2}
    assert api.get("/requests").json() == []
    assert api.get("/scenarios/fails-first").status_code == 404
    api.put("/scenarios/fails-first", json=flaky)
    assert fetch(completions + "?messages=x&scenario=fails-first").status == 503


def test_reset_empties_the_caches(make_server):
    server = make_server()
    for prompt in ("one", "two"):
        assert fetch(server.url + f"/completions?messages={prompt}&chunk_ms=0").status == 200
    state = server.app.state
    assert state.caches.timelines.bytes > 0
    assert state.caches.streams.bytes > 0
    assert httpx.post(server.url + "/_mock/reset").status_code == 200
    assert state.caches.timelines.bytes == state.caches.streams.bytes == 0


WRITES = [
    ("PUT", "/scenarios/x", {"reply": "hi"}),
    ("DELETE", "/scenarios/x", None),
    ("DELETE", "/requests", None),
    ("POST", "/reset", None),
]


@pytest.fixture(scope="module")
def protected():
    """One server with an admin token for the module: refused writes change nothing."""
    server = MockServer(settings=Settings(port=0, admin_token=TOKEN, access_log=False))
    with server, httpx.Client(base_url=server.url + "/_mock") as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
@pytest.mark.parametrize(
    ("authorization", "says"),
    [(None, "it is missing"), ("Bearer wrong", "the token is wrong"), (f"Basic {TOKEN}", "not a Bearer token")],
    ids=["none", "wrong-token", "wrong-scheme"],
)
def test_admin_token_guards_every_write(protected, method, path, body, authorization, says):
    headers = {"Authorization": authorization} if authorization else {}
    response = protected.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["type"] == "unauthorized"
    assert "`Authorization: Bearer <admin token>`" in error["message"]
    assert says in error["message"]


def test_admin_token_lets_writes_through_and_guards_only_the_journal_among_reads(protected):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert protected.put("/scenarios/x", json={"reply": "hi"}, headers=auth).status_code == 201
    assert protected.delete("/scenarios/x", headers=auth).status_code == 200
    assert protected.delete("/requests", headers=auth).status_code == 200
    assert protected.post("/reset", headers=auth).status_code == 200
    for path in ["/health", "/scenarios", "/scenarios/default", "/verdict"]:
        assert protected.get(path).status_code == 200
    assert protected.get("/requests").status_code == 401  # the journal holds what clients sent
    assert protected.get("/requests", headers=auth).status_code == 200


@pytest.mark.parametrize("path", ["/_mock/health", "/_mock/scenarios", "/_mock/requests", "/v1/models", "/"])
def test_head_answers_like_get_without_a_body(server, path):
    got = fetch(server.url + path)
    head = fetch(server.url + path, method="HEAD")
    assert (head.status, head.body) == (got.status, b"")
    assert head.headers["content-type"] == got.headers["content-type"]


def test_head_on_a_stream_answers_its_head_at_once_and_plays_nothing(server):
    head = fetch(server.url + "/completions?messages=hi&chunk_ms=1000", method="HEAD", timeout=5)
    assert head.status == 200
    assert head.headers["content-type"].startswith("text/event-stream")
    assert head.body == b""
    assert head.ending is Ending.COMPLETE
    record = server.records()[-1]
    assert (record.method, record.outcome, record.events_sent) == ("HEAD", "completed", 0)


def test_journal_answers_carry_the_instance_and_refuse_a_since_from_another(api):
    instance = api.get("/health").json()["instance"]
    api.post("/reset")
    for response in (api.get("/requests"), api.get("/verdict")):
        assert response.headers["x-mock-instance"] == instance
        assert float(response.headers["x-mock-started-at"]) > 0
    assert api.get("/requests", params={"since": f"{instance}:0"}).status_code == 200
    for since in ("0123456789ab:0", "99"):
        for path in ("/requests", "/verdict"):
            refused = api.get(path, params={"since": since})
            assert refused.status_code == 409
            error = refused.json()["error"]
            assert (error["type"], error["instance"]) == ("restarted", instance)
            assert "restart" in error["message"]
    assert api.get("/requests", params={"since": "x:"}).status_code == 400


@pytest.fixture
def state_spec(every_state: str) -> str:
    """Every control-API test runs against each state store."""
    return every_state
