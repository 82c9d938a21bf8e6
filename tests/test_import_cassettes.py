"""`mock-llm-sse import`: vcrpy / pytest-recording cassettes become scenario files that the server
replays byte for byte. The cassettes in tests/cassettes were written by vcrpy's own serializer; the
bodies a replay must equal are read back with vcrpy's own reader."""

from __future__ import annotations

import gzip
import importlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import vcr
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from vcr.filters import decode_response
from vcr.request import Request
from vcr.serialize import deserialize, serialize
from vcr.serializers import yamlserializer

from mock_server.cassettes import Interaction, scenario_fields
from mock_server.cli import main
from mock_server.http.server import MockServer
from mock_server.scenarios.catalog import load_paths
from mock_server.scenarios.loading import parse_document
from mock_server.scenarios.model import Scenario, load_scenario
from mock_server.scenarios.patterns import MATCH_INPUT_CHARS
from mock_server.settings import Settings
from mock_server.upstream.recording_file import write_scenario
from tests.wire import Ending, fetch

CASSETTES = Path(__file__).parent / "cassettes"
UNPACED = {"X-Mock-Chunk-Ms": "0"}
"""For the requests the bundled `default` scenario answers: without its 30 ms a word."""
SECRETS = (
    "sk-proj-CASSETTEsecretKEY",
    "REQUESTcookieSECRET",
    "RESPONSEsetCOOKIEsecret",
    "sk-ant-api03-CASSETTEsecret",
    "ECHOEDsecret",
    "sk-or-v1-CASSETTEsecret",
    "AIzaSyCASSETTEsecret",
)
"""Credentials the fixture cassettes carry in request headers, cookies, response headers and URLs."""


def run_import(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["import", *map(str, args)])


def recorded(cassette: Path) -> list[tuple[Any, bytes]]:
    """Each request of a cassette and the body vcrpy would replay for it, decompressed as an HTTP client
    decompresses it."""
    requests, responses = deserialize(cassette.read_text(), yamlserializer)[:2]
    return [
        (request, decode_response(response)["body"]["string"])
        for request, response in zip(requests, responses, strict=True)
    ]


def scenarios_in(directory: Path) -> dict[str, Scenario]:
    return {entry.scenario.name: entry.scenario for entry in load_paths([directory])}


def replayed(scenario: Scenario) -> bytes:
    assert scenario.recording is not None
    return b"".join(event.data for event in scenario.recording.events)


def write_cassette(path: Path, *interactions: tuple[Request, dict[str, Any]]) -> Path:
    """A cassette as vcrpy writes one."""
    cassette = {"requests": [request for request, _ in interactions], "responses": [r for _, r in interactions]}
    path.write_text(serialize(cassette, yamlserializer))
    return path


