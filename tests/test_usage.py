"""Usage: tokens counted with tiktoken's encodings (shipped, so they work offline), and a scenario's
`usage:` over them, in every dialect's usage shape, as the official SDKs read it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tiktoken
import tiktoken_ext.openai_public
from anthropic import Anthropic
from openai import OpenAI

from mock_server.errors import ScenarioError
from mock_server.http.server import MockServer
from mock_server.scenarios.loading import parse_document
from mock_server.scenarios.model import load_scenario
from mock_server.timeline import tokens
from mock_server.timeline.tokens import count_tokens
from tests.model_requests import ENDPOINTS, TEMPLATED_ENDPOINTS, Endpoint

ENGLISH = (
    "The committee reviewed the quarterly figures on Tuesday and, after a long discussion about "
    "shipping delays in the northern warehouses, agreed to postpone the product launch until March."
)
CHINESE = "委员会在星期二审查了季度数据，经过关于北方仓库运输延误的长时间讨论后，同意将产品发布推迟到三月。"
SAMPLES = {"english": ENGLISH, "chinese": CHINESE}
SCRIPTED = {
    "prompt_tokens": 1000,
    "completion_tokens": 300,
    "cached_tokens": 600,
    "cache_creation_tokens": 100,
    "reasoning_tokens": 200,
}


def tiktokens(text: str, encoding: str = "o200k_base") -> int:
    """The count tiktoken itself gives (its encodings are registered by the module fixture)."""
    return len(tiktoken.get_encoding(encoding).encode_ordinary(text))


@pytest.fixture(scope="module", autouse=True)
def tiktoken_offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """tiktoken's own encodings, read through its cache from the shipped files (it checks their hash)."""
    cache = tmp_path_factory.mktemp("tiktoken")
    for name in tokens.ENCODINGS:
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(tokens.bpe_file(name))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
        yield


@pytest.mark.parametrize("name", tokens.ENCODINGS)
def test_shipped_encodings_are_tiktokens_own(name: str) -> None:
    theirs = getattr(tiktoken_ext.openai_public, name)()
    ours = tokens.encoding(name)
    assert ours._pat_str == theirs["pat_str"]
    assert ours._special_tokens == theirs["special_tokens"]
    assert ours._mergeable_ranks == theirs["mergeable_ranks"]


@pytest.mark.parametrize("text", [*SAMPLES.values(), "naïve café <|endoftext|> 12345 ``` def f(x): return x\n"])
def test_count_tokens_counts_as_tiktoken_does(text: str) -> None:
    assert count_tokens(text, "gpt-4o") == tiktokens(text)
    assert count_tokens(text, "gpt-4") == tiktokens(text, "cl100k_base")
    assert count_tokens(text, "claude-sonnet-4") == tiktokens(text)  # an unknown model: o200k_base


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_a_long_prompt_is_counted_within_a_percent_in_milliseconds(sample: str) -> None:
    tokens.warm()
    prompt = (SAMPLES[sample] + "\n") * 20_000  # 2.2 MB of English, 3 MB of Chinese
    started = time.perf_counter()
    counted = count_tokens(prompt)
    elapsed = time.perf_counter() - started
    exact = tiktokens(prompt)
    print(
        f"{sample}: {len(prompt.encode()):,} bytes counted in {elapsed * 1000:.1f} ms, {counted / exact - 1:+.4%} off"
    )
    assert abs(counted / exact - 1) < 0.01
    assert elapsed < 0.1  # a few ms (its first 64 Ki characters); counting it all takes 100-400 ms


@pytest.fixture(scope="module")
def replies(server: MockServer) -> dict[str, str]:
    """A scenario answering each sample; `scripted`, one with `usage:` too."""
    names = {key: server.add_scenario(reply=text, reasoning=None) for key, text in SAMPLES.items()}
    names["scripted"] = server.add_scenario(reply=ENGLISH, usage=SCRIPTED)
    return names


