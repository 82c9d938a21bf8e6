"""The command line: serve (as a real subprocess), scenarios, validate, verdict, help."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
from click.testing import CliRunner

from mock_server.cli import main
from mock_server.http.server import MockServer
from tests.conftest import cli_server
from tests.wire import Ending, fetch

ROOT = Path(__file__).parent.parent
BUNDLED = len(list((ROOT / "scenarios").glob("*.yaml")))


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`mock-llm-sse serve` as a subprocess on a free port; yields the process and its URL."""
    (tmp_path / "mine.yaml").write_text('reply: "from my own directory"\n')
    with cli_server(env={"MOCK_LLM_SCENARIOS": str(tmp_path)}) as (process, url):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
        yield process, url


def test_serve_streams_and_stops_cleanly_on_sigterm(serving: tuple[subprocess.Popen[str], str]) -> None:
    process, url = serving
    response = fetch(url + "/completions?messages=hi&scenario=mine")
    assert response.ending is Ending.COMPLETE
    assert response.content() == "from my own directory"
    response = fetch(url + "/completions?messages=hi&fault=drop@1")
    assert response.ending is Ending.EOF
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0


def test_serve_banner_lists_scenarios_and_a_curl_line(serving: tuple[subprocess.Popen[str], str]) -> None:
    process, url = serving
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(4)]
    assert lines[0].startswith(f"Scenarios ({BUNDLED + 1}): ")
    assert "mid-stream-drop" in lines[0]
    assert "mine" in lines[0]
    assert lines[2].startswith(f"Try: curl -N '{url}/completions?messages=hello")


def test_serve_refuses_to_start_on_an_invalid_scenario(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("chunk_ms: soon\n")
    result = subprocess.run(
        [sys.executable, "-m", "mock_server", "serve", "--port", "0", "--scenarios", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"{tmp_path}/bad.yaml:1: chunk_ms: 'soon' is not a number of milliseconds" in result.stderr
    assert "Not starting" in result.stderr


def test_serve_refuses_an_unknown_default() -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--default", "nope"])
    assert result.exit_code == 2
    assert "--default 'nope' is not a loaded scenario" in result.output


def test_serve_says_when_the_port_is_taken() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "--port" in result.output


def test_validate_passes_good_files() -> None:
    result = CliRunner().invoke(main, ["validate", str(ROOT / "scenarios")])
    assert result.exit_code == 0
    assert result.output.startswith(f"OK: {BUNDLED} scenario(s)")


def test_validate_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("reply: hi\nchunk_ms: x\nfaults: [{kind: dorp}]\n")
    (tmp_path / "b.json").write_text('{"status": 99}')
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "a.yaml"), str(tmp_path / "b.json")])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{tmp_path}/a.yaml:2: chunk_ms: 'x' is not a number of milliseconds",
        f"{tmp_path}/a.yaml:3: faults.0.kind: 'dorp' is not a fault kind; use one of drop, reset, close, error, "
        "stall, malformed, split, delay, status, no_done, duplicate, unknown_event",
        f"{tmp_path}/b.json:1: status: 99 is not a status to answer with; use 200 (a stream) or an error status "
        "400-599",
    ]


