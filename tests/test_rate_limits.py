"""Rate limits through the official SDKs: each provider's headers counting down, its 429 when a limit
is spent (which takes nothing and moves no conversation on), refilling as a fake clock moves, tokens
counted from the usage, separate counts per key and per scenario, reset, and the checks of `limits:`,
`--rpm`, `--tpm` and `--rpd`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from click.testing import CliRunner
from google import genai
from google.genai import errors, types
from openai import AzureOpenAI, OpenAI

from mock_server.cli import main
from mock_server.dialects.quota import go_duration, rfc3339
from mock_server.errors import ScenarioError
from mock_server.http.azure import EXAMPLE_VERSION
from mock_server.http.server import MockServer
from mock_server.scenarios.catalog import load_paths
from mock_server.settings import Settings
from mock_server.wire.outcome import Outcome
from tests.test_bedrock import client_for

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

START = 1_700_000_000.0
UNPACED = {"X-Mock-Chunk-Ms": "0"}
HI: list[Any] = [{"role": "user", "content": "hi"}]


class Clock:
    """A wall clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


_OPENED: list[OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the clients a test opened, with the connections they keep."""
    yield
    while _OPENED:
        _OPENED.pop().close()


def openai_client(server: MockServer, key: str = "sk-one", max_retries: int = 0) -> OpenAI:
    client = OpenAI(base_url=server.openai_base_url, api_key=key, max_retries=max_retries, default_headers=UNPACED)
    _OPENED.append(client)
    return client


def chat_headers(client: OpenAI, *, stream: bool = False, **options: Any) -> Mapping[str, str]:
    """The headers of a chat completion's response, its body read (a stream to its end)."""
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI, stream=stream, **options)
    parsed = raw.parse()
    if stream:
        for _ in parsed:
            pass
    return raw.headers


def requests_left(headers: Mapping[str, str]) -> tuple[str, str, str]:
    return (
        headers["x-ratelimit-limit-requests"],
        headers["x-ratelimit-remaining-requests"],
        headers["x-ratelimit-reset-requests"],
    )


def test_openai_remaining_counts_down_and_the_next_request_is_a_rate_limit_error(
    make_server: Callable[..., MockServer], clock: Clock
) -> None:
    server = make_server(rpm=3, wall_clock=clock)
    client = openai_client(server)
    seen = [requests_left(chat_headers(client, stream=stream)) for stream in (False, True, False)]
    assert seen == [("3", "2", "20s"), ("3", "1", "40s"), ("3", "0", "1m0s")]
    for _ in range(2):  # a refused request takes nothing: the wait stays what it was
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=HI)
        error = caught.value
        assert (error.response.headers["retry-after"], error.response.headers["retry-after-ms"]) == ("20", "20000")
        assert requests_left(error.response.headers) == ("3", "0", "1m0s")
        assert error.code == "rate_limit_exceeded"
        assert error.type == "requests"
        assert "gpt-4o on requests per min (RPM): Limit 3, Used 3" in error.message
        assert "--rpm" in error.message
    records = server.records()
    assert [(r.status, r.outcome) for r in records[-2:]] == [(429, Outcome.ERROR_STATUS)] * 2
    assert records[-1].retry_after == "20"


def test_the_limit_refills_as_the_clock_moves(make_server: Callable[..., MockServer], clock: Clock) -> None:
    server = make_server(rpm=3, wall_clock=clock)
    client = openai_client(server)
    for _ in range(3):
        chat_headers(client)
    clock.advance(19.9)
    with pytest.raises(openai.RateLimitError) as caught:
        chat_headers(client)
    assert caught.value.response.headers["retry-after-ms"] == "100"
    clock.advance(0.1)  # one request back, every 20 s
    assert requests_left(chat_headers(client)) == ("3", "0", "1m0s")
    with pytest.raises(openai.RateLimitError):
        chat_headers(client)
    clock.advance(60)  # a whole window: the limit is whole again
    assert requests_left(chat_headers(client)) == ("3", "2", "20s")


