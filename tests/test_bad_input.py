"""Every bad input, on every endpoint, is a 4xx in that endpoint's own error shape saying what to fix:
never a 5xx, never a traceback, and the server goes on serving. (Field-by-field body checks live in
test_completions.py and test_v1_requests.py, scenario checks in test_scenario_validation.py and
test_control.py; this file covers what cuts across them.)"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from mock_server.http.server import MockServer
from mock_server.scenarios.catalog import bundled_scenarios_dir
from mock_server.settings import DEFAULT_MAX_BODY_BYTES
from tests.model_requests import ENDPOINTS, Endpoint
from tests.wire import Ending, fetch

MiB = DEFAULT_MAX_BODY_BYTES
ANTHROPIC = {"anthropic-version": "2023-06-01"}


def error_message(response: httpx.Response) -> str:
    """The error's message, checked to be in the shape of the API the request went to."""
    assert "Traceback" not in response.text
    body = response.json()
    path = response.request.url.path
    if path.startswith("/_mock/"):
        assert set(body) == {"error"}
        assert {"type", "message"} <= set(body["error"])
    elif path.startswith("/api/"):  # Ollama's error is its message alone
        assert set(body) == {"error"}
        assert isinstance(body["error"], str)
        return str(body["error"])
    elif path == "/v1/messages" or "anthropic-version" in response.request.headers:
        assert set(body) == {"type", "error"}
        assert set(body["error"]) == {"type", "message"}
    else:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
    message: str = body["error"]["message"]
    return message


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    status: int
    says: str
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def for_each_endpoint(name: str, content: bytes, status: int, says: str) -> list[Case]:
    return [Case(f"{name}-{e.id}", "POST", e.path, status, says, content) for e in ENDPOINTS]


DEEP = b'{"messages": "hi", "tools": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
DEEP_REQUEST = b'{"request": ' * 900 + b'"hi"' + b"}" * 900  # fetch-event-source's nesting, 900 deep
LONG_ECHO = json.dumps(dict.fromkeys(("messages", "prompt", "input"), "hi " * 60000) | {"max_tokens": 5}).encode()
HUGE_NUMBER = b'{"messages": "hi", "max_tokens": 1' + b"0" * 5000 + b"}"