def import_one(tmp_path: Path, *interactions: tuple[Request, dict[str, Any]]) -> Scenario:
    """Import a cassette of `interactions` that gives one scenario, and that scenario as the server loads it."""
    result = run_import(write_cassette(tmp_path / "c.yaml", *interactions), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (scenario,) = scenarios_in(tmp_path / "out").values()
    return scenario


def chat_request(prompt: str) -> Request:
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    uri = "https://api.openai.com/v1/chat/completions"
    return Request("POST", uri, json.dumps(body).encode(), {"Authorization": "Bearer sk-proj-CASSETTEsecretKEY9"})


def response(
    body: bytes | str, *, status: int = 200, content_type: str = "text/event-stream", **headers: str
) -> dict[str, Any]:
    named = {name.replace("_", "-"): [value] for name, value in headers.items()}
    return {
        "status": {"code": status, "message": "OK"},
        "headers": {"Content-Type": [content_type], **named},
        "body": {"string": body.encode() if isinstance(body, str) else body},
    }


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("imported")
    result = run_import(CASSETTES, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def replaying(imported: Path) -> Iterator[MockServer]:
    """A server of the imported scenarios (and the bundled ones)."""
    with MockServer(settings=Settings(port=0, scenario_dirs=(imported,), access_log=False)) as running:
        yield running


# --- the command -------------------------------------------------------------------------------


def test_each_interaction_becomes_a_scenario_file_that_validate_accepts(tmp_path: Path) -> None:
    result = run_import(CASSETTES, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    files = sorted(tmp_path.glob("*.yaml"))
    assert len(lines) == len(files) == 6
    assert all(line.startswith(f"wrote {tmp_path}/") for line in lines)
    assert (
        f"wrote {tmp_path}/chat-completions-gpt-4o-mini-cf976cba.yaml: {CASSETTES}/openai_chat.yaml #1: "
        "POST https://api.openai.com/v1/chat/completions (200, 1 event)" in lines
    )
    validated = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert validated.exit_code == 0, validated.output
    assert validated.output.startswith("OK: 6 scenario(s)")


def test_a_scenario_file_names_its_origin_and_matches_path_model_and_prompt(imported: Path) -> None:
    text = (imported / "chat-completions-gpt-4o-b3ee9c0c.yaml").read_text()
    assert text.startswith(
        "name: chat-completions-gpt-4o-b3ee9c0c\n"
        f"description: 'Imported from {CASSETTES}/openai_chat.yaml #0: POST https://api.openai.com/v1/chat/completions'\n"
        "match:\n"
        "  path: ^/v1/chat/completions$\n"
        "  model: ^gpt\\-4o$\n"
        "  prompt: ^Say\\ hello\\ in\\ Japanese$\n"
        "content_type: text/event-stream; charset=utf-8\n"
        "headers:\n"
        "  CF-RAY: 956dc90fc846385f-LHR\n"
    )
    assert "recording:\n  status: 200\n  upstream: POST https://api.openai.com/v1/chat/completions (imported)\n" in text
    assert '  - at_ms: 0\n    data: |+\n      data: {"id":"chatcmpl-BnC1x2y3z4",' in text
    assert "こんにちは" in text  # readable, not escaped


def test_response_headers_keep_what_a_client_reads_and_drop_framing_and_what_the_server_sends(imported: Path) -> None:
    scenario = scenarios_in(imported)["chat-completions-gpt-4o-3fcef4c7"]
    headers = dict(scenario.headers)
    assert headers["retry-after"] == "2"
    assert headers["x-ratelimit-remaining-tokens"] == "29999990"  # "tokens" is no credential
    assert headers["openai-processing-ms"] == "120"
    dropped = {"set-cookie", "transfer-encoding", "connection", "date", "content-type", "x-request-id"}
    assert not dropped & {name.lower() for name in headers}
    assert scenario.content_type == "application/json; charset=utf-8"


def test_no_secret_from_a_cassette_reaches_a_written_file(tmp_path: Path) -> None:
    azure = write_cassette(
        tmp_path / "azure.yaml",
        (
            Request(
                "POST",
                "https://me:hunter2PASSWORD@example-resource.openai.azure.com/openai/deployments/gpt4o/chat/completions"
                "?api-version=2024-10-21&api_key=QUERYsecretAPIKEY&token=QUERYsecretTOKEN#frag",
                b'{"messages": [{"role": "user", "content": "hi"}]}',
                {"api-key": "AZUREsecretHEADER", "Cookie": "session=AZUREsecretCOOKIE"},
            ),
            response(
                "{}",
                content_type="application/json",
                api_key="RESPONSEsecretAPIKEY",
                x_auth_token="RESPONSEsecretTOKEN",
            ),
        ),
    )
    out = tmp_path / "out"
    result = run_import(CASSETTES, azure, "--out", out)
    assert result.exit_code == 0, result.output
    written = "\n".join(path.read_text() for path in out.iterdir())
    found = [s for s in (*SECRETS, "hunter2PASSWORD", "AZUREsecret", "QUERYsecret", "RESPONSEsecret") if s in written]
    assert found == []
    for name in ("authorization", "cookie", "x-api-key", "api-key", "api_key", "key=", "token="):
        assert name not in written.lower(), name
    assert "gpt4o/chat/completions?api-version=2024-10-21 (imported)" in written
    assert "streamGenerateContent?alt=sse (imported)" in written


def test_importing_again_gives_the_same_names_and_leaves_existing_files_unless_forced(tmp_path: Path) -> None:
    assert run_import(CASSETTES, "--out", tmp_path).exit_code == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    target = tmp_path / "messages-claude-haiku-4-5-c579a962.yaml"
    target.write_text("name: messages-claude-haiku-4-5-c579a962\nreply: mine\n")

    again = run_import(CASSETTES, "--out", tmp_path)
    assert again.exit_code == 1
    assert again.stdout == ""
    assert (
        f"skipped {target}: it exists (--force replaces it); from {CASSETTES}/anthropic_messages.yaml #0"
        in again.stderr
    )
    assert again.stderr.count("skipped ") == 6
    assert again.stderr.endswith(f"0 scenario file(s) written to {tmp_path}; 0 not imported, 6 skipped.\n")
    assert target.read_text().endswith("reply: mine\n")

    forced = run_import(CASSETTES, "--out", tmp_path, "--force")
    assert forced.exit_code == 0, forced.output
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_import_runs_as_a_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mock_server",
            "import",
            str(CASSETTES / "anthropic_messages.yaml"),
            "--out",
            "scenarios",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "wrote scenarios/messages-claude-haiku-4-5-c579a962.yaml: "
        f"{CASSETTES}/anthropic_messages.yaml #0: POST https://api.anthropic.com/v1/messages (200, 9 events)\n"
    )
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "no such file or directory"),
        ("name: x\nreply: hi\n", "not a vcrpy cassette: expected a mapping with an `interactions:` list"),
        ("interactions: [\n  {request: \n", "not a cassette: invalid YAML at line 3"),
        ("- request: {}\n  response: {}\n", "convert it with vcrpy's `python -m vcr.migration PATH` first"),
        ("interactions:\n- response: {}\n", "#0: `request:` is missing or not a mapping"),
        ("interactions:\n- {request: {method: GET, uri: /}, response: {status: {code: OK}}}\n", "#0: `response.status"),
        (
            "interactions:\n- !!python/object/apply:os.system [echo hacked]\n",
            "a YAML tag that is not read here at line 2",
        ),
    ],
    ids=["missing", "a-scenario", "bad-yaml", "vcrpy-0.x", "no-request", "no-status", "unsafe-tag"],
)
def test_what_is_not_a_cassette_is_a_clear_error_naming_the_file(
    tmp_path: Path, content: str | None, error: str
) -> None:
    path = tmp_path / "cassette.yaml"
    if content is not None:
        path.write_text(content)
    result = run_import(path, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert result.stderr.startswith(f"{path}")
    assert error in result.stderr
    assert "Traceback" not in result.output


def test_out_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = run_import(CASSETTES, "--out", tmp_path / "file")
    assert result.exit_code == 1
    assert "is a file; give a directory for the scenario files" in result.stderr


def test_an_interaction_that_cannot_be_replayed_is_reported_and_the_others_are_imported(tmp_path: Path) -> None:
    cassette = write_cassette(
        tmp_path / "speech.yaml",
        (chat_request("first"), response("data: one\n\n")),
        (
            Request("POST", "https://api.openai.com/v1/audio/speech", b'{"input": "hi"}', {}),
            response(b"ID3\x04\x00\xff\xfb\x90\x64", content_type="audio/mpeg"),
        ),
        (chat_request("gzip, unsaid"), response(gzip.compress(b'{"ok": true}'), content_type="application/json")),
        (chat_request("zstd"), response(b"\x28\xb5\x2f\xfd", content_type="application/json", content_encoding="zstd")),
        (chat_request("last"), response("data: two\n\n")),
    )
    result = run_import(cassette, "--out", tmp_path / "out")
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{cassette} #1: the response body is not UTF-8 text: byte 5 is b'\\xff'")
    assert errors[1].startswith(f"{cassette} #2: the response body is not UTF-8 text (it looks gzip-compressed, but no")
    assert errors[2] == f"{cassette} #3: the response body is zstd-encoded, which cannot be decoded here; known: " + (
        "gzip, x-gzip, deflate, br"
    )
    assert errors[3:] == [f"2 scenario file(s) written to {tmp_path / 'out'}; 3 not imported, 0 skipped."]
    assert len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize(
    "body",
    [
        "data: a\r\n\r\ndata: b\r\n\r\n",
        "data: a\rdata: b\r\r",
        "data: tab\there\n\n: keep-alive\n\n",
        "data: trailing spaces   \n\n",
        "  data: leading spaces\n\n",
        "data: ctrl \x00\x01\x1b\x7f\n\n",
        "data: next-line \x85 and line-separator \u2028 and bom \ufeff\n\n",
        "data: é 日本 👋 ﬁ\n\n\n",
        "data: no blank line at the end",
        "data: ends in cr\r",
        "data: 'single' \"double\" \\ # &anchor *alias !tag %\n\n",
        "\n\n",
        "",
    ],
    ids=[
        "crlf",
        "cr",
        "tab-and-comment",
        "trailing-spaces",
        "leading-spaces",
        "control",
        "unicode-breaks",
        "multibyte",
        "no-end",
        "cr-end",
        "yaml-syntax",
        "blank",
        "empty",
    ],
)
def test_event_bytes_read_back_exactly(tmp_path: Path, body: str) -> None:
    assert replayed(import_one(tmp_path, (chat_request("x"), response(body)))) == body.encode()


def test_an_sse_body_is_cut_into_blocks_with_a_tail_as_its_last_event(tmp_path: Path) -> None:
    body = "data: 1\r\n\r\n: ping\n\nevent: x\ndata: 2\n\ndata: cut mid-ev"
    scenario = import_one(tmp_path, (chat_request("x"), response(body)))
    assert scenario.recording is not None
    blocks = [event.data for event in scenario.recording.events]
    assert blocks == [b"data: 1\r\n\r\n", b": ping\n\n", b"event: x\ndata: 2\n\n", b"data: cut mid-ev"]
    assert [event.counted for event in scenario.recording.events] == [True, False, True, True]


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
        ("gzip", lambda data: data),  # decoded already, header kept (aiohttp records so)
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "decoded-already"],
)
def test_a_compressed_body_is_decoded(tmp_path: Path, encoding: str, encode: Any) -> None:
    whole = '{"choices": [{"message": {"content": "Grüße"}}]}\n'.encode()
    scenario = import_one(
        tmp_path,
        (chat_request("x"), response(encode(whole), content_type="application/json", Content_Encoding=encoding)),
    )
    assert replayed(scenario) == whole
    assert "content-encoding" not in {name.lower() for name, _ in scenario.headers}