def test_scenarios_prints_a_table(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("description: My own.\n")
    result = CliRunner().invoke(main, ["scenarios", "--scenarios", str(tmp_path)])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION"]
    assert any(line.startswith("mine ") and line.endswith("My own.") for line in lines)
    assert any(line.startswith("split-utf8 ") for line in lines)


@pytest.mark.parametrize("command", [[], ["serve"], ["scenarios"], ["validate"], ["verdict"]])
def test_help_explains_each_command(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.output
    if command == ["serve"]:
        for flag in (
            "--host",
            "--port",
            "--scenarios",
            "--default",
            "--require-auth",
            "--admin-token",
            "--cors-origins",
            "--log-level",
            "--max-body-bytes",
            "--shutdown-grace",
            "--allowed-hosts",
            "--journal-secrets",
            "--journal-max-bytes",
            "--responses-max-bytes",
            "MOCK_LLM_ALLOWED_HOSTS",
            "MOCK_LLM_PORT",
            "MOCK_LLM_SCENARIOS",
        ):
            assert flag in result.output


def test_python_dash_m_is_the_same_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "mock_server", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: mock-llm-sse")


def test_serve_builds_its_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    captured = {}

    def fake_run(app, settings, sock, on_ready):
        captured["settings"] = settings
        sock.close()

    monkeypatch.setattr("mock_server.cli.run_foreground", fake_run)
    env = {
        "MOCK_LLM_HOST": "127.0.0.1",
        "MOCK_LLM_PORT": "0",
        "MOCK_LLM_SCENARIOS": f"{tmp_path}{os.pathsep}{ROOT / 'tests' / 'scenarios'}",
        "MOCK_LLM_DEFAULT": "paced",
        "MOCK_LLM_REQUIRE_AUTH": "sk-test",
        "MOCK_LLM_ADMIN_TOKEN": "admin",
        "MOCK_LLM_ALLOWED_HOSTS": "mock.internal, .corp.test",
        "MOCK_LLM_JOURNAL_SECRETS": "keep",
    }
    flags = ["--cors-origins", "http://a.test, http://b.test", "--max-body-bytes", "2048", "--shutdown-grace", "0.5"]
    flags += ["--journal-max-bytes", "4096", "--responses-max-bytes", "8192"]
    result = CliRunner().invoke(main, ["serve", *flags], env=env)
    assert result.exit_code == 0, result.output
    settings = captured["settings"]
    assert settings.scenario_dirs == (tmp_path, ROOT / "tests" / "scenarios")
    assert settings.default_scenario == "paced"
    assert settings.require_auth == "sk-test"
    assert settings.admin_token == "admin"
    assert settings.cors_origins == ("http://a.test", "http://b.test")
    assert (settings.max_body_bytes, settings.shutdown_grace_s) == (2048, 0.5)
    assert settings.allowed_hosts == ("mock.internal", ".corp.test")
    assert (settings.journal_secrets, settings.journal_max_bytes) == ("keep", 4096)
    assert settings.responses_max_bytes == 8192


def retry_a_401(url: str, times: int = 2) -> None:
    for _ in range(times):
        httpx.get(f"{url}/completions", params={"messages": "hi", "scenario": "unauthorized"})


def test_verdict_prints_a_table_with_advice_and_exits_1_on_an_error(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    retry_a_401(server.url)
    result = CliRunner().invoke(main, ["verdict", server.url, "--wait", "0"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["CODE", "SEVERITY", "TITLE", "RECORDS"]
    assert lines[1].split()[:2] == ["retried_non_retryable", "error"]
    assert lines[1].endswith("#1 #2")
    assert "   Fix: Do not retry 400, 401, 403, 404 or 422" in result.output
    assert lines[-1] == "1 finding(s), 1 error(s) and 0 warning(s), in 2 request(s) in 1 call(s)."


def test_verdict_exits_0_without_findings_and_with_warnings_only(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    fetch(f"{server.url}/completions?messages=hi&scenario=paced")
    clean = CliRunner().invoke(main, ["verdict", server.url.removeprefix("http://"), "--wait", "0"])
    assert (clean.exit_code, clean.output) == (0, "No findings in 1 request(s) in 1 call(s).\n")
    closing = server.add_scenario(
        reply="a b", faults=[{"kind": "close", "at": 1, "ms": 400}], thresholds={"close_grace_ms": 100}
    )
    fetch(f"{server.url}/completions?messages=hi&scenario={closing}")  # reads on until the server ends it
    warned = CliRunner().invoke(main, ["verdict", server.url + "/", "--since", "1", "--wait", "0"])
    assert warned.exit_code == 0, warned.output
    assert warned.output.splitlines()[1].split()[:2] == ["close_event_ignored", "warning"]


def test_verdict_json_is_the_servers_answer(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    retry_a_401(server.url, times=3)
    result = CliRunner().invoke(main, ["verdict", server.url, "--json", "--since", "1", "--wait", "0"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert (data["requests"], data["errors"], data["findings"][0]["records"]) == (2, 1, [2, 3])


def test_verdict_exits_2_when_the_server_cannot_be_asked() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: the connection is refused
        refused = CliRunner().invoke(main, ["verdict", f"http://127.0.0.1:{port}", "--wait", "0"])
    assert refused.exit_code == 2
    assert f"cannot reach the mock server at http://127.0.0.1:{port}" in refused.output
    assert "Is it running (mock-llm-sse serve)?" in refused.output

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{other.server_address[1]}"
        wrong = CliRunner().invoke(main, ["verdict", url, "--wait", "0"])
    finally:
        other.shutdown()
        other.server_close()
        thread.join(5)
    assert wrong.exit_code == 2
    assert f"answered 404 Not Found; is {url} a mock-llm-sse server?" in wrong.output


def test_verdict_after_an_end_to_end_run_fails_the_ci_step(serving: tuple[subprocess.Popen[str], str]) -> None:
    _, url = serving
    retry_a_401(url)
    result = subprocess.run(
        [sys.executable, "-m", "mock_server", "verdict", url, "--wait", "0"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert "retried_non_retryable" in result.stdout


def test_verdict_since_from_before_a_restart_exits_2_instead_of_passing() -> None:
    with cli_server() as (_, url):
        instance = httpx.get(url + "/_mock/health").json()["instance"]
        for _ in range(5):
            fetch(url + "/completions?messages=hi")
        since = f"{instance}:5"
        assert CliRunner().invoke(main, ["verdict", url, "--since", since, "--wait", "0"]).exit_code == 0
    with cli_server() as (_, url):  # restarted: a new instance, ids from 1 again
        retry_a_401(url)
        for given in (since, "5"):
            result = CliRunner().invoke(main, ["verdict", url, "--since", given, "--wait", "0"])
            assert result.exit_code == 2, result.output
            assert "answered 409" in result.output
            assert "restarted" in result.output or "restart" in result.output
        assert CliRunner().invoke(main, ["verdict", url, "--wait", "0"]).exit_code == 1  # the error is there


def test_verdict_writes_junit_xml_a_case_per_call_a_failure_per_error(
    make_server: Callable[..., MockServer], tmp_path: Path
) -> None:
    server = make_server()
    retry_a_401(server.url)
    fetch(f"{server.url}/completions?messages=hi&scenario=paced")
    report = tmp_path / "verdict.xml"
    result = CliRunner().invoke(main, ["verdict", server.url, "--wait", "0", "--junit-xml", str(report)])
    assert result.exit_code == 1, result.output
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [
        "call 1: GET /completions scenario='unauthorized' (#1, #2)",
        "call 2: GET /completions scenario='paced' (#3)",
    ]
    failure = cases[0].find("failure")
    assert failure is not None
    assert (failure.get("type"), failure.get("message")) == (
        "retried_non_retryable",
        "Retried a request that cannot succeed",
    )
    assert "Fix: Do not retry 400, 401" in (failure.text or "")
    assert cases[1].find("failure") is None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")


def test_verdict_names_calls_by_record_ids_when_the_journal_needs_a_token(
    make_server: Callable[..., MockServer], tmp_path: Path
) -> None:
    server = make_server(admin_token="s3cret")
    retry_a_401(server.url)
    report = tmp_path / "verdict.xml"
    CliRunner().invoke(main, ["verdict", server.url, "--wait", "0", "--junit-xml", str(report)])
    assert [c.get("name") for c in ElementTree.parse(report).getroot().iter("testcase")] == ["call 1 (#1, #2)"]
    CliRunner().invoke(
        main, ["verdict", server.url, "--wait", "0", "--junit-xml", str(report), "--admin-token", "s3cret"]
    )
    names = [c.get("name") for c in ElementTree.parse(report).getroot().iter("testcase")]
    assert names == ["call 1: GET /completions scenario='unauthorized' (#1, #2)"]


def test_verdict_github_format_is_one_annotation_per_finding(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    retry_a_401(server.url)
    result = CliRunner().invoke(main, ["verdict", server.url, "--wait", "0", "--format", "github"])
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith(
        "::error title=mock-llm-sse retried_non_retryable%3A Retried a request that cannot succeed::#1 was answered 401"
    )
    assert line.endswith("Records: #1 #2")
    server.reset()
    clean = CliRunner().invoke(main, ["verdict", server.url, "--wait", "0", "--format", "github"])
    assert (clean.exit_code, clean.output) == (0, "\n")


def test_verdict_cannot_write_the_junit_file_exits_2(make_server: Callable[..., MockServer], tmp_path: Path) -> None:
    server = make_server()
    result = CliRunner().invoke(
        main, ["verdict", server.url, "--wait", "0", "--junit-xml", str(tmp_path / "missing" / "v.xml")]
    )
    assert result.exit_code == 2
    assert "cannot write the JUnit report to" in result.output