CASES = [
    *for_each_endpoint("not-utf8", b'{"messages": "\xff\xfe"}', 400, "not valid UTF-8"),
    *for_each_endpoint("deep", DEEP, 400, "more than 64 levels deep"),
    *for_each_endpoint("huge-number", HUGE_NUMBER, 400, "a number that cannot be read"),
    *for_each_endpoint("nan", b'{"messages": "hi", "temperature": NaN}', 400, "NaN is not JSON"),
    *for_each_endpoint("infinity", b'{"messages": "hi", "top_p": -Infinity}', 400, "-Infinity is not JSON"),
    *for_each_endpoint("beyond-a-double", b'{"messages": "hi", "top_p": 1e999}', 400, "beyond what a 64-bit float"),
    *for_each_endpoint("over-limit", b"{" + b" " * MiB + b"}", 413, f"larger than this server accepts ({MiB} bytes)"),
    *for_each_endpoint("echo-too-long", LONG_ECHO, 400, "would have more than 50,000 chunks"),
    Case("deep-request", "POST", "/completions", 400, "more than 64 levels deep", DEEP_REQUEST),
    Case("request-wrong-type", "POST", "/completions", 400, "`request` must be a string", b'{"request": 5}'),
    Case("content-wrong-type", "POST", "/completions", 400, "`content` in `messages`",
         b'{"messages": [{"content": 5}]}'),
    Case("legacy-prompt-number", "POST", "/v1/completions", 400, "`prompt` must be", b'{"prompt": 5}'),
    Case("responses-input-number", "POST", "/v1/responses", 400, "`input` must be", b'{"input": 5}'),
    Case("anthropic-model-number", "POST", "/v1/messages", 400, "`model` must be a string",
         b'{"model": 5, "max_tokens": 5, "messages": "hi"}'),
    Case("anthropic-stream-string", "POST", "/v1/messages", 400, "`stream` must be a boolean",
         b'{"stream": "yes", "max_tokens": 5, "messages": "hi"}'),
    Case("get-messages-not-objects", "GET", "/completions?messages=[42]", 400, "`messages[0]` must be an object"),
    Case("unknown-v1-path", "POST", "/v1/chat/completion", 404, "Did you mean /v1/chat/completions?", b"{}"),
    Case("unknown-path-anthropic", "GET", "/v1/message", 404, "There is no /v1/message here", headers=ANTHROPIC),
    Case("unknown-control-path", "GET", "/_mock/request", 404, "Did you mean /_mock/requests?"),
    Case("method-not-allowed", "GET", "/v1/chat/completions", 405, "GET is not allowed on /v1/chat/completions"),
    Case("method-not-allowed-control", "POST", "/_mock/health", 405, "it takes GET"),
    Case("since-not-a-number", "GET", "/_mock/requests?since=abc", 400, "query parameter `since`"),
    Case("settle-negative", "GET", "/_mock/requests?settle_ms=-1", 400, "query parameter `settle_ms`"),
    Case("put-over-limit", "PUT", "/_mock/scenarios/big", 413, "larger than this server accepts",
         b'{"reply": "' + b"x" * MiB + b'"}'),
    Case("put-not-utf8", "PUT", "/_mock/scenarios/latin", 400, "not UTF-8", b'{"reply": "caf\xe9"}'),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_a_4xx_in_the_endpoint_shape(server: MockServer, case: Case) -> None:
    headers = {"content-type": "application/json", **case.headers}
    response = httpx.request(case.method, server.url + case.path, content=case.content, headers=headers, timeout=10)
    assert response.status_code == case.status, response.text[:300]
    assert case.says in error_message(response)
    assert httpx.get(server.url + "/_mock/health").status_code == 200


# --- overrides and headers the parsers must not choke on ---------------------------------------------

MALFORMED_OVERRIDES = [
    ("X-Mock-Fault", "drop@" + "1" * 4000, "@N in"),
    ("X-Mock-Fault", "drop@²", "@N in"),
    ("X-Mock-Fault", "delay@1:inf", "finite number"),
    ("X-Mock-Fault", "stall@1:nan", "finite number"),
    ("X-Mock-Fault", "delay@1:1e300", "longer than the 3600000 ms (one hour) any delay may be"),
    ("X-Mock-Fault", "status:" + "4" * 4000, "bad status"),
    ("X-Mock-Fault", ",".join(["drop@1"] * 101), "101 faults are more than the 100 one request may add"),
    ("X-Mock-Fault", "delay@1:1," * 1_000, "header X-Mock-Fault is 10,000 characters long, more than the 4,096"),
    ("X-Mock-Fault", "no_done@2", "takes no @N"),
    ("X-Mock-Fault", "drop:x", "takes no :ARG"),
    ("X-Mock-Chunk-Ms", "1e999", "header X-Mock-Chunk-Ms must be a number"),
    ("X-Mock-First-Chunk-Ms", "nan", "header X-Mock-First-Chunk-Ms must be a number"),
    ("X-Mock-Jitter-Ms", "-1", "header X-Mock-Jitter-Ms must be a number"),
    ("X-Mock-Seed", "9" * 5000, "header X-Mock-Seed must be a whole number"),
]


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
@pytest.mark.parametrize(("header", "value", "says"), MALFORMED_OVERRIDES, ids=lambda v: str(v)[:24])
def test_every_malformed_override_is_a_400_on_every_endpoint(
    server: MockServer, endpoint: Endpoint, header: str, value: str, says: str
) -> None:
    response = httpx.post(
        server.url + endpoint.path, json=endpoint.body("default"), headers={header.encode(): value.encode("latin-1")}
    )
    assert response.status_code == 400
    assert says in error_message(response)


@pytest.mark.parametrize("last_event_id", ["²", "9" * 5000, "-1", "1e3", ""])
def test_a_last_event_id_that_is_no_event_number_starts_afresh_or_ends(server: MockServer, last_event_id: str) -> None:
    name = server.add_scenario(reply="one two three", ids=True)
    response = httpx.get(
        server.url + "/completions",
        params={"messages": "hi", "scenario": name},
        headers={b"Last-Event-ID": last_event_id.encode("latin-1")},
    )
    assert response.status_code in (200, 204)


# --- scenario names are never file paths -------------------------------------------------------------

BUNDLED_DEFAULT = bundled_scenarios_dir() / "default.yaml"
PATH_NAMES = [
    "../scenarios/default",
    "default.yaml",
    str(BUNDLED_DEFAULT),
    str(BUNDLED_DEFAULT.with_suffix("")),
    "/etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "scenarios/default",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", PATH_NAMES)
@pytest.mark.parametrize("where", ["query", "header", "body", "model", "control"])
def test_no_scenario_name_makes_the_server_read_a_file(server: MockServer, name: str, where: str) -> None:
    url, headers, body = server.url + "/v1/chat/completions", {}, {"messages": "hi", "model": "gpt-4o"}
    if where == "query":
        url += "?scenario=" + name
    elif where == "header":
        headers["X-Mock-Scenario"] = name
    elif where == "body":
        body["scenario"] = name
    elif where == "model":
        body["model"] = name
    if where == "control":  # as sent, without the dot segments a client library would resolve
        wire = fetch(f"{server.url}/_mock/scenarios/{name}")
        assert wire.status == 404
        assert "Echoes the prompt back" not in wire.text
        return
    else:
        response = httpx.post(url, json=body, headers=headers)
    if where == "model":  # a model that names no scenario is just a model: the default answers
        assert response.headers["x-mock-scenario"] == "default"
        return
    assert response.status_code == 404
    message = error_message(response)
    assert "Echoes the prompt back" not in response.text  # nothing of the file's content
    assert "root:" not in response.text
    assert "Unknown scenario" in message or "There is no" in message


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "/etc/passwd", "%2E%2E", "..%2Fx"])
def test_a_runtime_scenario_cannot_be_named_like_a_path(server: MockServer, name: str) -> None:
    response = httpx.put(f"{server.url}/_mock/scenarios/{name}", json={"reply": "x"})
    assert 400 <= response.status_code < 500
    assert name not in [s["name"] for s in httpx.get(server.url + "/_mock/scenarios").json()]


