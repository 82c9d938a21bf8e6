"""The Python rows: each client called as its users call it, with the fault in `X-Mock-Fault`.

They run in a process of their own (`python -m tests.matrix.python_clients`, started by
tests.matrix.child as tests/node/matrix.mjs is), each job in a thread: in the process that runs the
mock servers, the servers' threads would share the GIL with them and stretch the pauses between their
retries. Warm-up jobs run first: the first call of each client imports and builds what later calls
reuse.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import boto3
import httpx
import ollama
import openai
from botocore.config import Config
from google import genai
from google.genai import types as genai_types
from httpx_sse import connect_sse

from tests.matrix.child import run_child
from tests.matrix.observation import Observation, python_chain

MODEL = "matrix"
ROOT = Path(__file__).parents[2]
Client = Callable[[str, str, str, float, Observation], None]
"""(server URL, prompt, fault, timeout in s, what was seen so far): streams one reply into `seen`."""


def _openai(max_retries: int) -> Client:
    def stream(url: str, prompt: str, fault: str, timeout: float, seen: Observation) -> None:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=max_retries, timeout=timeout)
        with client:
            chunks = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": prompt}],
                stream=True,
                extra_headers={"X-Mock-Fault": fault},
            )
            for chunk in chunks:  # the README's loop
                seen.text += chunk.choices[0].delta.content or ""

    return stream


def _anthropic(url: str, prompt: str, fault: str, timeout: float, seen: Observation) -> None:
    with (
        anthropic.Anthropic(base_url=url, api_key="x", timeout=timeout) as client,
        client.messages.stream(
            model=MODEL,
            max_tokens=256,
            messages=[{"role": "user", "content": prompt}],
            extra_headers={"X-Mock-Fault": fault},
        ) as stream,
    ):
        for text in stream.text_stream:
            seen.text += text
        seen.notes["stop_reason"] = stream.get_final_message().stop_reason


def _httpx_sse(url: str, prompt: str, fault: str, timeout: float, seen: Observation) -> None:
    """A typical hand-written loop: it stops at [DONE] and raises on {"error": ...}."""
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    with (
        httpx.Client(timeout=timeout) as http,
        connect_sse(http, "POST", f"{url}/v1/chat/completions", json=body, headers={"X-Mock-Fault": fault}) as source,
    ):
        source.response.raise_for_status()
        for event in source.iter_sse():
            if event.data == "[DONE]":
                break
            chunk = json.loads(event.data)
            if "error" in chunk:
                raise RuntimeError(f"stream error: {chunk['error'].get('message')}")
            for choice in chunk.get("choices") or []:
                seen.text += choice.get("delta", {}).get("content") or ""


def _google_genai(url: str, prompt: str, fault: str, timeout: float, seen: Observation) -> None:
    options = genai_types.HttpOptions(base_url=url, headers={"X-Mock-Fault": fault}, timeout=round(timeout * 1000))
    with genai.Client(api_key="x", http_options=options) as client:
        for chunk in client.models.generate_content_stream(model=MODEL, contents=prompt):
            seen.text += chunk.text or ""


def _ollama(url: str, prompt: str, fault: str, timeout: float, seen: Observation) -> None:
    client = ollama.Client(host=url, headers={"X-Mock-Fault": fault}, timeout=timeout)
    try:
        for part in client.chat(model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True):
            seen.text += part.message.content or ""
    finally:
        client.close()  # type: ignore[no-untyped-call]  # the client's close() has no annotations


def _boto3(url: str, prompt: str, fault: str, timeout: float, seen: Observation) -> None:
    config = Config(read_timeout=timeout, connect_timeout=timeout, retries={"total_max_attempts": 1})
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=config,
    )

    def add_fault(request: Any, **_: Any) -> None:
        request.headers["X-Mock-Fault"] = fault

    client.meta.events.register("before-sign.bedrock-runtime.*", add_fault)
    try:
        answer = client.converse_stream(modelId=MODEL, messages=[{"role": "user", "content": [{"text": prompt}]}])
        for event in answer["stream"]:
            seen.text += event.get("contentBlockDelta", {}).get("delta", {}).get("text", "")
    finally:
        client.close()


CLIENTS: dict[str, Client] = {
    "openai": _openai(0),
    "openai-retries": _openai(2),
    "anthropic": _anthropic,
    "httpx-sse": _httpx_sse,
    "google-genai": _google_genai,
    "ollama": _ollama,
    "boto3": _boto3,
}


def _run(job: dict[str, Any]) -> Observation:
    """One job in a thread of its own, from its start time on: a client still running at the deadline is hung."""
    time.sleep(job.get("startMs", 0) / 1000)
    seen = Observation()

    def call() -> None:
        try:
            CLIENTS[job["client"]](job["url"], job["prompt"], job["fault"], job["timeoutMs"] / 1000, seen)
        except Exception as exc:
            seen.errors.append(python_chain(exc))
        seen.ended = not seen.hung

    worker = threading.Thread(target=call, name=f"matrix {job['key']}", daemon=True)
    worker.start()
    worker.join(job["deadlineMs"] / 1000)
    seen.hung = worker.is_alive()
    return seen


def run_python(jobs: list[dict[str, Any]], warmup: list[dict[str, Any]], timeout_s: float) -> dict[str, Observation]:
    """Each job's observation, by its key (see tests.matrix.child)."""
    return run_child([sys.executable, "-m", "tests.matrix.python_clients"], ROOT, jobs, warmup, timeout_s)


def main() -> None:
    given: dict[str, list[dict[str, Any]]] = json.loads(sys.stdin.readline())
    with ThreadPoolExecutor(max_workers=max(1, len(given["jobs"]), len(given["warmup"]))) as pool:
        list(pool.map(_run, given["warmup"]))
        results = dict(zip((job["key"] for job in given["jobs"]), pool.map(_run, given["jobs"]), strict=True))
    json.dump({key: seen.to_json() for key, seen in results.items()}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
