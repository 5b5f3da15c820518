"""The test server's embeddings and images, as the real clients see them; and the app's
embedder (`engines/ollama/embeddings.py`) over it.

Driven through `ollama.AsyncClient`, `langchain_ollama.OllamaEmbeddings` and plain `httpx`,
over real HTTP; each test asserts the exact bodies that crossed.
"""

from __future__ import annotations

import hashlib
import math

import httpx
import ollama
import pytest
from langchain_ollama import OllamaEmbeddings

from ollamastack.engines.ollama.embeddings import OllamaEmbedder
from ollamastack.errors import ModelNotFound, OllamaError, OllamaUnavailable
from tests.support.chat_helpers import make_settings
from tests.support.ollama_server import FakeOllama, embed_vector

NOMIC = "nomic-embed-text"


@pytest.fixture
def server(ollama_server: FakeOllama) -> FakeOllama:
    """llama3.2 (chat) and nomic-embed-text (embedding only)."""
    ollama_server.add_model(NOMIC, capabilities=("embedding",), family="nomic-bert",
                            parameter_size="137M", context_length=2048)
    return ollama_server


@pytest.fixture
def client(server: FakeOllama) -> ollama.AsyncClient:
    return ollama.AsyncClient(host=server.url)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


# -- /api/embed ----------------------------------------------------------------------------


async def test_embed_answers_one_unit_vector_per_input_close_when_words_are_shared(
    server: FakeOllama, client: ollama.AsyncClient
) -> None:
    texts = ["Red apples grow on trees", "apples are RED", "The sky is blue"]
    response = await client.embed(NOMIC, texts)

    assert server.embed_requests == [{"model": NOMIC, "input": texts}]
    assert (response.model, response.prompt_eval_count) == (NOMIC, 12)  # words embedded
    assert (response.load_duration, response.total_duration) == (1_000_000, 13_000_000)
    apples, red, sky = response.embeddings
    assert [len(v) for v in response.embeddings] == [768, 768, 768]
    assert [round(math.fsum(x * x for x in v), 6) for v in response.embeddings] == [1.0] * 3
    assert cosine(apples, red) > 0.5 > cosine(apples, sky)
    assert list(apples) == embed_vector("red apples grow on trees", 768)  # deterministic


async def test_embed_options_reach_the_server_and_shape_the_answer(
    server: FakeOllama, client: ollama.AsyncClient
) -> None:
    response = await client.embed(NOMIC, "one text", truncate=False, options={"num_ctx": 512},
                                  keep_alive="1m", dimensions=64)

    assert server.embed_requests == [{"model": NOMIC, "input": "one text", "truncate": False,
                                      "options": {"num_ctx": 512}, "keep_alive": "1m",
                                      "dimensions": 64}]
    assert [len(v) for v in response.embeddings] == [64]
    assert list(response.embeddings[0]) == embed_vector("one text", 768, dimensions=64)
    [loaded] = (await client.ps()).models
    assert (loaded.model, loaded.context_length) == ("nomic-embed-text:latest", 512)


async def test_a_long_input_is_truncated_unless_truncate_is_false(
    server: FakeOllama, client: ollama.AsyncClient
) -> None:
    server.add_model("tiny-embed", capabilities=("embedding",), context_length=4,
                     embedding_length=32)
    long = "alpha beta gamma delta epsilon zeta"
    cut = await client.embed("tiny-embed", long)
    assert (list(cut.embeddings[0]), cut.prompt_eval_count) == (
        embed_vector("alpha beta gamma delta", 32), 4)

    with pytest.raises(ollama.ResponseError) as refused:
        await client.embed("tiny-embed", long, truncate=False)
    assert (refused.value.status_code, refused.value.error) == (
        400, "the input length exceeds the context length")


async def test_an_empty_input_loads_the_model_and_embeds_nothing(server: FakeOllama) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post("/api/embed", json={"model": NOMIC, "input": []})
        assert (answer.status_code, answer.json()) == (200, {"model": NOMIC, "embeddings": []})
        listed = (await http.get("/api/ps")).json()["models"]
    assert [m["name"] for m in listed] == ["nomic-embed-text:latest"]


async def test_embed_refusals_are_ollamas_json_errors(
    server: FakeOllama, client: ollama.AsyncClient
) -> None:
    async def refusal(model: str, text: object = "x") -> tuple[int, str]:
        with pytest.raises(ollama.ResponseError) as error:
            await client.embed(model, text)  # type: ignore[arg-type]
        return error.value.status_code, error.value.error

    assert await refusal("missing") == (404, 'model "missing" not found, try pulling it first')
    assert await refusal("llama3.2") == (501, "this model does not support embeddings")
    async with httpx.AsyncClient(base_url=server.url) as http:
        wrong = await http.post("/api/embed", json={"model": NOMIC, "input": [1, 2]})
        empty = await http.post("/api/embed")
    assert (wrong.status_code, wrong.json()) == (400, {"error": "invalid input type"})
    assert (empty.status_code, empty.json()) == (400, {"error": "missing request body"})