# --- run-time scenarios: every problem, no crash -----------------------------------------------------

BILLION_LAUGHS = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    + ["description: *i"]
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "content_type", "says"),
    [
        ("[" * 100_000 + "]" * 100_000, "application/json", "nested more than 64 levels deep"),
        ("reply: " + "[" * 10_000 + "]" * 10_000, "application/yaml", "nested more than 64 levels deep"),
        ("x: " + "[" * 100 + "]" * 100, "application/yaml", "nested more than 64 levels deep"),
        ('{"seed": 1' + "0" * 5000 + "}", "application/json", "Exceeds the limit"),
        ("seed: 1" + "0" * 5000, "application/yaml", "Exceeds the limit"),
        (BILLION_LAUGHS, "application/yaml", "more than 100000 values"),
        ("chunk_ms: .inf", "application/yaml", "inf is not a number of milliseconds"),
        ("chunk_ms: 1e300", "application/yaml", "longer than the 3600000 ms (one hour) any delay may be"),
        ("keepalive_ms: 0.001", "application/yaml", "0.001 is less than 1; use a number of milliseconds (1 or more)"),
        ('{"headers": {"X-A": "1\\r\\nSet-Cookie: x"}}', "application/json", "has a CR, LF or NUL"),
        ('{"headers": {"Bad Name": "x"}}', "application/json", "is not a valid HTTP token"),
        ('{"headers": {"X-Snow": "\u2603"}, "status": 429}', "application/json", "non-ASCII characters"),
        ('{"match": {"prompt": "(a+)\\\\1"}}', "application/json", "RE2 has no backreferences"),
        ('{"match": {"headers": {"x-a": "a(?!b)"}}}', "application/json", "RE2 has no lookahead or lookbehind"),
        ('{"reply": "\\ud800"}', "application/json", "holds a lone surrogate"),
        ('steps: [{text: "\\udc00"}]', "application/yaml", "holds a lone surrogate"),
    ],
    ids=[
        "deep-json",
        "deep-yaml",
        "yaml-just-too-deep",
        "json-huge-int",
        "yaml-huge-int",
        "yaml-aliases",
        "infinite-delay",
        "endless-delay",
        "ping-flood",
        "header-crlf",
        "header-name",
        "header-not-ascii",
        "backreference-prompt",
        "lookahead-header",
        "lone-surrogate-json",
        "lone-surrogate-yaml",
    ],
)
def test_put_refuses_a_hostile_scenario_with_its_problem(
    server: MockServer, content: str, content_type: str, says: str
) -> None:
    response = httpx.put(
        server.url + "/_mock/scenarios/hostile", content=content, headers={"Content-Type": content_type}, timeout=10
    )
    assert response.status_code == 422
    problems = response.json()["error"]["problems"]
    assert any(says in problem["message"] for problem in problems), problems


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_a_lone_surrogate_in_a_body_is_replaced_and_the_journal_still_reads(
    make_server: Callable[..., MockServer], endpoint: Endpoint
) -> None:
    server = make_server()
    body = json.dumps({**endpoint.body("m\ud800", prompt="hi \udfff"), "\ud800": ["\udc00"]}).encode()
    assert b'"m\\ud800"' in body  # valid JSON: the escape of half a UTF-16 pair
    response = fetch(server.url + endpoint.path, method="POST", body=body, headers={"X-Mock-Chunk-Ms": "0"})
    assert response.status == 200
    assert response.ending is Ending.COMPLETE
    (record,) = server.records()
    assert record.prompt == "hi \ufffd"
    assert record.body["\ufffd"] == ["\ufffd"]
    journal = httpx.get(server.url + "/_mock/requests")
    assert journal.status_code == 200
    assert journal.json()[0]["body"]["model"] == "m\ufffd"