def test_a_client_that_waits_the_retry_after_gets_through(
    make_server: Callable[..., MockServer], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(rpm=3, wall_clock=clock)
    for _ in range(3):
        chat_headers(openai_client(server))
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the SDK's wait moves the server's clock instead of the test's time
        waits.append(seconds)
        clock.advance(seconds)

    monkeypatch.setattr("openai._base_client.time.sleep", sleep)
    patient = openai_client(server, max_retries=2)
    assert requests_left(chat_headers(patient))[1] == "0"
    assert waits == [20.0]  # retry-after-ms, not the SDK's own backoff
    assert [r.status for r in server.records()[-2:]] == [429, 200]


def test_tokens_per_minute_count_the_usage(make_server: Callable[..., MockServer], clock: Clock) -> None:
    server = make_server(tpm=100, wall_clock=clock)
    client = openai_client(server)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    used = raw.parse().usage
    assert used is not None
    assert used.total_tokens > 0
    assert raw.headers["x-ratelimit-limit-tokens"] == "100"
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(100 - used.total_tokens)
    assert raw.headers["x-ratelimit-reset-tokens"] == go_duration(used.total_tokens * 60 / 100)
    assert "x-ratelimit-limit-requests" not in raw.headers
    answered = 1
    while True:
        try:
            chat_headers(client)
            answered += 1
        except openai.RateLimitError as exc:
            error = exc
            break
    # Requests are let through while a token is left; the last one may take the count below zero.
    assert answered == math.ceil(100 / used.total_tokens)
    over = answered * used.total_tokens - 100
    assert error.type == "tokens"
    assert "on tokens per min (TPM): Limit 100" in error.message
    assert error.response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert error.response.headers["retry-after-ms"] == str(math.ceil((over + 1) * 60_000 / 100))


def test_each_key_and_each_address_has_its_own_count(make_server: Callable[..., MockServer], clock: Clock) -> None:
    server = make_server(rpm=2, wall_clock=clock)
    one, two = openai_client(server, "sk-one"), openai_client(server, "sk-two")
    assert [chat_headers(one)["x-ratelimit-remaining-requests"] for _ in range(2)] == ["1", "0"]
    with pytest.raises(openai.RateLimitError):
        chat_headers(one)
    assert chat_headers(two)["x-ratelimit-remaining-requests"] == "1"
    keyless = [httpx.post(f"{server.url}/v1/chat/completions", json={"messages": HI}) for _ in range(3)]
    assert [r.status_code for r in keyless] == [200, 200, 429]  # counted by address, together
    anthropic_key = httpx.post(
        f"{server.url}/v1/messages",
        headers={"x-api-key": "sk-three", "anthropic-version": "2023-06-01"},
        json={"model": "claude", "max_tokens": 9, "messages": HI},
    )
    assert anthropic_key.headers["anthropic-ratelimit-requests-remaining"] == "1"


def test_a_scenarios_limits_count_per_key_and_scenario_beside_the_servers(
    make_server: Callable[..., MockServer], clock: Clock
) -> None:
    server = make_server(rpm=5, wall_clock=clock)
    server.add_scenario("scarce", reply="Scarce.", limits={"rpm": 2})
    client = openai_client(server)
    scarce: dict[str, Any] = {"extra_headers": {"X-Mock-Scenario": "scarce"}}
    # The headers show the limit with the least left: the scenario's, then the server's.
    assert [requests_left(chat_headers(client, **scarce))[:2] for _ in range(2)] == [("2", "1"), ("2", "0")]
    with pytest.raises(openai.RateLimitError) as caught:
        chat_headers(client, **scarce)
    assert "`limits.rpm` of scenario 'scarce'" in caught.value.message
    assert caught.value.response.headers["x-mock-scenario"] == "scarce"
    assert caught.value.response.headers["retry-after"] == "30"
    assert requests_left(chat_headers(client))[:2] == ("5", "2")  # another scenario: the server's limit only
    assert requests_left(chat_headers(openai_client(server, "sk-two"), **scarce))[:2] == ("2", "1")
    chat_headers(client)
    chat_headers(client)
    with pytest.raises(openai.RateLimitError) as caught:
        chat_headers(client)
    assert "--rpm" in caught.value.message


def test_a_scenarios_limits_alone_leave_other_scenarios_unlimited(
    make_server: Callable[..., MockServer], clock: Clock
) -> None:
    server = make_server(wall_clock=clock)
    server.add_scenario("scarce", reply="Scarce.", limits={"rpm": 1, "tpm": 1000})
    client = openai_client(server)
    headers = chat_headers(client, extra_headers={"X-Mock-Scenario": "scarce"})
    assert requests_left(headers)[:2] == ("1", "0")
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert not [name for name in chat_headers(client) if "ratelimit" in name]


def test_a_refused_request_moves_no_conversation_on(make_server: Callable[..., MockServer], clock: Clock) -> None:
    server = make_server(wall_clock=clock)
    server.add_scenario("agent", replies=["First.", "Second.", "Third."], limits={"rpm": 1})
    client = openai_client(server)

    def reply() -> str | None:
        answer = client.chat.completions.create(model="gpt-4o", messages=HI, extra_headers={"X-Mock-Scenario": "agent"})
        return answer.choices[0].message.content

    assert reply() == "First."
    with pytest.raises(openai.RateLimitError):
        reply()
    clock.advance(60)
    assert reply() == "Second."


def test_reset_makes_every_limit_whole_again(make_server: Callable[..., MockServer], clock: Clock) -> None:
    server = make_server(rpm=1, wall_clock=clock)
    client = openai_client(server)
    chat_headers(client)
    with pytest.raises(openai.RateLimitError):
        chat_headers(client)
    assert httpx.post(f"{server.url}/_mock/reset").status_code == 200
    assert requests_left(chat_headers(client))[:2] == ("1", "0")


def test_anthropic_headers_count_down_to_a_rate_limit_error(
    make_server: Callable[..., MockServer], clock: Clock
) -> None:
    server = make_server(rpm=2, tpm=10_000, wall_clock=clock)
    with anthropic.Anthropic(base_url=server.url, api_key="sk-ant", max_retries=0) as client:
        seen = []
        for _ in range(2):
            raw = client.messages.with_raw_response.create(
                model="claude-mock-1", max_tokens=64, messages=HI, extra_headers=UNPACED
            )
            message = raw.parse()
            headers = raw.headers
            seen.append(headers["anthropic-ratelimit-requests-remaining"])
            assert headers["anthropic-ratelimit-requests-limit"] == "2"
            assert headers["anthropic-ratelimit-tokens-limit"] == "10000"
        assert seen == ["1", "0"]
        assert headers["anthropic-ratelimit-requests-reset"] == rfc3339(START + 60)
        assert datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"]) == datetime.fromtimestamp(
            START + 60, UTC
        )
        tokens = message.usage.input_tokens + message.usage.output_tokens
        assert headers["anthropic-ratelimit-tokens-remaining"] == str(10_000 - 2 * tokens)
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(model="claude-mock-1", max_tokens=64, messages=HI)
    error = caught.value
    assert error.response.headers["retry-after"] == "30"
    assert isinstance(error.body, dict)
    assert error.body["type"] == "error"
    assert error.body["error"]["type"] == "rate_limit_error"
    assert "rate limit of 2 requests per minute" in error.message
    assert "x-ratelimit-limit-requests" not in error.response.headers