async def test_an_enqueued_error_fails_the_embed_after_the_good_ones(
    server: FakeOllama, client: ollama.AsyncClient
) -> None:
    server.enqueue_embed_error(500, "llama runner process has terminated", after=1)
    assert len((await client.embed(NOMIC, "first")).embeddings) == 1
    with pytest.raises(ollama.ResponseError) as error:
        await client.embed(NOMIC, "second")
    assert (error.value.status_code, error.value.error) == (
        500, "llama runner process has terminated")
    assert len((await client.embed(NOMIC, "third")).embeddings) == 1
    assert [body["input"] for body in server.embed_requests] == ["first", "second", "third"]


async def test_langchain_ollama_embeddings_get_the_same_vectors(
    server: FakeOllama, client: ollama.AsyncClient
) -> None:
    embeddings = OllamaEmbeddings(model=NOMIC, base_url=server.url)
    documents = await embeddings.aembed_documents(["red apples", "blue sky"])
    query = embeddings.embed_query("red apples")  # the sync client, as the SQLite store calls it

    assert query == documents[0] == embed_vector("red apples", 768)
    unset = dict.fromkeys(["mirostat", "mirostat_eta", "mirostat_tau", "num_ctx", "num_gpu",
                           "num_thread", "repeat_last_n", "repeat_penalty", "temperature",
                           "stop", "tfs_z", "top_k", "top_p"])
    assert server.embed_requests == [
        {"model": NOMIC, "input": ["red apples", "blue sky"], "options": unset},
        {"model": NOMIC, "input": ["red apples"], "options": unset},
    ]


# -- an embedding-only model, a vision model ----------------------------------------------


async def test_an_embedding_model_shows_its_vector_length_and_cannot_chat(
    server: FakeOllama, client: ollama.AsyncClient
) -> None:
    shown = await client.show(NOMIC)
    assert shown.capabilities == ["embedding"]
    assert shown.modelinfo == {
        "general.architecture": "nomic-bert",
        "general.parameter_count": 137_000_000,
        "nomic-bert.context_length": 2048,
        "nomic-bert.embedding_length": 768,
    }
    for messages in ([{"role": "user", "content": "Hi"}], []):  # a load is refused too
        with pytest.raises(ollama.ResponseError) as refused:
            await client.chat(NOMIC, messages)
        assert (refused.value.status_code, refused.value.error) == (
            400, '"nomic-embed-text" does not support chat')


async def test_a_vision_model_says_which_images_it_received(
    server: FakeOllama, client: ollama.AsyncClient
) -> None:
    server.add_model("gemma3", capabilities=("completion", "vision"))
    png, jpeg = b"\x89PNG\r\n\x1a\n" + bytes(range(40)), b"\xff\xd8\xff" + b"j" * 1000
    reply = await client.chat("gemma3", [
        {"role": "user", "content": "Compare them", "images": [png, jpeg]}])

    seen = [f"{hashlib.sha256(data).hexdigest()[:12]} ({len(data)} bytes)" for data in (png, jpeg)]
    assert reply.message.content == f"You said: Compare them [2 images: {', '.join(seen)}]"
    [sent] = server.chat_requests[-1]["messages"]
    assert [ollama.Image(value=data).model_dump() for data in (png, jpeg)] == sent["images"]


async def test_images_for_a_model_without_vision_are_refused(
    server: FakeOllama, client: ollama.AsyncClient
) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        await client.chat("llama3.2", [{"role": "user", "content": "See?", "images": [b"png"]}])
    assert (refused.value.status_code, refused.value.error) == (
        500, "this model is missing data required for image input")
    async with httpx.AsyncClient(base_url=server.url) as http:
        bad = await http.post("/api/chat", json={"model": "llama3.2", "messages": [
            {"role": "user", "content": "See?", "images": ["abc$"]}]})
    assert (bad.status_code, bad.json()) == (400, {"error": "illegal base64 data at input byte 3"})


# -- the app's embedder --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_ready_needs_the_embedding_capability_and_remembers_its_answer(
    server: FakeOllama,
) -> None:
    clock = Clock()
    embedder = OllamaEmbedder(make_settings(server), ready_for=30, clock=clock)
    assert (embedder.model, embedder.url) == (NOMIC, server.url)
    assert await embedder.ready() is True
    server.remove_model(NOMIC)
    assert await embedder.ready() is True  # remembered
    clock.now = 31
    assert await embedder.ready() is False
    shows = [r.body for r in server.requests if r.path == "/api/show"]
    assert shows == [{"model": NOMIC}, {"model": NOMIC}]

    chat_model = OllamaEmbedder(make_settings(server, embed_model="llama3.2"))
    assert await chat_model.ready() is False  # installed, but cannot embed
    server.stop()
    down = OllamaEmbedder(make_settings(server))
    assert await down.ready() is False  # never raises


async def test_embedding_failures_are_typed_errors(server: FakeOllama) -> None:
    embeddings = OllamaEmbedder(make_settings(server)).embeddings
    server.enqueue_embed_error(500, "out of memory")
    with pytest.raises(OllamaError, match=r"^Ollama reported an error: out of memory$"):
        await embeddings.aembed_documents(["a passage"])

    missing = OllamaEmbedder(make_settings(server, embed_model="all-minilm")).embeddings
    with pytest.raises(ModelNotFound, match="Model 'all-minilm' is not installed"):
        missing.embed_documents(["a passage"])

    server.stop()
    with pytest.raises(OllamaUnavailable) as down:
        await embeddings.aembed_query("a question")
    assert down.value.url == server.url
    with pytest.raises(OllamaUnavailable):
        embeddings.embed_query("a question")
