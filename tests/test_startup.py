"""Start-up does only what serving a model request needs: FastAPI's part of the app, the upstream's
HTTP client and the verdict load on first use, the tokenizer is built while the server already
answers, and the command line loads its modules with the garbage collector paused. What it costs in
time is the bench's (`python -m bench.startup`); these check the behaviour."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import tiktoken
from starlette.types import ASGIApp, Receive, Scope, Send

from mock_server.http.app import create_app
from mock_server.http.scope import STATE_SCOPE_KEY
from mock_server.http.server import MockServer
from mock_server.settings import Settings
from mock_server.timeline import tokens
from tests.wire import WireResponse, fetch

LOADED_ON_FIRST_USE = {
    "fastapi": "FastAPI's part of the app: the control API, the listings, the playground, the schema",
    "mock_server.http.fastapi_app": "the same",
    "mock_server.http.control": "the control API's routes",
    "mock_server.upstream.client": "the HTTP client to an upstream (--upstream)",
    "mock_server.upstream.proxy": "the same",
    "mock_server.journal.verdict": "the verdict on the clients",
    "urllib.request": "the HTTP client of the `verdict` command",
    "websockets": "never: no endpoint speaks WebSocket, and our protocol refuses a handshake itself",
}

SERVE_AND_ASK = """
import http.client, json, sys
import mock_server.cli
from mock_server.http.server import MockServer
from mock_server.settings import Settings

with MockServer(settings=Settings(port=0, {settings})) as server:
    for path in {paths!r}:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("GET", path)
        assert connection.getresponse().status == 200, path
        connection.close()
print(json.dumps(sorted(sys.modules)))
"""


def modules_loaded(paths: tuple[str, ...] = (), settings: str = "") -> set[str]:
    """The modules a fresh process has loaded after starting a server (with `settings`, keywords of
    `Settings`) and asking it for each of `paths`."""
    code = SERVE_AND_ASK.format(paths=paths, settings=settings)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


COMMAND_LINE_LOADED = """
import gc, json, sys
from mock_server import __main__ as entry
loaded_first = sorted(name for name in sys.modules if name.startswith("mock_server"))
before = [generation["collections"] for generation in gc.get_stats()]
sys.argv = ["mock-llm-sse", "--version"]
try:
    entry.main()
except SystemExit:
    pass
collections = [generation["collections"] - was for generation, was in zip(gc.get_stats(), before)]
print(json.dumps([loaded_first, collections, gc.get_freeze_count(), gc.isenabled()]))
"""


def test_the_command_line_loads_its_modules_with_the_collector_paused_then_frozen() -> None:
    """Loading them makes some 50,000 objects that live as long as the process: collections on the way
    would find nothing to free. The package itself loads nothing before the pause."""
    done = subprocess.run([sys.executable, "-c", COMMAND_LINE_LOADED], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded_first, collections, frozen, enabled = json.loads(done.stdout.splitlines()[-1])
    assert loaded_first == ["mock_server", "mock_server.__main__"]
    assert collections == [0, 0, 0]
    assert frozen > 10_000
    assert enabled


PROBE_PLUGIN = """
import os
from pathlib import Path

Path(os.environ["PROBE_PLUGIN_LOADED"]).touch()


class ProbePlugin:
    def new_schema_validator(self, *args, **kwargs):
        return None, None, None


