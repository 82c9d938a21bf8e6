"""Safe defaults: loopback only unless told otherwise, tokens for those who want them, no secret in any
log line, and none readable in the journal (masked unless kept on purpose, behind the admin token)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from mock_server.cli import main
from mock_server.http.server import MockServer
from mock_server.journal.redaction import mask_secret, redact_target
from mock_server.settings import Settings
from tests.conftest import cli_server
from tests.wire import fetch

ROOT = Path(__file__).parent.parent
KEY, ADMIN, WRONG = "sk-live-key-1", "admin-secret-2", "wrong-secret-3"


def test_the_server_binds_loopback_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    bound = {}

    def fake_run(app: Any, settings: Settings, sock: Any, on_ready: Any) -> None:
        bound["address"] = sock.getsockname()[0]
        sock.close()

    monkeypatch.setattr("mock_server.cli.run_foreground", fake_run)
    assert CliRunner().invoke(main, ["serve", "--port", "0"], env={"MOCK_LLM_HOST": None}).exit_code == 0
    assert bound["address"] == "127.0.0.1"
    assert Settings().host == MockServer().settings.host == "127.0.0.1"


def test_only_the_docker_image_binds_every_interface_and_says_so() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "MOCK_LLM_HOST=0.0.0.0" in dockerfile


def test_without_tokens_everything_is_open_and_with_them_nothing_is(make_server: Any) -> None:
    assert (Settings().require_auth, Settings().admin_token) == (None, None)
    guarded = make_server(require_auth=KEY, admin_token=ADMIN)
    assert httpx.post(guarded.url + "/v1/chat/completions", json={"messages": "hi"}).status_code == 401
    assert httpx.put(guarded.url + "/_mock/scenarios/x", json={}).status_code == 401
    assert (
        httpx.put(guarded.url + "/_mock/scenarios/x", json={}, headers={"Authorization": f"Bearer {KEY}"}).status_code
        == 401
    )


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("/completions?messages=hi&api_key=sk-1", "/completions?messages=hi&api_key=REDACTED"),
        (
            "/x?API_KEY=a&token=b&access_token=c&key=d",
            "/x?API_KEY=REDACTED&token=REDACTED&access_token=REDACTED&key=REDACTED",
        ),
        ("/x?api%5Fkey=a&keyboard=b&key", "/x?api%5Fkey=REDACTED&keyboard=b&key"),
        (
            "/x?apikey=a&password=b&client_secret=c&refresh_token=d&max_tokens=5",
            "/x?apikey=REDACTED&password=REDACTED&client_secret=REDACTED&refresh_token=REDACTED&max_tokens=5",
        ),
        ("/completions", "/completions"),
    ],
)
def test_redaction_hides_secret_query_values(target: str, shown: str) -> None:
    assert redact_target(target) == shown


def secret_requests(url: str) -> None:
    """Requests carrying every kind of secret, accepted and refused."""
    httpx.get(url + "/completions", params={"messages": "hi", "chunk_ms": "0", "api_key": KEY}).raise_for_status()
    assert httpx.get(url + "/completions", params={"messages": "hi", "api_key": WRONG}).status_code == 401
    body = {"model": "default", "max_tokens": 5, "messages": "hi"}
    httpx.post(url + "/v1/messages", json=body, headers={"x-api-key": KEY, "X-Mock-Chunk-Ms": "0"}).raise_for_status()
    auth = {"Authorization": f"Bearer {ADMIN}"}
    httpx.put(url + "/_mock/scenarios/x", json={"reply": "x"}, headers=auth).raise_for_status()


@pytest.mark.slow
def test_the_cli_logs_no_secret_and_the_journal_masks_them() -> None:
    args = ("--log-level", "info", "--require-auth", KEY, "--admin-token", ADMIN)
    with cli_server(*args) as (process, url):
        secret_requests(url)
        journal = httpx.get(url + "/_mock/requests", headers={"Authorization": f"Bearer {ADMIN}"}).text
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stdout is not None
        output = process.stdout.read()
    assert "GET /completions?messages=hi&chunk_ms=0&api_key=REDACTED HTTP/1.1" in output  # the line is there
    for secret in (KEY, ADMIN, WRONG):
        assert secret not in output
        assert secret not in journal
    assert mask_secret(KEY) in journal
    assert mask_secret(WRONG) in journal


def test_a_mock_server_logs_no_secret_either(make_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = make_server(require_auth=KEY, admin_token=ADMIN, access_log=True)
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        secret_requests(server.url)
    lines = [record.getMessage() for record in caplog.records if record.name == "uvicorn.access"]
    assert len(lines) == 4
    assert not [line for line in lines if KEY in line or WRONG in line]
    assert server.requests[0].query["api_key"] == "sk-...ey-1"


def test_the_journal_masks_keys_tokens_cookies_and_secret_body_fields(make_server: Any) -> None:
    server = make_server()
    body = {"messages": "hi", "max_tokens": 5, "api_key": "sk-body-key-5678", "options": {"password": "hunter2!"}}
    headers = {
        "Authorization": "Bearer sk-proj-abcdefgh1234",
        "x-api-key": "sk-ant-api03-zyxw9876",
        "api-key": "azure-key-0000-4321",
        "Cookie": "session=abcdefghijkl1357; theme=dark",
        "X-Trace": "t-1",
    }
    fetch(
        server.url + "/completions?access_token=tok-abcdefgh2468&chunk_ms=0", method="POST", headers=headers, body=body
    )
    (record,) = server.requests
    assert record.headers["authorization"] == "Bearer sk-...1234"
    assert record.headers["x-api-key"] == "sk-...9876"
    assert record.headers["api-key"] == "...4321"
    assert record.headers["cookie"] == "session=...1357; theme=..."
    assert record.headers["x-trace"] == "t-1"
    assert record.query == {"access_token": "tok-...2468", "chunk_ms": "0"}
    assert record.body == {"messages": "hi", "max_tokens": 5, "api_key": "sk-...5678", "options": {"password": "..."}}
    every_value = repr(record.to_json())
    for secret in ("abcdefgh1234", "zyxw9876", "0000-4321", "abcdefghijkl", "hunter2", "body-key", "abcdefgh2468"):
        assert secret not in every_value


def test_journal_secrets_keep_records_them_as_sent(make_server: Any) -> None:
    server = make_server(journal_secrets="keep")
    fetch(server.url + "/completions?messages=hi&api_key=sk-kept-key-1234", headers={"x-api-key": KEY})
    (record,) = server.requests
    assert record.query["api_key"] == "sk-kept-key-1234"
    assert record.headers["x-api-key"] == KEY


@pytest.mark.parametrize("option", ["--admin-token", "--require-auth"])
def test_an_empty_token_on_the_command_line_is_refused_at_start(option: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "0", option, ""])
    assert result.exit_code == 2
    assert "is empty" in result.output
    assert "give a token, or leave it out" in result.output


@pytest.mark.parametrize("variable", ["MOCK_LLM_ADMIN_TOKEN", "MOCK_LLM_REQUIRE_AUTH"])
def test_an_empty_token_variable_is_refused_at_start_not_ignored(variable: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "0"], env={variable: ""})
    assert result.exit_code == 2
    assert f"an empty {variable}" in result.output


def test_settings_refuse_an_empty_token() -> None:
    with pytest.raises(ValueError, match="admin_token is empty"):
        Settings(admin_token="  ")
    with pytest.raises(ValueError, match="require_auth is empty"):
        Settings(require_auth="")


def test_the_banner_says_which_protections_are_active() -> None:
    with cli_server("--admin-token", ADMIN, "--cors-origins", "http://app.test") as (process, _):
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(9)]
    protections = [line.removeprefix("Protection: ") for line in lines if line.startswith("Protection: ")]
    assert protections == [
        "model endpoints are open (no --require-auth)",
        "/_mock/ writes and the journal need the --admin-token token",
        "keys and tokens in the journal are masked",
        "the control API answers pages of http://app.test besides its own",
        "answers the Host names localhost, 127.0.0.1, [::1] only",
    ]