def test_a_brotli_body_is_decoded_when_brotli_is_installed(tmp_path: Path) -> None:
    brotli: Any
    try:
        brotli = importlib.import_module("brotli")
    except ImportError:
        brotli = None
    encoded = brotli.compress(b'{"ok": true}') if brotli is not None else b"\x8b\x05\x80\xff"
    answer = response(encoded, content_type="application/json", Content_Encoding="br")
    if brotli is not None:
        assert replayed(import_one(tmp_path, (chat_request("x"), answer))) == b'{"ok": true}'
        return
    result = run_import(write_cassette(tmp_path / "c.yaml", (chat_request("x"), answer)), "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "is brotli-encoded (br); install the `brotli` package to decode it" in result.stderr


def test_yaml_as_older_vcrpy_and_json_cassettes_have_it_is_read(tmp_path: Path) -> None:
    """Python 2 era text tags and a request body that was a file object, and vcrpy's JSON serializer."""
    (tmp_path / "old.yaml").write_text(
        "interactions:\n"
        "- request:\n"
        "    body: !!python/object/new:_io.BytesIO\n"
        "      state: !!python/tuple\n"
        "      - !!binary |\n"
        "        eyJtb2RlbCI6ICJncHQtNG8iLCAibWVzc2FnZXMiOiBbeyJyb2xlIjogInVzZXIiLCAiY29udGVudCI6ICJoaSJ9XX0=\n"
        "      - 0\n"
        "      - null\n"
        "    headers: {}\n"
        "    method: POST\n"
        "    uri: !!python/unicode https://api.openai.com/v1/chat/completions\n"
        "  response:\n"
        "    body: {string: !!python/unicode 'data: hi\n\n\n'}\n"
        "    headers: {Content-Type: [text/event-stream]}\n"
        "    status: {code: 200, message: OK}\n"
        "version: 1\n"
    )
    (tmp_path / "new.json").write_text(
        json.dumps(
            {
                "interactions": [
                    {
                        "request": {
                            "method": "GET",
                            "uri": "http://localhost:8383/completions?messages=hello",
                            "body": None,
                        },
                        "response": {
                            "status": {"code": 200, "message": "OK"},
                            "headers": {"content-type": ["text/event-stream"]},
                            "body": {"string": "data: hello\n\n"},
                        },
                    }
                ],
                "version": 1,
            }
        )
    )
    result = run_import(tmp_path / "old.yaml", tmp_path / "new.json", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    scenarios = sorted(scenarios_in(tmp_path / "out").values(), key=lambda s: s.description)
    assert [(s.match and s.match.prompt and s.match.prompt.source, replayed(s)) for s in scenarios] == [
        ("^hello$", b"data: hello\n\n"),
        ("^hi$", b"data: hi\n\n"),
    ]


def test_the_same_request_twice_gets_a_numbered_name(tmp_path: Path) -> None:
    cassette = write_cassette(
        tmp_path / "retry.yaml",
        (chat_request("again"), response('{"error": {}}', status=429, content_type="application/json")),
        (chat_request("again"), response("data: ok\n\n")),
    )
    result = run_import(cassette, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    names = sorted(path.stem for path in (tmp_path / "out").iterdir())
    assert names == [names[0], f"{names[0]}-2"]


def test_a_prompt_longer_than_match_rules_read_is_matched_by_its_start(tmp_path: Path) -> None:
    prompt = "why? " * (MATCH_INPUT_CHARS // 4)
    scenario = import_one(tmp_path, (chat_request(prompt), response("data: ok\n\n")))
    assert scenario.matches(prompt, "gpt-4o", {}, "/v1/chat/completions")
    assert scenario.matches(prompt + " and more", "gpt-4o", {}, "/v1/chat/completions")
    assert not scenario.matches("how?" + prompt[4:], "gpt-4o", {}, "/v1/chat/completions")
    assert not scenario.matches(prompt[: MATCH_INPUT_CHARS - 1], "gpt-4o", {}, "/v1/chat/completions")


def test_repeated_header_values_are_joined_and_unsendable_headers_left_out(tmp_path: Path) -> None:
    answer = response("data: ok\n\n")
    answer["headers"].update({"Vary": ["Origin", "Accept-Encoding"], "X-Note": ["caf\u00e9"], "Bad Name": ["x"]})
    scenario = import_one(tmp_path, (chat_request("x"), answer))
    assert dict(scenario.headers) == {"Vary": "Origin, Accept-Encoding"}


# --- replayed by the server --------------------------------------------------------------------

REPLAYABLE = [
    ("openai_chat.yaml", 0, "/v1/chat/completions"),
    ("openai_chat.yaml", 1, "/v1/chat/completions"),
    ("openai_chat.yaml", 2, "/v1/chat/completions"),
    ("anthropic_messages.yaml", 0, "/v1/messages"),
    ("openrouter_stream.yaml", 0, "/v1/chat/completions"),
]


@pytest.mark.parametrize(("cassette", "index", "path"), REPLAYABLE, ids=[f"{c}#{i}" for c, i, _ in REPLAYABLE])
def test_the_recorded_request_gets_the_recorded_body_byte_for_byte(
    replaying: MockServer, cassette: str, index: int, path: str
) -> None:
    request, body = recorded(CASSETTES / cassette)[index]
    answer = fetch(replaying.url + path, method="POST", body=request.body, headers={"Content-Type": "application/json"})
    assert answer.ending is Ending.COMPLETE
    assert answer.body == body
    status = deserialize((CASSETTES / cassette).read_text(), yamlserializer)[1][index]["status"]["code"]
    assert answer.status == status
    assert answer.headers["x-mock-scenario"].startswith(("chat-completions-", "messages-"))


def test_the_openai_sdk_reads_the_replayed_stream_whole_answer_and_rate_limit(replaying: MockServer) -> None:
    with openai.OpenAI(base_url=replaying.openai_base_url, api_key="sk-other", max_retries=0) as client:
        messages: Any = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello in Japanese"},
        ]
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "こんにちは! 👋 (Konnichiwa)"
        assert chunks[-1].choices[0].finish_reason == "stop"

        whole = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "What is 2+2?"}]
        )
        assert whole.choices[0].message.content == "2 + 2 = 4."  # the gzip-encoded body, decoded on import

        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Tell me a long story"}], stream=True
            )
        assert limited.value.code == "rate_limit_exceeded"
        assert limited.value.response.headers["retry-after"] == "2"

        routed = client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Greet me in German"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in routed if c.choices) == "Grüße aus Zürich — ☕"