@pytest.fixture
def openai_client(server: MockServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("sample", list(SAMPLES))
@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_openai_chat_usage_is_tiktokens_count_streamed_and_whole(
    openai_client: OpenAI, replies: dict[str, str], sample: str, model: str
) -> None:
    encoding = "cl100k_base" if model == "gpt-4" else "o200k_base"
    prompt, reply = SAMPLES[sample], SAMPLES[sample]
    asked: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "extra_headers": {"X-Mock-Scenario": replies[sample]},
    }
    *_, last = openai_client.chat.completions.create(**asked, stream=True, stream_options={"include_usage": True})
    whole = openai_client.chat.completions.create(**asked)
    expected = (tiktokens(prompt, encoding), tiktokens(reply, encoding))
    for usage in (last.usage, whole.usage):
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens) == expected
        assert usage.total_tokens == sum(expected)


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_responses_usage_is_tiktokens_count(openai_client: OpenAI, replies: dict[str, str], sample: str) -> None:
    text = SAMPLES[sample]
    asked: dict[str, Any] = {"model": "gpt-4o", "input": text, "extra_headers": {"X-Mock-Scenario": replies[sample]}}
    with openai_client.responses.stream(**asked) as stream:
        streamed = stream.get_final_response().usage
    whole = openai_client.responses.create(**asked).usage
    for usage in (streamed, whole):
        assert usage is not None
        assert (usage.input_tokens, usage.output_tokens) == (tiktokens(text), tiktokens(text))


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_anthropic_usage_is_tiktokens_count(server: MockServer, replies: dict[str, str], sample: str) -> None:
    text = SAMPLES[sample]
    with Anthropic(base_url=server.url, api_key="x", max_retries=0) as client:
        asked: dict[str, Any] = {
            "model": "claude-mock-1",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": text}],
            "extra_headers": {"X-Mock-Scenario": replies[sample]},
        }
        with client.messages.stream(**asked) as stream:
            streamed = stream.get_final_message().usage
        whole = client.messages.create(**asked).usage
    for usage in (streamed, whole):
        assert (usage.input_tokens, usage.output_tokens) == (tiktokens(text), tiktokens(text))


def test_openai_sdk_reads_scripted_cached_and_reasoning_tokens(openai_client: OpenAI, replies: dict[str, str]) -> None:
    *_, last = openai_client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Mock-Scenario": replies["scripted"]},
    )
    usage = last.usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None
    assert usage.completion_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 300, 1300)
    assert (usage.prompt_tokens_details.cached_tokens, usage.completion_tokens_details.reasoning_tokens) == (600, 200)


def test_anthropic_sdk_reads_scripted_cache_tokens(server: MockServer, replies: dict[str, str]) -> None:
    with (
        Anthropic(base_url=server.url, api_key="x", max_retries=0) as client,
        client.messages.stream(
            model="claude-mock-1",
            max_tokens=100,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Mock-Scenario": replies["scripted"]},
        ) as stream,
    ):
        usage = stream.get_final_message().usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (300, 600, 100)
    assert usage.output_tokens == 300


def _openai(body: dict[str, Any]) -> dict[str, Any]:
    return dict(body["usage"])


def _gemini(body: dict[str, Any]) -> dict[str, Any]:
    usage = dict(body["usageMetadata"])
    del usage["promptTokensDetails"], usage["cacheTokensDetails"]
    return usage


def _ollama(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in ("prompt_eval_count", "eval_count")}


OPENAI_SHAPE = {
    "prompt_tokens": 1000,
    "completion_tokens": 300,
    "total_tokens": 1300,
    "prompt_tokens_details": {"cached_tokens": 600},
    "completion_tokens_details": {"reasoning_tokens": 200},
}
SHAPES: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], dict[str, Any]]] = {
    "openai-chat": (_openai, OPENAI_SHAPE),
    "openai-completions": (_openai, OPENAI_SHAPE),
    "azure-openai": (_openai, OPENAI_SHAPE),
    "azure-openai-completions": (_openai, OPENAI_SHAPE),
    "openai-responses": (
        _openai,
        {
            "input_tokens": 1000,
            "input_tokens_details": {"cached_tokens": 600},
            "output_tokens": 300,
            "output_tokens_details": {"reasoning_tokens": 200},
            "total_tokens": 1300,
        },
    ),
    "anthropic": (
        _openai,
        {
            "input_tokens": 300,  # Anthropic's leave out the tokens read from or written to the cache
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 600,
            "output_tokens": 300,
            "service_tier": "standard",
        },
    ),
    "ollama-chat": (_ollama, {"prompt_eval_count": 1000, "eval_count": 300}),
    "ollama-generate": (_ollama, {"prompt_eval_count": 1000, "eval_count": 300}),
}