# --- the body limit is enforced while the body arrives --------------------------------------------


def send_head(server: MockServer, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(head.encode() + b"\r\n" + body)
    return sock


def status_of(sock: socket.socket) -> int:
    with sock:
        return int(sock.recv(1024).split(b" ")[1])


BODY_PATHS = [("POST", "/v1/chat/completions"), ("POST", "/completions"), ("PUT", "/_mock/scenarios/big")]


@pytest.mark.parametrize(("method", "path"), BODY_PATHS)
def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    server: MockServer, method: str, path: str
) -> None:
    sock = send_head(server, method, path, {"Content-Length": str(10 * MiB), "Content-Type": "application/json"})
    assert status_of(sock) == 413  # the body was never sent: the server did not wait for it


@pytest.mark.parametrize(("method", "path"), BODY_PATHS)
def test_a_chunked_body_is_refused_once_it_passes_the_limit(server: MockServer, method: str, path: str) -> None:
    chunk = b"x" * 65536
    pieces = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MiB // len(chunk) + 1))
    sock = send_head(server, method, path, {"Transfer-Encoding": "chunked"}, pieces)  # no last chunk: still sending
    assert status_of(sock) == 413


def test_a_body_at_the_limit_is_read(server: MockServer) -> None:
    start, end = b'{"messages": "hi", "pad": "', b'"}'
    body = start + b"x" * (MiB - len(start) - len(end)) + end
    response = httpx.post(server.url + "/v1/chat/completions", content=body)
    assert response.status_code == 200


def test_the_limit_follows_the_setting_and_the_journal_records_the_refusal(make_server: Any) -> None:
    small = make_server(max_body_bytes=100)
    response = httpx.post(small.url + "/v1/chat/completions", json={"messages": "x" * 100})
    assert response.status_code == 413
    assert "(100 bytes)" in error_message(response)
    record = small.last_request
    assert (record.status, record.outcome, record.body) == (413, "error_status", None)
    assert httpx.post(small.url + "/v1/chat/completions", json={"messages": "hi"}).status_code == 200


def chunked(total: int) -> Iterator[bytes]:
    for _ in range(total // 1000):
        yield b" " * 1000


def test_httpx_uploading_a_chunked_body_gets_the_413(make_server: Any) -> None:
    small = make_server(max_body_bytes=10_000)
    response = httpx.post(small.url + "/v1/responses", content=chunked(200_000))
    assert response.status_code == 413


# --- the last resort: a bug answers 500 in the dialect's shape, and the journal says so --------------


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_an_unexpected_exception_is_a_500_in_the_dialect_shape(
    make_server: Any, monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint
) -> None:
    server = make_server()

    def broken(**_: Any) -> None:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(server.app.state.catalog, "find", broken)
    response = httpx.post(server.url + endpoint.path, json=endpoint.body("default"))
    assert response.status_code == 500
    message = error_message(response)
    assert "failed unexpectedly" in message
    assert "RuntimeError" in message
    assert "internal detail" not in response.text
    record = server.last_request
    assert (record.status, record.outcome) == (500, "error_status")


@pytest.mark.parametrize(("method", "path"), BODY_PATHS)
def test_a_client_leaving_mid_body_is_no_error_and_no_record(
    make_server: Any, method: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server()
    send_head(server, method, path, {"Content-Length": "100"}, b'{"messages": ').close()
    assert httpx.get(server.url + "/_mock/health").status_code == 200
    assert server.requests == []
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


@pytest.mark.parametrize("path", ["/v1/realtime?model=gpt-4o", "/v1/chat/completions", "/_mock/health"])
def test_a_websocket_handshake_is_refused_with_what_to_do_and_the_server_goes_on(make_server: Any, path: str) -> None:
    """No endpoint speaks WebSocket (OpenAI's Realtime API does): a client asking for one is told so."""
    server = make_server()
    with pytest.raises(InvalidStatus) as refused:
        connect(server.url.replace("http://", "ws://") + path, open_timeout=10)
    response = refused.value.response
    assert response.status_code == 403
    body = json.loads(response.body)
    assert body["error"]["type"] == "websocket_not_served"
    assert "Server-Sent Events" in body["error"]["message"]
    assert httpx.get(server.url + "/_mock/health").status_code == 200
    assert server.requests == []