def test_the_anthropic_sdk_reads_the_replayed_stream(replaying: MockServer) -> None:
    with anthropic.Anthropic(base_url=replaying.url, api_key="sk-ant-other", max_retries=0) as client:
        messages: Any = [{"role": "user", "content": "Write a haiku about streams"}]
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=256, messages=messages) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert text == "Café streams run—\nbytes falling like rain\neach token a drop 🌧"
    assert (final.id, final.stop_reason, final.usage.output_tokens) == ("msg_01XFDUDYJgAACzvnptvVoYEL", "end_turn", 21)


@pytest.mark.parametrize(
    ("cassette", "blocks"),
    [("openai_chat.yaml", 2), ("openrouter_stream.yaml", 4)],
    ids=["two-events", "keep-alives-not-counted"],
)
def test_a_drop_fault_cuts_the_replay_after_the_second_event(replaying: MockServer, cassette: str, blocks: int) -> None:
    request, body = recorded(CASSETTES / cassette)[0]
    answer = fetch(
        replaying.openai_base_url + "/chat/completions",
        method="POST",
        body=request.body,
        headers={"Content-Type": "application/json", "X-Mock-Fault": "drop@2"},
    )
    assert answer.ending is Ending.EOF
    kept = re.findall(rb".*?(?:\r\n\r\n|\n\n)", body, flags=re.DOTALL)[:blocks]
    assert answer.body == b"".join(kept)
    assert answer.body.count(b"data: {") == 2