WHOLE_ENDPOINTS = [e for e in (*ENDPOINTS, *TEMPLATED_ENDPOINTS) if e.path != "/completions"]
"""The endpoints that answer whole (GET and POST /completions always stream)."""


@pytest.mark.parametrize("endpoint", WHOLE_ENDPOINTS, ids=lambda e: e.dialect)
def test_scripted_usage_is_rendered_in_each_dialects_shape(
    server: MockServer, replies: dict[str, str], endpoint: Endpoint
) -> None:
    name = replies["scripted"]
    body = endpoint.body(name, stream=False)
    response = httpx.post(server.url + endpoint.target(name, stream=False), json=body)
    assert response.status_code == 200, response.text
    extract, expected = SHAPES[endpoint.dialect]
    assert extract(response.json()) == expected


def test_scripted_usage_is_rendered_in_geminis_shape(server: MockServer, replies: dict[str, str]) -> None:
    name = replies["scripted"]
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    response = httpx.post(f"{server.url}/v1beta/models/{name}:generateContent", json=body)
    assert response.status_code == 200, response.text
    assert _gemini(response.json()) == {
        "promptTokenCount": 1000,
        "candidatesTokenCount": 100,  # Gemini's leave out the thoughts, counted apart
        "cachedContentTokenCount": 600,
        "thoughtsTokenCount": 200,
        "totalTokenCount": 1300,
    }


def test_streamed_reasoning_counts_as_reasoning_tokens(openai_client: OpenAI, server: MockServer) -> None:
    name = server.add_scenario(reply="Done.", reasoning="Let me think about the weather first.")
    whole = openai_client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Mock-Scenario": name}
    )
    usage = whole.usage
    assert usage is not None
    assert usage.completion_tokens_details is not None
    reasoning = tiktokens("Let me think about the weather first.")
    assert usage.completion_tokens_details.reasoning_tokens == reasoning
    assert usage.completion_tokens == reasoning + tiktokens("Done.")


def test_a_scripted_count_left_out_is_the_counted_one(openai_client: OpenAI, server: MockServer) -> None:
    name = server.add_scenario(reply=ENGLISH, usage={"cached_tokens": 5, "reasoning_tokens": 40})
    whole = openai_client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": CHINESE}], extra_headers={"X-Mock-Scenario": name}
    )
    usage = whole.usage
    assert usage is not None
    assert usage.prompt_tokens == tiktokens(CHINESE)
    assert usage.completion_tokens == tiktokens(ENGLISH) + 40  # reasoning the stream did not show


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        (
            "{prompt_tokens: 10, cached_tokens: 8, cache_creation_tokens: 5}",
            "cached_tokens + cache_creation_tokens (13) are more than prompt_tokens (10)",
        ),
        ("{completion_tokens: 10, reasoning_tokens: 11}", "reasoning_tokens (11) are more than completion_tokens (10)"),
        ("{prompt_tokens: -1}", "usage.prompt_tokens: -1 is less than 0"),
        ("{input_tokens: 3}", "unknown field 'input_tokens'; did you mean 'prompt_tokens'"),
    ],
)
def test_a_bad_usage_is_refused_saying_why(usage: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(parse_document(f"name: u\nusage: {usage}\n", "u.yaml"))
    assert message in str(caught.value)


def test_shipped_files_are_in_the_package() -> None:
    files = Path(tokens.__file__).parent / "encodings"
    assert sorted(p.name for p in files.glob("*.xz")) == sorted(f"{n}.tiktoken.xz" for n in tokens.ENCODINGS)
