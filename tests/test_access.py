"""Who the server answers: Host names (against DNS rebinding) and pages of other origins (the control
API holds the journal and rewrites scenarios), while curl, SDKs and test code are unaffected."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.middleware.cors import CORSMiddleware

from mock_server.http.access import Cors, cors_options
from mock_server.http.app import create_app
from mock_server.settings import Settings
from tests.wire import fetch

EVIL = "http://evil.test"
APP = "http://app.test"


def host_header(server: Any, host: str) -> dict[str, str]:
    return {"Host": host.replace("PORT", str(server.port))}


@pytest.mark.parametrize("host", ["127.0.0.1:PORT", "localhost:PORT", "[::1]:PORT", "127.0.0.1", "ui.localhost:PORT"])
@pytest.mark.parametrize("path", ["/_mock/health", "/completions?messages=hi"])
def test_a_server_on_loopback_answers_loopback_names(server: Any, host: str, path: str) -> None:
    assert fetch(server.url + path, headers=host_header(server, host)).status == 200


@pytest.mark.parametrize("host", ["evil.test", "evil.test:PORT", "127.0.0.1.evil.test:PORT", "10.0.0.7:PORT"])
@pytest.mark.parametrize(
    ("method", "path", "shape"),
    [
        ("GET", "/_mock/requests", "control"),
        ("POST", "/_mock/reset", "control"),
        ("GET", "/completions?messages=hi", "openai"),
        ("POST", "/v1/messages", "anthropic"),
    ],
)
def test_a_server_on_loopback_refuses_other_host_names(
    server: Any, host: str, method: str, path: str, shape: str
) -> None:
    body = {"messages": "hi", "max_tokens": 5} if method == "POST" else None
    response = fetch(server.url + path, method=method, headers=host_header(server, host), body=body)
    assert response.status == 403
    error = json.loads(response.body)["error"]
    assert "--allowed-hosts" in error["message"]
    assert error["type"] == {"control": "host_not_allowed", "anthropic": "permission_error"}.get(shape, error["type"])


def test_allowed_hosts_adds_names_and_dot_names_take_subdomains(make_server: Any) -> None:
    server = make_server(allowed_hosts=("mock.internal", ".corp.test"))
    for host in ("mock.internal:PORT", "corp.test", "api.corp.test:PORT", "localhost:PORT"):
        assert fetch(server.url + "/_mock/health", headers=host_header(server, host)).status == 200, host
    for host in ("mock.internal.evil.test", "evilcorp.test"):
        assert fetch(server.url + "/_mock/health", headers=host_header(server, host)).status == 403, host


def asgi_status(settings: Settings, host: str, path: str = "/_mock/health") -> int:
    """A request straight to the app (no socket): the guard needs no bound address to decide."""

    async def get() -> int:
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            return (await client.get(path)).status_code

    return asyncio.run(get())


def test_a_server_bound_to_every_interface_answers_any_host_unless_told() -> None:
    assert asgi_status(Settings(host="0.0.0.0"), "mock-llm:8383") == 200  # a CI service name
    narrowed = Settings(host="0.0.0.0", allowed_hosts=("mock-llm",))
    assert asgi_status(narrowed, "mock-llm:8383") == 200
    assert asgi_status(narrowed, "evil.test") == 403
    assert asgi_status(Settings(host="0.0.0.0", allowed_hosts=("*",)), "anything.test") == 200
    assert asgi_status(Settings(host="127.0.0.1", allowed_hosts=("*",)), "anything.test") == 200


@pytest.mark.slow
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Origin": "http://127.0.0.1:1"},  # another port of this machine
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["other-origin", "null-origin", "other-port", "sec-fetch-cross-site", "sec-fetch-same-site"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_mock/requests"),
        ("GET", "/_mock/verdict"),
        ("POST", "/_mock/reset"),
        ("DELETE", "/_mock/requests"),
        ("PUT", "/_mock/scenarios/catch-all"),
        ("OPTIONS", "/_mock/reset"),
    ],
)
def test_the_control_api_refuses_pages_of_other_origins(
    make_server: Any, headers: dict[str, str], method: str, path: str
) -> None:
    server = make_server()
    fetch(server.url + "/completions?messages=hi")
    body = {"reply": "hijacked", "match": {"prompt": ".*"}} if method == "PUT" else None
    if method == "OPTIONS":
        headers = {**headers, "Access-Control-Request-Method": "POST"}
    response = fetch(server.url + path, method=method, headers=headers, body=body)
    assert response.status == 403
    assert "access-control-allow-origin" not in response.headers
    assert "--cors-origins" in json.loads(response.body)["error"]["message"]
    assert len(server.requests) == 1  # nothing was reset or cleared
    assert "catch-all" not in [e["name"] for e in httpx.get(server.url + "/_mock/scenarios").json()]


def test_a_simple_cross_origin_form_post_cannot_reset(make_server: Any) -> None:
    server = make_server()
    fetch(server.url + "/completions?messages=hi")
    form = {"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"}
    assert fetch(server.url + "/_mock/reset", method="POST", headers=form, body="x=1").status == 403
    assert len(server.requests) == 1


def test_curl_sdks_and_same_origin_pages_use_the_control_api_unchanged(make_server: Any) -> None:
    server = make_server()
    assert httpx.post(server.url + "/_mock/reset").status_code == 200  # no Origin: curl, SDKs, test code
    same = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}  # the playground page at /
    assert httpx.get(server.url + "/_mock/scenarios", headers=same).status_code == 200
    assert httpx.post(server.url + "/_mock/reset", headers=same).status_code == 200
    assert httpx.get(server.url + "/_mock/health", headers={"Sec-Fetch-Site": "none"}).status_code == 200


def test_cors_origins_names_the_pages_the_control_api_answers(make_server: Any) -> None:
    server = make_server(cors_origins=(APP,))
    response = httpx.get(server.url + "/_mock/requests", headers={"Origin": APP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    preflight = httpx.options(
        server.url + "/_mock/reset", headers={"Origin": APP, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 200
    assert httpx.post(server.url + "/_mock/reset", headers={"Origin": APP}).status_code == 200
    assert httpx.post(server.url + "/_mock/reset", headers={"Origin": EVIL}).status_code == 403


def test_model_endpoints_stay_open_to_every_origin_while_the_control_api_sends_no_cors(server: Any) -> None:
    page = {"Origin": EVIL}
    stream = httpx.get(server.url + "/completions?messages=hi", headers=page)
    assert stream.headers["access-control-allow-origin"] == EVIL
    models = httpx.get(server.url + "/v1/models", headers=page)
    assert models.headers["access-control-allow-origin"] == EVIL
    health = httpx.get(server.url + "/_mock/health", headers={"Origin": server.url})
    assert health.status_code == 200
    assert "access-control-allow-origin" not in health.headers


VARY_CASES = [
    [],
    [(b"content-type", b"text/event-stream")],
    [(b"vary", b"Accept-Encoding")],
    [(b"a", b"1"), (b"vary", b"Accept"), (b"b", b"2"), (b"vary", b"Cookie"), (b"c", b"3")],
]


@pytest.mark.parametrize("headers", VARY_CASES)
def test_a_model_answer_to_a_request_without_origin_varies_as_starlettes_cors_makes_it(
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Model requests without `Origin` skip Starlette's CORS middleware, and get the very headers it
    would have given them."""

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})

    async def heads(app: Any) -> list[tuple[bytes, bytes]]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        await app({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}, None, send)
        return list(sent[0]["headers"])

    settings = Settings()
    expected = asyncio.run(heads(CORSMiddleware(answer, **cors_options(settings))))
    assert asyncio.run(heads(Cors(answer, settings))) == expected


def test_a_model_answer_without_origin_varies_by_origin_and_one_with_it_is_allowed(server: Any) -> None:
    plain = httpx.post(server.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert plain.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in plain.headers
    paged = httpx.post(
        server.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers={"Origin": EVIL},
    )
    assert paged.headers["access-control-allow-origin"] == EVIL