@pytest.mark.parametrize(
    ("model", "prompt", "chosen"),
    [
        ("gpt-4o", "Say hello in Japanese", "chat-completions-gpt-4o-b3ee9c0c"),
        ("gpt-4o", "Tell me a long story", "chat-completions-gpt-4o-3fcef4c7"),
        ("gpt-4o-mini", "What is 2+2?", "chat-completions-gpt-4o-mini-cf976cba"),
        ("gpt-4o-mini", "Say hello in Japanese", "default"),
        ("gpt-4o", "Say hello in Japanese!", "default"),
        ("gpt-4o", "say hello in japanese", "default"),
    ],
)
def test_the_recording_is_chosen_by_path_model_and_prompt(
    replaying: MockServer, model: str, prompt: str, chosen: str
) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    answer = httpx.post(replaying.openai_base_url + "/chat/completions", json=body, headers=UNPACED, timeout=10)
    assert answer.headers["x-mock-scenario"] == chosen
    other_path = {"model": model, "input": prompt}
    on_another_path = httpx.post(replaying.openai_base_url + "/responses", json=other_path, headers=UNPACED, timeout=10)
    assert on_another_path.headers["x-mock-scenario"] == "default"


# --- recorded by vcrpy ---------------------------------------------------------------------------


def test_a_cassette_vcrpy_records_from_a_server_replays_the_same(tmp_path: Path) -> None:
    """Record real calls with vcrpy (the OpenAI SDK over httpx, streamed and whole), import the
    cassette, and serve it: the SDK gets the same answers, byte for byte on the wire."""
    cassette = tmp_path / "recorded.yaml"
    messages: Any = [{"role": "user", "content": "Zürich, 日本 and 👋"}]
    with (
        MockServer(settings=Settings(port=0, access_log=False)) as upstream,
        vcr.use_cassette(str(cassette)),
        openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-recorded-SECRET", max_retries=0) as client,
    ):
        streamed = list(
            client.chat.completions.create(model="gpt-4o", messages=messages, stream=True, extra_headers=UNPACED)
        )
        whole = client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=UNPACED)
    out = tmp_path / "out"
    result = run_import(cassette, "--out", out)
    assert result.exit_code == 0, result.output
    assert "sk-recorded-SECRET" not in "".join(path.read_text() for path in out.iterdir())

    (stream_request, stream_body), _ = recorded(cassette)
    with MockServer(settings=Settings(port=0, scenario_dirs=(out,), access_log=False)) as replay:
        answer = fetch(replay.openai_base_url + "/chat/completions", method="POST", body=stream_request.body)
        assert answer.body == stream_body
        with openai.OpenAI(base_url=replay.openai_base_url, api_key="x", max_retries=0) as client:
            again = list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
            whole_again = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert [c.model_dump() for c in again] == [c.model_dump() for c in streamed]
    assert whole_again.model_dump() == whole.model_dump()


