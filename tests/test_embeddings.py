"""POST /v1/embeddings: the official `openai` SDK unmodified, OpenAI's errors, the vectors' promises
(determinism, unit length, similarity, shortening) and the faults a JSON answer can suffer."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI, OpenAI

from mock_server.embeddings import Embedder, embed
from mock_server.http.server import MockServer
from tests.conftest import wait_until
from tests.wire import Ending, fetch

SMALL = "text-embedding-3-small"
TEXTS = ["the cat sat", "a cat sat", "stock prices fell"]


@pytest.fixture
def client(server: MockServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
        yield client


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def post(server: MockServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(server.url + "/v1/embeddings", json=body, headers=headers)


def test_sdk_default_base64_decodes_to_the_vectors_embed_computes(client: OpenAI) -> None:
    response = client.embeddings.create(model=SMALL, input=TEXTS)
    assert response.object == "list"
    assert response.model == SMALL
    assert [d.index for d in response.data] == [0, 1, 2]
    assert [d.embedding for d in response.data] == [embed(text, model=SMALL) for text in TEXTS]
    assert {len(d.embedding) for d in response.data} == {1536}
    assert response.usage.prompt_tokens == response.usage.total_tokens == 9


def test_float_and_base64_give_the_very_same_floats(client: OpenAI) -> None:
    floats = client.embeddings.create(model=SMALL, input="the cat sat", encoding_format="float")
    encoded = client.embeddings.create(model=SMALL, input="the cat sat", encoding_format="base64")
    raw = base64.b64decode(encoded.data[0].embedding)  # type: ignore[arg-type]  # the SDK leaves a format asked for as it came
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == floats.data[0].embedding


def test_async_client_gets_the_same_vectors(server: MockServer) -> None:
    async def create() -> list[list[float]]:
        async with AsyncOpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
            response = await client.embeddings.create(model=SMALL, input=TEXTS, encoding_format="float")
            return [d.embedding for d in response.data]

    assert asyncio.run(create()) == [embed(text, model=SMALL) for text in TEXTS]


@pytest.mark.parametrize(("model", "size"), [(SMALL, 1536), ("text-embedding-3-large", 3072), ("my-model", 1536)])
def test_each_model_has_its_default_dimensions(client: OpenAI, model: str, size: int) -> None:
    assert len(client.embeddings.create(model=model, input="hi").data[0].embedding) == size


def test_dimensions_shorten_a_vector_to_its_renormalised_beginning(client: OpenAI) -> None:
    full = client.embeddings.create(model=SMALL, input="the cat sat").data[0].embedding
    short = client.embeddings.create(model=SMALL, input="the cat sat", dimensions=256).data[0].embedding
    assert len(short) == 256
    assert norm(short) == pytest.approx(1, abs=1e-6)
    head = norm(full[:256])
    assert short == pytest.approx([x / head for x in full[:256]], abs=1e-7)


def test_token_ids_are_embedded_like_texts(client: OpenAI) -> None:
    one = client.embeddings.create(model=SMALL, input=[1, 2, 3])
    many = client.embeddings.create(model=SMALL, input=[[1, 2, 3], [1, 2, 4], [7, 8, 9]])
    assert one.data[0].embedding == many.data[0].embedding == embed([1, 2, 3], model=SMALL)
    assert many.usage.prompt_tokens == 9
    near, far = (cosine(many.data[0].embedding, many.data[i].embedding) for i in (1, 2))
    assert near > far + 0.2


def test_vectors_are_unit_length_and_differ_by_model_and_seed() -> None:
    base = embed("the cat sat", model=SMALL)
    assert norm(base) == pytest.approx(1, abs=1e-6)
    assert all(struct.unpack("<f", struct.pack("<f", x))[0] == x for x in base), "float32 values"
    assert abs(cosine(base, embed("the cat sat", model="text-embedding-ada-002"))) < 0.2
    assert abs(cosine(base, embed("the cat sat", model=SMALL, seed=1))) < 0.2
    assert embed("the cat sat", model=SMALL, seed=1) == embed("the cat sat", model=SMALL, seed=1)


def test_similar_texts_are_closer_than_unrelated_ones() -> None:
    cat, a_cat, stocks = (embed(text, model=SMALL) for text in TEXTS)
    assert cosine(cat, a_cat) > 0.35
    assert abs(cosine(cat, stocks)) < 0.15
    query = embed("How do I reset my password?", model=SMALL)
    documents = ["Resetting your password: open Settings", "Opening hours of the shop", "Our refund policy"]
    ranked = sorted(documents, key=lambda d: cosine(query, embed(d, model=SMALL)), reverse=True)
    assert ranked[0] == documents[0]


_WORD = st.text(alphabet="abcdefghijklm", min_size=3, max_size=8)
_OTHER_WORD = st.text(alphabet="nopqrstuvwxyz", min_size=3, max_size=8)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(_WORD, min_size=5, max_size=10), _WORD, st.lists(_OTHER_WORD, min_size=5, max_size=10))
def test_a_text_is_closer_to_itself_with_a_word_changed_than_to_a_text_sharing_nothing(
    words: list[str], replacement: str, others: list[str]
) -> None:
    text = " ".join(words)
    edited = " ".join([*words[:-1], replacement])
    unrelated = " ".join(others)
    vectors = Embedder(model=SMALL)
    assert cosine(vectors.vector(text), vectors.vector(edited)) > cosine(
        vectors.vector(text), vectors.vector(unrelated)
    )


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(st.integers(0, 2**31), min_size=1, max_size=50)), st.integers(1, 64))
def test_any_input_gives_one_unit_vector_of_the_size_asked(item: str | list[int], dimensions: int) -> None:
    vector = embed(item, model="m", dimensions=dimensions)
    assert len(vector) == dimensions
    assert norm(vector) == pytest.approx(1, abs=1e-5)
    assert vector == embed(item, model="m", dimensions=dimensions)


def test_a_long_text_sums_its_features_in_wide_lanes() -> None:
    long_text = " ".join(f"word{i}" for i in range(3000))  # weights far beyond what 8-bit lanes hold
    vector = embed(long_text, model=SMALL)
    assert norm(vector) == pytest.approx(1, abs=1e-6)
    assert cosine(vector, embed(long_text + " more", model=SMALL)) > 0.9


def test_another_process_computes_the_same_vector() -> None:
    script = "import json; from mock_server.embeddings import embed; print(json.dumps(embed('the cat sat', model='m')))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == embed("the cat sat", model="m")


BAD_REQUESTS = [
    ({"model": SMALL}, "input", "Missing required parameter: `input`"),
    ({"input": "hi"}, "model", "Missing required parameter: `model`"),
    ({"model": SMALL, "input": ""}, "input", "must not be an empty string"),
    ({"model": SMALL, "input": []}, "input", "must not be an empty list"),
    ({"model": SMALL, "input": ["a", ""]}, "input[1]", "must not be an empty string"),
    ({"model": SMALL, "input": ["a", 1]}, "input[1]", "must be a string"),
    ({"model": SMALL, "input": [[1], []]}, "input[1]", "must not be an empty list of token ids"),
    ({"model": SMALL, "input": [1, -2]}, "input[1]", "must be a token id"),
    ({"model": SMALL, "input": [True]}, "input[0]", "must be a string, a token id"),
    ({"model": SMALL, "input": ["x"] * 2049}, "input", "2,049 items, more than the 2048"),
    ({"model": SMALL, "input": "a", "dimensions": 0}, "dimensions", "from 1 to 1536"),
    ({"model": SMALL, "input": "a", "dimensions": 1537}, "dimensions", "from 1 to 1536"),
    ({"model": "text-embedding-3-large", "input": "a", "dimensions": 3073}, "dimensions", "from 1 to 3072"),
    ({"model": SMALL, "input": "a", "dimensions": "8"}, "dimensions", "must be an integer"),
    ({"model": "text-embedding-ada-002", "input": "a", "dimensions": 8}, "dimensions", "does not support"),
    ({"model": SMALL, "input": "a", "encoding_format": "hex"}, "encoding_format", "'float' or 'base64'"),
]


@pytest.mark.parametrize(("body", "param", "says"), BAD_REQUESTS, ids=lambda v: str(v)[:40])
def test_bad_requests_are_openai_400s_naming_the_field(
    server: MockServer, body: dict[str, Any], param: str, says: str
) -> None:
    response = post(server, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert says in error["message"]


def test_the_sdk_raises_bad_request_for_a_refused_input(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="empty string"):
        client.embeddings.create(model=SMALL, input="")


def test_a_status_fault_is_the_sdks_rate_limit_error(client: OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        client.embeddings.create(model=SMALL, input="hi", extra_headers={"X-Mock-Fault": "status:429"})
    assert raised.value.response.headers["retry-after"] == "1"


def test_a_drop_before_the_head_is_a_connection_error(client: OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.embeddings.create(model=SMALL, input="hi", extra_headers={"X-Mock-Fault": "drop@head"})


@pytest.mark.parametrize(
    ("fault", "ending", "outcome"), [("drop@1", Ending.EOF, "dropped"), ("reset@1", Ending.RESET, "reset")]
)
def test_a_cut_after_the_first_embedding_leaves_the_body_short(
    server: MockServer, fault: str, ending: Ending, outcome: str
) -> None:
    body = {"model": SMALL, "input": TEXTS, "dimensions": 8}
    response = fetch(server.url + "/v1/embeddings", method="POST", body=body, headers={"X-Mock-Fault": fault})
    assert (response.status, response.ending) == (200, ending)
    first = json.dumps({"object": "embedding", "index": 0, "embedding": embed(TEXTS[0], model=SMALL, dimensions=8)})
    assert response.body == b'{"object":"list","data":[' + first.replace(" ", "").encode()
    assert len(response.body) < int(response.headers["content-length"])
    record = journal_record(server, response.headers["x-mock-request-id"])
    assert (record["outcome"], record["events_sent"]) == (outcome, 1)


def test_an_endless_stall_holds_the_rest_of_the_body_back(server: MockServer) -> None:
    body = {"model": SMALL, "input": TEXTS, "dimensions": 8}
    response = fetch(
        server.url + "/v1/embeddings", method="POST", body=body, headers={"X-Mock-Fault": "stall@2"}, read_for=0.3
    )
    assert (response.status, response.ending) == (200, Ending.TIMEOUT)
    assert response.body.count(b'"object":"embedding"') == 2


def test_the_sdk_raises_on_a_body_cut_short(client: OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.embeddings.create(model=SMALL, input=TEXTS, extra_headers={"X-Mock-Fault": "drop@0"})


def test_timing_faults_hold_the_answer_and_split_writes_it_in_pieces(server: MockServer) -> None:
    body = {"model": SMALL, "input": TEXTS, "dimensions": 8}
    response = fetch(
        server.url + "/v1/embeddings", method="POST", body=body, headers={"X-Mock-Fault": "delay@0:200,split@1:4"}
    )
    assert response.ending is Ending.COMPLETE
    assert response.head_at >= 0.2
    assert len(response.reads) >= 2  # four writes 20 ms apart; a loaded client may read two at once
    assert [d["embedding"] for d in json.loads(response.body)["data"]] == [
        embed(text, model=SMALL, dimensions=8) for text in TEXTS
    ]


def test_stream_only_faults_leave_a_valid_answer(client: OpenAI) -> None:
    faults = "malformed@1,unknown_event@1,duplicate@0,no_done,close@1"
    response = client.embeddings.create(model=SMALL, input=TEXTS, extra_headers={"X-Mock-Fault": faults})
    assert [d.embedding for d in response.data] == [embed(text, model=SMALL) for text in TEXTS]


def test_an_error_fault_is_openais_500(server: MockServer) -> None:
    response = post(server, {"model": SMALL, "input": "hi"}, **{"X-Mock-Fault": "error@1:overloaded"})
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "overloaded"


def test_a_scenario_chosen_by_model_gives_its_status(client: OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="rate-limited", input="hi")


@pytest.fixture
def embedding_server(make_server: Callable[..., MockServer]) -> MockServer:
    server = make_server()
    server.add_scenario("seeded", seed=7, first_chunk_ms=150, match={"prompt": "^seeded "})
    return server


def test_a_scenario_gives_its_seed_and_its_wait(embedding_server: MockServer) -> None:
    text = "seeded text"
    response = fetch(
        embedding_server.url + "/v1/embeddings", method="POST", body={"model": SMALL, "input": text, "dimensions": 16}
    )
    assert response.headers["x-mock-scenario"] == "seeded"
    assert response.head_at >= 0.15
    (data,) = json.loads(response.body)["data"]
    assert data["embedding"] == embed(text, model=SMALL, dimensions=16, seed=7)


def test_the_seed_override_changes_the_vectors(server: MockServer) -> None:
    body = {"model": SMALL, "input": "hi", "dimensions": 16}
    seeded = post(server, body, **{"X-Mock-Seed": "3"}).json()["data"][0]["embedding"]
    assert seeded == embed("hi", model=SMALL, dimensions=16, seed=3)
    assert seeded != embed("hi", model=SMALL, dimensions=16)


def test_the_journal_records_the_inputs_as_the_prompt(server: MockServer) -> None:
    response = post(server, {"model": SMALL, "input": ["first", "second"], "dimensions": 4})
    record = journal_record(server, response.headers["x-mock-request-id"])
    assert (record["prompt"], record["status"], record["outcome"]) == ("first\nsecond", 200, "completed")
    assert record["events_sent"] == 2


def test_a_big_batch_is_answered_in_one_piece(server: MockServer) -> None:
    texts = [f"document {i} about cats and dogs" for i in range(2048)]
    response = post(server, {"model": SMALL, "input": texts, "encoding_format": "base64"})
    assert response.status_code == 200
    data = response.json()["data"]
    assert len(data) == 2048
    assert base64.b64decode(data[2047]["embedding"]) == Embedder(model=SMALL).float32(texts[2047])


def journal_record(server: MockServer, request_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        records = httpx.get(server.url + "/_mock/requests").json()
        record: dict[str, Any] = next(r for r in records if str(r["id"]) == request_id)
        return record if record["outcome"] is not None else None

    return wait_until(finished, f"the response to request {request_id} to end")