def test_gemini_says_its_quota_in_the_body_only(make_server: Callable[..., MockServer], clock: Clock) -> None:
    server = make_server(rpm=1, wall_clock=clock)
    options = types.HttpOptions(base_url=server.url, headers=UNPACED)
    with genai.Client(api_key="AIza-one", http_options=options) as client:
        answered = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert answered.sdk_http_response is not None
        assert answered.sdk_http_response.headers is not None
        assert not [name for name in answered.sdk_http_response.headers if "ratelimit" in name.lower()]
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    error = caught.value
    assert (error.code, error.status) == (429, "RESOURCE_EXHAUSTED")
    assert "Please retry in 60.000000000s." in (error.message or "")
    details = {detail["@type"].rsplit(".", 1)[1]: detail for detail in error.details["error"]["details"]}
    assert details["RetryInfo"]["retryDelay"] == "60s"
    violation = details["QuotaFailure"]["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
    assert violation["quotaDimensions"]["model"] == "gemini-2.5-flash"
    assert "Help" in details


def test_ollama_answers_its_own_error_shape(make_server: Callable[..., MockServer], clock: Clock) -> None:
    server = make_server(rpm=1, wall_clock=clock)
    with ollama.Client(host=server.url, headers=UNPACED) as client:
        client.chat(model="llama3.2", messages=HI)
        with pytest.raises(ollama.ResponseError) as caught:
            client.chat(model="llama3.2", messages=HI)
    assert caught.value.status_code == 429
    assert caught.value.error == "rate limit exceeded: 1 requests per minute (--rpm); retry in 1m0s"
    raw = httpx.post(f"{server.url}/api/chat", json={"model": "m", "messages": HI, "stream": False})
    assert raw.headers["retry-after"] == "60"
    assert not [name for name in raw.headers if "ratelimit" in name]


def test_azure_answers_its_gateways_429(make_server: Callable[..., MockServer], clock: Clock) -> None:
    server = make_server(rpm=1, wall_clock=clock)
    with AzureOpenAI(azure_endpoint=server.url, api_version=EXAMPLE_VERSION, api_key="az-one", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI, extra_headers=UNPACED)
        assert requests_left(raw.headers) == ("1", "0", "1m0s")
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=HI)
    error = caught.value
    assert error.code == "429"
    assert "ChatCompletions_Create Operation under Azure OpenAI API have exceeded call rate limit" in error.message
    assert "Please retry after 60 seconds." in error.message
    assert (error.response.headers["retry-after"], error.response.headers["retry-after-ms"]) == ("60", "60000")