plugin = ProbePlugin()
"""


@pytest.mark.parametrize(("given", "loaded"), [(None, False), ("", True), ("other", True), ("__all__", False)])
def test_the_command_line_leaves_pydantic_plugins_out_unless_told_otherwise(
    tmp_path: Path, given: str | None, loaded: bool
) -> None:
    """An installed pydantic plugin is not looked for, unless PYDANTIC_DISABLE_PLUGINS says otherwise."""
    (tmp_path / "probe_plugin.py").write_text(PROBE_PLUGIN)
    metadata = tmp_path / "probe_plugin-1.0.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-plugin\nVersion: 1.0\n")
    (metadata / "entry_points.txt").write_text("[pydantic]\nprobe = probe_plugin:plugin\n")
    env = {key: value for key, value in os.environ.items() if key != "PYDANTIC_DISABLE_PLUGINS"}
    env |= {"PYTHONPATH": str(tmp_path), "PROBE_PLUGIN_LOADED": str(tmp_path / "loaded")}
    if given is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = given
    done = subprocess.run([sys.executable, "-m", "mock_server", "--version"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "loaded").exists() == loaded


def test_the_version_is_known_without_reading_the_installed_metadata() -> None:
    """The metadata holds the README: parsing it took some 5 ms of every start."""
    code = "import json, sys\nfrom mock_server.settings import VERSION\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "importlib.metadata" not in json.loads(done.stdout)


LOADED_BY_SOME_REQUESTS = {
    "tiktoken": "the tokenizer: built in the background once the server is up, or by the first count",
    "re2": "the engine of `match` patterns: loaded by the first scenario that has one",
    "difflib": "the nearest names a mistake is told of",
}


def test_the_command_line_leaves_out_what_only_some_requests_need() -> None:
    code = "import json, sys\nimport mock_server.cli\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert {name: why for name, why in LOADED_BY_SOME_REQUESTS.items() if name in loaded} == {}


def test_a_server_answering_its_ready_check_and_model_requests_loads_nothing_they_do_not_need() -> None:
    loaded = modules_loaded(("/_mock/health", "/completions?messages=hi"))
    assert {name: why for name, why in LOADED_ON_FIRST_USE.items() if name in loaded} == {}


@pytest.mark.parametrize(
    ("path", "settings", "loads"),
    [
        ("/_mock/scenarios", "", {"fastapi", "mock_server.http.control"}),
        ("/_mock/verdict?settle_ms=0", "", {"mock_server.journal.verdict"}),
        (None, "upstream='http://127.0.0.1:9'", {"mock_server.upstream.client", "mock_server.upstream.proxy"}),
    ],
)
def test_what_is_loaded_on_first_use_is_loaded_when_used(path: str | None, settings: str, loads: set[str]) -> None:
    assert loads <= modules_loaded((path,) if path else (), settings)


MODEL_PATH = {
    "mock_server.http.routes": "the model routes",
    "mock_server.http.pipeline": "the request path they share",
    "mock_server.dialects.base": "the dialects",
    "mock_server.dialects.openai_chat": "the same",
    "mock_server.dialects.anthropic": "the same",
    "mock_server.timeline.compile": "the compiler",
    "mock_server.wire.rendering": "the renderer",
    "mock_server.wire.player": "the player",
}

ASK_IN_TURN = """
import http.client, json, sys
import mock_server.cli
from mock_server.http.server import MockServer
from mock_server.settings import Settings

loaded = []
with MockServer(settings=Settings(port=0)) as server:
    for method, path, body, headers in {requests!r}:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        instance = response.getheader("X-Mock-Instance")
        loaded.append([response.status, response.read().decode(), instance, sorted(sys.modules)])
        connection.close()
