"""The frameworks the README shows pointed at the server, as written there: LangChain's `ChatOpenAI`,
LiteLLM (its OpenAI and Anthropic providers) and the Vercel AI SDK (chat completions and the Responses
API), each streaming a reply and meeting a fault."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import openai
import pytest

from mock_server.http.server import MockServer
from tests.matrix.node_clients import INSTALL_HINT, NODE_DIR

PROMPT = "hello there friend"
REPLY = "You said: hello there friend"


@pytest.fixture(scope="module")
def litellm() -> Iterator[ModuleType]:
    """litellm, imported with its model price list read from the package (it fetches it otherwise)."""
    before = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm as module

    module.suppress_debug_info = True
    yield module
    # litellm keeps its clients, and their kept-alive connections, for the process's life: closed here.
    cache = module.in_memory_llm_clients_cache
    for client in list(cache.cache_dict.values()):
        close = getattr(client, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()
    cache.flush_cache()  # type: ignore[no-untyped-call]  # litellm leaves it untyped
    if before is None:
        del os.environ["LITELLM_LOCAL_MODEL_COST_MAP"]
    else:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = before


def test_langchain_chat_openai_streams_the_reply(server: MockServer) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{server.url}/v1", api_key="x", model="gpt-4o")  # type: ignore[arg-type]
    assert "".join(str(chunk.content) for chunk in llm.stream(PROMPT)) == REPLY


def test_langchain_raises_the_openai_connection_error_on_a_drop(server: MockServer) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{server.url}/v1",
        api_key="x",  # type: ignore[arg-type]
        model="gpt-4o",
        max_retries=0,
        default_headers={"X-Mock-Fault": "drop@3"},
    )
    received: list[str] = []

    def read() -> None:
        received.extend(str(chunk.content) for chunk in llm.stream(PROMPT))

    with pytest.raises(openai.APIConnectionError):
        read()
    assert "".join(received) == "You said: hello"


def test_langchain_rate_limit_carries_the_request_id(server: MockServer) -> None:
    """The error's request id is the journal's id of the request (X-Mock-Request-Id)."""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{server.url}/v1",
        api_key="x",  # type: ignore[arg-type]
        model="gpt-4o",
        max_retries=0,
        default_headers={"X-Mock-Fault": "status:429"},
    )
    with pytest.raises(openai.RateLimitError) as raised:
        list(llm.stream(PROMPT))
    mine = [record for record in server.records() if record.status == 429 and record.prompt == PROMPT]
    assert raised.value.request_id == str(mine[-1].id)


@pytest.mark.slow  # importing litellm takes seconds
@pytest.mark.parametrize(("model", "base"), [("openai/gpt-4o", "/v1"), ("anthropic/claude-sonnet-4-5", "")])
def test_litellm_streams_the_reply(server: MockServer, litellm: Any, model: str, base: str) -> None:
    stream = litellm.completion(
        model=model,
        api_base=f"{server.url}{base}",
        api_key="x",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=64,
        stream=True,
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == REPLY


@pytest.mark.slow
def test_litellm_raises_mid_stream_on_a_drop_and_a_rate_limit_before(server: MockServer, litellm: Any) -> None:
    def stream(fault: str) -> str:
        chunks = litellm.completion(
            model="openai/gpt-4o",
            api_base=f"{server.url}/v1",
            api_key="x",
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            num_retries=0,
            extra_headers={"X-Mock-Fault": fault},
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks)

    from litellm.exceptions import MidStreamFallbackError

    with pytest.raises(MidStreamFallbackError, match="APIConnectionError"):
        stream("drop@3")
    with pytest.raises(litellm.RateLimitError):
        stream("status:429")


AI_SDK = """
import { createOpenAI } from "@ai-sdk/openai";
import { streamText } from "ai";

const [url, api, fault] = process.argv.slice(1);
const openai = createOpenAI({ baseURL: `${url}/v1`, apiKey: "x", headers: fault ? { "X-Mock-Fault": fault } : {} });
const reported = [];
const result = streamText({
  model: openai[api]("gpt-4o"),
  prompt: "hello there friend",
  maxRetries: 0,
  onError({ error }) { reported.push(error.name ?? String(error)); },
});
let text = "";
let raised = null;
try {
  for await (const delta of result.textStream) text += delta;
} catch (error) {
  raised = error.name;
}
console.log(JSON.stringify({ text, raised, reported }));
"""


def ai_sdk(server: MockServer, api: str, fault: str = "") -> dict[str, Any]:
    """What the README's AI SDK loop streamed: its text, what the loop raised, what onError was given."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "ai").is_dir():
        pytest.fail(f"the Node clients are missing ({INSTALL_HINT})")
    result = subprocess.run(
        [node, "--input-type=module", "-e", AI_SDK, server.url, api, fault],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen: dict[str, Any] = json.loads(result.stdout)
    return seen


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_ai_sdk_streams_the_reply(server: MockServer, api: str) -> None:
    assert ai_sdk(server, api) == {"text": "You said: hello there friend", "raised": None, "reported": []}


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_ai_sdk_text_stream_raises_on_a_drop(server: MockServer, api: str) -> None:
    seen = ai_sdk(server, api, "drop@3")
    assert seen["raised"] == "AI_APICallError", seen
    assert seen["text"] == "You said: hello"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_ai_sdk_text_stream_ends_quietly_on_an_error_event_and_tells_on_error(server: MockServer, api: str) -> None:
    seen = ai_sdk(server, api, "error@2")
    assert seen["raised"] is None
    assert seen["text"] == "You said:"
    assert seen["reported"], "onError was not called for the stream's error event"