def test_requests_per_day_refill_over_a_day(make_server: Callable[..., MockServer], clock: Clock) -> None:
    server = make_server(rpm=10, rpd=2, wall_clock=clock)
    client = openai_client(server)
    # The limit with the least left shows: the day's.
    assert [requests_left(chat_headers(client)) for _ in range(2)] == [("2", "1", "12h0m0s"), ("2", "0", "24h0m0s")]
    with pytest.raises(openai.RateLimitError) as caught:
        chat_headers(client)
    assert "per day (RPD)" in caught.value.message
    assert caught.value.response.headers["retry-after"] == str(12 * 3600)
    clock.advance(12 * 3600)
    assert requests_left(chat_headers(client))[1] == "0"


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(0, "0s"), (0.0004, "1ms"), (0.012, "12ms"), (1, "1s"), (1.5, "1.5s"), (360, "6m0s"), (3661.25, "1h1m1.25s")],
)
def test_resets_are_written_as_go_durations(seconds: float, written: str) -> None:
    assert go_duration(seconds) == written


def problems_in(tmp_path: Path, limits: str) -> list[str]:
    path = tmp_path / "limited.yaml"
    path.write_text(f"reply: hi\nlimits: {limits}\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_paths([path])
    return [problem.message for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ("{rpm: 0}", "limits.rpm: 0 is less than 1"),
        ("{tpm: -5}", "limits.tpm: -5 is less than 1"),
        ("{rpm: 1.5}", "limits.rpm: 1.5 is not a whole number (1 or more)"),
        ("{rpd: '10'}", "limits.rpd: '10' is not a whole number (1 or more)"),
        ("{rpm: true}", "limits.rpm: true is not a whole number (1 or more)"),
        ("{}", "limits: sets no limit; give rpm, tpm or rpd"),
        ("{rph: 3}", "unknown field 'rph'; did you mean 'rpm'?"),
        ("5", "limits: 5 is not a mapping"),
    ],
)
def test_bad_limits_are_refused_with_what_is_accepted(tmp_path: Path, limits: str, problem: str) -> None:
    (found,) = problems_in(tmp_path, limits)
    assert found.startswith(problem), found


def test_a_runtime_scenario_with_bad_limits_is_refused(make_server: Callable[..., MockServer]) -> None:
    server = make_server()
    with pytest.raises(ScenarioError, match=r"limits\.rpm: 0 is less than 1"):
        server.add_scenario("bad", limits={"rpm": 0})
    refused = httpx.put(f"{server.url}/_mock/scenarios/bad", json={"limits": {"tpm": "many"}})
    assert refused.status_code == 422
    assert "limits.tpm" in refused.text