print(json.dumps(loaded))
"""


def ask_in_turn(*requests: tuple[str, str, str | None, dict[str, str]]) -> list[tuple[int, str, str | None, set[str]]]:
    """Each request's status, body, `X-Mock-Instance` and the modules loaded once it was answered, asked
    in turn of a server in a fresh process that has loaded the command line, as `serve` does."""
    done = subprocess.run(
        [sys.executable, "-c", ASK_IN_TURN.format(requests=requests)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout.splitlines()[-1])
    return [(status, body, instance, set(modules)) for status, body, instance, modules in answers]


READY_CHECK_LEAVES_OUT = {
    "starlette.requests": "Starlette's requests: the ready check and the CORS of a request without Origin need none",
    "starlette.responses": "Starlette's responses: the same",
    "starlette.middleware.cors": "Starlette's CORS: built by the first request from a page",
    "mock_server.http.errors": "the error answers: loaded by the first refusal or error",
    "mock_server.http.workers": "the worker processes: loaded for --workers above 1",
    "mock_server.http.stored_responses": "the stored responses' routes: loaded with an upstream only",
    "mock_server.http.state": "the app's state: made by the first request other than the ready check",
    "mock_server.journal.journal": "the journal around the log the ready check tells of: the same",
    "mock_server.http.quotas": "the rate limits: the same",
}


def test_the_ready_check_is_answered_before_the_model_path_is_loaded() -> None:
    """The dialects, the compiler and the wire under them load with the first model request: the ready
    check, which a starting server is polled with, needs none of them, nor Starlette's requests,
    responses and CORS, which a refusal (and then a model request) loads."""
    anthropic = json.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    ready, refused, answered, ready_again, journal = ask_in_turn(
        ("GET", "/_mock/health", None, {}),
        ("GET", "/_mock/health", None, {"Host": "evil.example"}),
        ("POST", "/v1/messages", anthropic, {"Content-Type": "application/json"}),
        ("GET", "/_mock/health", None, {}),
        ("GET", "/_mock/requests", None, {}),
    )
    assert ready[0] == 200
    assert refused[0] == 403
    assert json.loads(refused[1])["error"]["type"] == "host_not_allowed"
    assert {name: why for name, why in MODEL_PATH.items() if name in ready[3] | refused[3]} == {}
    assert {name: why for name, why in READY_CHECK_LEAVES_OUT.items() if name in ready[3]} == {}
    assert {"starlette.requests", "mock_server.http.errors"} <= refused[3]
    assert answered[0] == 200
    assert json.loads(answered[1])["type"] == "message"
    assert set(MODEL_PATH) <= answered[3]
    made_for_it = {"mock_server.http.state", "mock_server.journal.journal", "starlette.responses"}
    assert made_for_it <= answered[3]
    # The journal made with the first model request is the start the ready check told of.
    first, again = json.loads(ready[1]), json.loads(ready_again[1])
    assert (first["instance"], first["started_at"]) == (again["instance"], again["started_at"])
    assert ready[2] == ready_again[2] == journal[2] == first["instance"]
    assert journal[0] == 200


def test_the_ready_check_answers_as_the_control_api_route_it_is_declared_as() -> None:
    """`MockApp` answers the ready check without Starlette's responses; FastAPI's route, which the
    schema describes, answers the same bytes. A page of an origin `--cors-origins` names gets its CORS
    headers, from Starlette's middleware built for it."""
    page = {"Origin": "http://127.0.0.1:3000"}
    app = create_app(Settings(cors_origins=(page["Origin"],)))

    async def through_fastapi(scope: Scope, receive: Receive, send: Send) -> None:
        scope[STATE_SCOPE_KEY] = app.state  # as MockApp gives it, without answering the path itself
        await app.fastapi(scope, receive, send)

    async def get(asgi: ASGIApp, headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get("/_mock/health", headers=headers)

    ours, theirs = asyncio.run(get(app, {})), asyncio.run(get(through_fastapi, {}))
    ours_to_page, theirs_to_page = asyncio.run(get(app, page)), asyncio.run(get(through_fastapi, page))
    assert ours.status_code == theirs.status_code == 200
    assert json.loads(ours.content)["scenarios"] == len(app.state.catalog)
    assert (ours.content, ours.headers.multi_items()) == (theirs.content, theirs.headers.multi_items())
    assert ours.headers["vary"] == "Origin"
    assert ours_to_page.headers.multi_items() == theirs_to_page.headers.multi_items()
    assert ours_to_page.headers["access-control-allow-origin"] == page["Origin"]


@pytest.mark.parametrize(
    ("method", "path", "keys", "error_is"),
    [
        ("POST", "/v1/messages", {"type", "error"}, dict),  # Anthropic's
        ("POST", "/api/chat", {"error"}, str),  # Ollama's
        ("GET", "/completions?messages=hi", {"error"}, dict),  # OpenAI's
    ],
)
def test_a_first_request_refused_at_the_door_is_answered_in_its_api_shape(
    method: str, path: str, keys: set[str], error_is: type
) -> None:
    """A model request refused before it reaches its route (a Host name not allowed) loads the dialect
    its error is shaped by."""
    ((status, body, _, _),) = ask_in_turn((method, path, None, {"Host": "evil.example"}))
    assert status == 403
    assert set(json.loads(body)) == keys
    assert isinstance(json.loads(body)["error"], error_is)


@pytest.fixture
def slow_tokenizer(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Tokenizers not built yet, and building one waits until the returned function is called."""
    built = tokens.encoding()
    release = threading.Event()

    def build(name: str) -> tiktoken.Encoding:
        assert release.wait(30), "the tokenizer was never released"
        return built if name == built.name else tokens._build(name)

    monkeypatch.setattr(tokens, "_built", {})
    monkeypatch.setattr(tokens, "_warming", None)
    monkeypatch.setattr(tokens, "_build", build)
    return release.set


def test_a_server_answers_while_its_tokenizer_is_built_and_counts_once_it_is(
    slow_tokenizer: Callable[[], None], make_server: Callable[..., MockServer]
) -> None:
    server = make_server()  # started although the tokenizer is not built
    health = f"{server.url}/_mock/health"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello there"}]}
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(httpx.post, f"{server.url}/v1/chat/completions", json=body, timeout=30)
        time.sleep(0.2)
        assert not answer.done()  # it waits for the tokenizer to count its usage...
        assert httpx.get(health).status_code == 200  # ...while the server answers others
        slow_tokenizer()
        usage = answer.result(30).json()["usage"]
    assert usage["prompt_tokens"] == tokens.count_tokens("Hello there", "gpt-4o") > 0


def test_the_first_control_request_builds_fastapi_off_the_event_loop(
    make_server: Callable[..., MockServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building FastAPI's part of the app takes about half a second in a fresh process: streams
    playing meanwhile must not wait for it. Here it is made to take a second."""
    from mock_server.http import app

    build = app._build_fastapi

    def slow_build(settings: object) -> object:
        time.sleep(1.0)
        return build(settings)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "_build_fastapi", slow_build)
    server = make_server()
    played: list[WireResponse] = []
    stream = threading.Thread(
        target=lambda: played.append(fetch(server.url + "/completions?chunk_ms=20&messages=" + "+w" * 100))
    )
    stream.start()
    time.sleep(0.2)
    assert httpx.get(server.url + "/_mock/scenarios", timeout=10).status_code == 200
    stream.join(30)
    (response,) = played
    gaps = [b.at - a.at for a, b in itertools.pairwise(response.reads)]
    assert max(gaps) < 0.6, f"a {max(gaps) * 1000:.0f} ms gap while FastAPI was built"