def test_a_directory_is_searched_for_cassettes_but_not_for_the_scenarios_written_into_it(tmp_path: Path) -> None:
    nested = tmp_path / "cassettes" / "test_module"
    nested.mkdir(parents=True)
    shutil.copy(CASSETTES / "anthropic_messages.yaml", nested / "test_haiku.yaml")
    out = tmp_path / "cassettes" / "scenarios"
    assert run_import(tmp_path / "cassettes", "--out", out).exit_code == 0
    again = run_import(tmp_path / "cassettes", "--out", out, "--force")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"wrote {out}/messages-claude-haiku-4-5-c579a962.yaml: {nested}/test_haiku.yaml #0")
    assert again.stdout.count("\n") == 1


def test_the_readme_example_is_a_valid_scenario() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n### Import cassettes\n", 1)[1].split("\n## ", 1)[0]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = load_scenario(parse_document(example, "README.md"))
    assert scenario.recording is not None
    assert scenario.recording.events[-1].data == b"data: [DONE]\n\n"


TRICKY_TEXT = st.lists(
    st.sampled_from(["data: ", "event: x", ": ping", "\n", "\r", "\r\n", "\t", " ", "é", "👋", "\x85", "\u2028"])
    | st.text(st.characters(codec="utf-8"), max_size=3),
    max_size=30,
).map("".join)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(TRICKY_TEXT)
def test_any_text_body_is_written_so_that_it_reads_back_byte_for_byte(body: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        interaction = Interaction("POST", "https://api.openai.com/v1/chat/completions", b"{}", 200, (), body.encode())
        fields = scenario_fields(interaction, "fuzz #0")
        write_scenario(fields, Path(directory) / "fuzz.yaml")
        (scenario,) = scenarios_in(Path(directory)).values()
    assert replayed(scenario) == body.encode()


def test_a_gemini_cassette_matches_the_model_its_path_names_and_replays_to_google_genai(tmp_path: Path) -> None:
    from google import genai
    from google.genai import types as genai_types

    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}
    request = Request("POST", f"https://generativelanguage.googleapis.com{path}?alt=sse", json.dumps(body).encode(), {})
    chunk = '{"candidates": [{"content": {"parts": [{"text": "Hi from the cassette"}], "role": "model"}}]}'
    scenario = import_one(tmp_path, (request, response(f"data: {chunk}\r\n\r\n")))
    assert scenario.matches("Say hi", "gemini-2.5-flash", {}, path)  # the model is the path's
    assert not scenario.matches("Say hi", "gemini-2.0-pro", {}, path)
    settings = Settings(port=0, scenario_dirs=(tmp_path / "out",), access_log=False)
    with MockServer(settings=settings) as server:
        options = genai_types.HttpOptions(base_url=server.url, api_version="v1beta", headers=UNPACED)
        with genai.Client(api_key="x", http_options=options) as client:
            chunks = client.models.generate_content_stream(model="gemini-2.5-flash", contents="Say hi")
            assert "".join(chunk.text or "" for chunk in chunks) == "Hi from the cassette"
