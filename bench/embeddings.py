"""Embeddings: how long 2048 inputs take, in the process (`Embedder`) and over HTTP (`POST /v1/embeddings`).

Run alone, `python -m bench.embeddings` prints both; `python -m bench` puts the HTTP figures in its
table, beside the raw ASGI baseline serving the very same bytes (so the ratio is what making the
vectors costs over sending them).
"""

from __future__ import annotations

import asyncio
import base64
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import procs
from mock_server.embeddings import Embedder

INPUTS = 2048
DIMENSIONS = 1536
MODEL = "text-embedding-3-small"
ENCODINGS = ("base64", "float")
_WORD_LIST = """
order refund shipping password account email invoice payment card delivery address store price discount subscription
cancel return warranty battery screen camera laptop phone charger cable weather forecast rain train ticket station
flight hotel booking recipe pizza cheese garden
"""
_VOCABULARY = _WORD_LIST.split()


def texts(count: int = INPUTS, seed: int = 0) -> list[str]:
    """Short sentences (about 60 characters), each different, from a small vocabulary."""
    rng = random.Random(seed)
    return [f"Question {i}: how do I " + " ".join(rng.choices(_VOCABULARY, k=rng.randint(4, 9))) for i in range(count)]


def token_lists(count: int = INPUTS, seed: int = 0) -> list[list[int]]:
    """Lists of 10-20 token ids, as a tokenizer's (cl100k-sized vocabulary)."""
    rng = random.Random(seed)
    return [[rng.randrange(100_000) for _ in range(rng.randint(10, 20))] for _ in range(count)]


def compute_seconds(items: Sequence[str | list[int]], encoding: str, dimensions: int = DIMENSIONS) -> float:
    """The best of 3 runs of making every vector in the form `encoding` answers with."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        embedder = Embedder(model=MODEL, dimensions=dimensions)
        if encoding == "base64":
            [base64.b64encode(embedder.float32(item)) for item in items]
        else:
            [embedder.json(item) for item in items]
        best = min(best, time.perf_counter() - start)
    return best


def request_body(encoding: str) -> dict[str, Any]:
    return {"model": MODEL, "input": texts(), "encoding_format": encoding}


async def answer_seconds(url: str, body: dict[str, Any] | None, runs: int = 5) -> float:
    """The median time from sending the request to the last byte of its answer (GET when no body)."""
    samples = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(runs):
            start = time.perf_counter()
            if body is None:
                response = await client.get(url)
            else:
                response = await client.post(url, json=body)
            await response.aread()
            assert response.status_code == 200, response.text[:200]
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def captured_answers(base: str) -> dict[str, list[str]]:
    """The answers mock-llm-sse gives, for the baseline to serve as they are (one write each)."""
    answers = {}
    for encoding in ENCODINGS:
        body = httpx.post(base + "/v1/embeddings", json=request_body(encoding), timeout=60).content.decode("latin-1")
        answers[f"embeddings {encoding}"] = [body, ""]
    return answers


async def timings(
    mock_port: int, baseline_port: int, baseline_path: Callable[[str], str]
) -> list[tuple[str, float, float]]:
    """(label, mock-llm-sse's seconds, the baseline's seconds) for each encoding, over HTTP."""
    results = []
    for encoding in ENCODINGS:
        ours = await answer_seconds(f"http://127.0.0.1:{mock_port}/v1/embeddings", request_body(encoding))
        theirs = await answer_seconds(
            f"http://127.0.0.1:{baseline_port}{baseline_path(f'embeddings {encoding}')}", None
        )
        results.append((encoding, ours, theirs))
    return results


def main() -> None:
    print(f"{INPUTS} inputs x {DIMENSIONS} dimensions, {MODEL}: best of 3 in the process")
    for name, items in (("sentences", texts()), ("token ids", token_lists())):
        for encoding in ENCODINGS:
            print(f"  {name:10} {encoding:7} {compute_seconds(items, encoding) * 1000:7.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        port = procs.free_port()
        server = procs.start_mock(port, Path(tmp))
        try:
            procs.wait_until_answering(f"http://127.0.0.1:{port}/_mock/health", server)
            print("POST /v1/embeddings, request to last byte (median of 5):")
            for encoding in ENCODINGS:
                url = f"http://127.0.0.1:{port}/v1/embeddings"
                seconds = asyncio.run(answer_seconds(url, request_body(encoding)))
                print(f"  {encoding:7} {seconds * 1000:7.0f} ms")
        finally:
            procs.stop(server)


if __name__ == "__main__":
    main()