@pytest.mark.parametrize("name", ["rpm", "tpm", "rpd"])
@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_settings_refuse_a_limit_that_is_not_a_positive_whole_number(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a whole number of 1 or more"):
        Settings(**{name: value})  # type: ignore[arg-type]


def test_serve_takes_the_limits_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    captured = {}

    def fake_run(app: object, settings: Settings, sock: Any, on_ready: Callable[[], None]) -> None:
        captured["settings"] = settings
        on_ready()
        sock.close()

    monkeypatch.setattr("mock_server.cli.run_foreground", fake_run)
    env = {"MOCK_LLM_PORT": "0", "MOCK_LLM_RPD": "1000"}
    result = CliRunner().invoke(main, ["serve", "--rpm", "3", "--tpm", "5000"], env=env)
    assert result.exit_code == 0, result.output
    settings = captured["settings"]
    assert (settings.rpm, settings.tpm, settings.rpd) == (3, 5000, 1000)
    assert "Rate limits: 3 requests/min, 5,000 tokens/min, 1,000 requests/day per client" in result.output
    env = {"MOCK_LLM_PORT": "0", "MOCK_LLM_TPM": "200"}
    result = CliRunner().invoke(main, ["serve"], env=env)
    assert (captured["settings"].rpm, captured["settings"].tpm) == (None, 200)


@pytest.mark.parametrize("flag", ["--rpm", "--tpm", "--rpd"])
def test_serve_refuses_a_limit_under_one(flag: str) -> None:
    result = CliRunner().invoke(main, ["serve", flag, "0"])
    assert result.exit_code == 2
    assert f"Invalid value for '{flag}'" in result.output
    assert "0 is not in the range x>=1" in result.output


def test_help_names_the_limits() -> None:
    output = CliRunner().invoke(main, ["serve", "--help"]).output
    for flag in ("--rpm", "--tpm", "--rpd", "MOCK_LLM_RPM", "MOCK_LLM_TPM", "MOCK_LLM_RPD"):
        assert flag in output


def test_the_verdict_flags_a_client_that_retries_before_retry_after(make_server: Callable[..., MockServer]) -> None:
    server = make_server(rpm=1)
    client = openai_client(server)
    chat_headers(client)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            chat_headers(client)
    verdict = httpx.get(f"{server.url}/_mock/verdict").json()
    (finding,) = verdict["findings"]
    assert finding["code"] == "retry_after_ignored"
    assert "answered 429 with Retry-After: 60" in finding["detail"]


README = Path(__file__).parent.parent / "README.md"


def test_the_readme_quota_walk_through_prints_what_it_says(
    make_server: Callable[..., MockServer], clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("A quota walk-through with the openai SDK") :]
    code = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    expected = [line.removeprefix("# ") for line in code.splitlines() if line.startswith("# ")]
    server = make_server(rpm=3, wall_clock=clock)
    names: dict[str, Any] = {}
    exec(compile(code.replace("http://127.0.0.1:8383", server.url), "README.md", "exec"), names)
    names["client"].close()
    assert capsys.readouterr().out.splitlines() == expected
    assert expected[-1] == "429 rate_limit_exceeded retry after 20"


def test_every_openai_endpoint_counts_against_the_same_limit(
    make_server: Callable[..., MockServer], clock: Clock
) -> None:
    server = make_server(rpm=4, wall_clock=clock)
    client = openai_client(server)
    calls: list[Callable[[], Any]] = [
        lambda: client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI),
        lambda: client.completions.with_raw_response.create(model="gpt-3.5-turbo-instruct", prompt="hi"),
        lambda: client.responses.with_raw_response.create(model="gpt-4o", input="hi"),
        lambda: client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi"),
    ]
    assert [call().headers["x-ratelimit-remaining-requests"] for call in calls] == ["3", "2", "1", "0"]
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="hi")


def test_bedrock_refuses_as_a_throttling_exception_counted_per_access_key(
    make_server: Callable[..., MockServer], clock: Clock
) -> None:
    server = make_server(rpm=1, wall_clock=clock)
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    one, two = client_for(server, key="AKIDONE"), client_for(server, key="AKIDTWO")
    try:
        one.converse(modelId="default", messages=messages)
        with pytest.raises(one.exceptions.ThrottlingException) as caught:
            one.converse(modelId="default", messages=messages)
        assert caught.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "60"
        two.converse(modelId="default", messages=messages)  # a key of its own
    finally:
        one.close()
        two.close()
