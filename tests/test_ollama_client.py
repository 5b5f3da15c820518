"""`OllamaClient` against the Ollama-protocol server: models, pulls, deletes, typed errors."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from ollamastack.engines.ollama.client import OllamaClient
from ollamastack.engines.types import Health, ModelInfo, PullProgress, RunningModel
from ollamastack.errors import ModelNotFound, OllamaError, OllamaUnavailable
from tests.support.chat_helpers import closed_port_url
from tests.support.ollama_server import FakeOllama

LLAMA_SIZE = 2_019_393_189  # FakeOllama's default model size


@pytest.fixture
async def client(ollama_server: FakeOllama) -> AsyncIterator[OllamaClient]:
    ollama = OllamaClient(ollama_server.url, request_timeout=10)
    yield ollama
    await ollama.close()


async def test_version_and_health(client: OllamaClient, ollama_server: FakeOllama):
    ollama_server.add_model("qwen3:8b")

    assert await client.version() == "0.12.6"
    assert await client.health() == Health(True, ollama_server.url, "0.12.6", 2)


async def test_health_when_ollama_is_down():
    url = closed_port_url()
    client = OllamaClient(url)
    try:
        health = await client.health()
    finally:
        await client.close()

    assert health == Health(False, url, error=str(OllamaUnavailable(url)))
    assert url in health.error and "ollama serve" in health.error


async def test_list_models_with_capabilities(client: OllamaClient, ollama_server: FakeOllama):
    ollama_server.add_model(
        "qwen3:8b",
        capabilities=("completion", "tools", "thinking"),
        size=5_225_387_923,
        parameter_size="8.2B",
        family="qwen3",
        modified_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    ollama_server.add_model(
        "llava:7b",
        capabilities=("completion", "vision"),
        size=4_733_363_377,
        parameter_size="7B",
        quantization="Q4_0",
        modified_at=datetime(2026, 1, 1, tzinfo=UTC),
    )

    models = await client.list_models()

    assert models == [  # newest first, as Ollama lists them
        ModelInfo("llama3.2:latest", LLAMA_SIZE, "3.2B", "Q4_K_M", "llama",
                  ("completion", "tools")),
        ModelInfo("qwen3:8b", 5_225_387_923, "8.2B", "Q4_K_M", "qwen3",
                  ("completion", "tools", "thinking")),
        ModelInfo("llava:7b", 4_733_363_377, "7B", "Q4_0", "llama", ("completion", "vision")),
    ]  # fmt: skip
    assert [m.supports_tools for m in models] == [True, True, False]
    shown = sorted(r.body["model"] for r in ollama_server.requests if r.path == "/api/show")
    assert shown == ["llama3.2:latest", "llava:7b", "qwen3:8b"]


async def test_running_models(client: OllamaClient, ollama_server: FakeOllama):
    assert await client.running_models() == []

    ollama_server.load_model("llama3.2", context_length=8192)

    assert await client.running_models() == [
        RunningModel("llama3.2:latest", LLAMA_SIZE, LLAMA_SIZE, 8192)
    ]


def layer_progress(model: str, layer: str, total: int) -> list[PullProgress]:
    digest = "sha256:" + hashlib.sha256(f"{model}/{layer}".encode()).hexdigest()
    return [
        PullProgress(f"pulling {digest[7:19]}", total * step // 4, total, digest)
        for step in range(5)
    ]


async def test_pull_streams_progress_then_lists_the_model(
    client: OllamaClient, ollama_server: FakeOllama
):
    ollama_server.add_pullable("qwen3:8b", capabilities=("completion", "tools", "thinking"),
                               size=5_000_000_000, parameter_size="8.2B")  # fmt: skip

    progress = [line async for line in client.pull("qwen3:8b")]

    assert progress == [
        PullProgress("pulling manifest"),
        *layer_progress("qwen3:8b", "model", 5_000_000_000 - 2_000),
        *layer_progress("qwen3:8b", "template", 1_429),
        *layer_progress("qwen3:8b", "params", 571),
        PullProgress("verifying sha256 digest"),
        PullProgress("writing manifest"),
        PullProgress("success"),
    ]
    model_layer = progress[1:6]
    assert [p.completed for p in model_layer] == sorted({p.completed for p in model_layer})
    assert (model_layer[-1].completed, model_layer[-1].total) == (4_999_998_000, 4_999_998_000)
    assert [(m.name, m.capabilities) for m in await client.list_models()] == [
        ("qwen3:8b", ("completion", "tools", "thinking")),
        ("llama3.2:latest", ("completion", "tools")),
    ]


async def test_pull_of_a_missing_model(client: OllamaClient, ollama_server: FakeOllama):
    ollama_server.mark_unpullable("no-such-model:1b")
    progress = []

    with pytest.raises(OllamaError) as raised:
        async for line in client.pull("no-such-model:1b"):
            progress.append(line)

    assert progress == [PullProgress("pulling manifest")]
    assert str(raised.value) == "Ollama reported an error: pull model manifest: file does not exist"
    assert [m.name for m in await client.list_models()] == ["llama3.2:latest"]


async def test_delete(client: OllamaClient, ollama_server: FakeOllama):
    ollama_server.add_model("qwen3:8b")

    await client.delete("qwen3:8b")

    assert [m.name for m in await client.list_models()] == ["llama3.2:latest"]
    with pytest.raises(ModelNotFound) as raised:
        await client.delete("qwen3:8b")
    assert str(raised.value) == (
        "Model 'qwen3:8b' is not installed in Ollama. "
        "Pull it with `ollama pull qwen3:8b` or from the Models tab."
    )


async def test_capabilities_are_cached_until_pull_or_delete(
    client: OllamaClient, ollama_server: FakeOllama
):
    def shows() -> int:
        return sum(1 for r in ollama_server.requests if r.path == "/api/show")

    ollama_server.add_model("phi4", capabilities=("completion",))
    assert await client.capabilities("phi4") == ("completion",)
    assert await client.capabilities("phi4") == ("completion",)
    assert shows() == 1

    ollama_server.add_pullable("phi4", capabilities=("completion", "tools"))  # a newer version
    assert [p.status async for p in client.pull("phi4")][-1] == "success"
    assert await client.capabilities("phi4") == ("completion", "tools")
    assert shows() == 2

    await client.delete("phi4")
    with pytest.raises(ModelNotFound):
        await client.capabilities("phi4")
    with pytest.raises(ModelNotFound):  # a missing model is not cached
        await client.capabilities("phi4")
    assert shows() == 4


async def consume_pull(client: OllamaClient) -> list[PullProgress]:
    return [line async for line in client.pull("llama3.2")]


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.version(),
        lambda c: c.list_models(),
        lambda c: c.running_models(),
        lambda c: c.capabilities("llama3.2"),
        lambda c: c.delete("llama3.2"),
        consume_pull,
    ],
    ids=["version", "list_models", "running_models", "capabilities", "delete", "pull"],
)
async def test_every_call_reports_ollama_down(call):
    url = closed_port_url()
    client = OllamaClient(url)
    try:
        with pytest.raises(OllamaUnavailable) as raised:
            await call(client)
    finally:
        await client.close()

    assert raised.value.url == url
    assert str(raised.value) == (
        f"Ollama is not reachable at {url}. Start it with `ollama serve` "
        "(or `docker compose up ollama`), or point OLLAMA_HOST at a running server."
    )


async def test_a_stopped_server_is_reported_and_recovers(
    client: OllamaClient, ollama_server: FakeOllama
):
    assert await client.version() == "0.12.6"
    ollama_server.stop()

    with pytest.raises(OllamaUnavailable):
        await client.list_models()
    assert (await client.health()).reachable is False

    ollama_server.start()
    assert await client.health() == Health(True, ollama_server.url, "0.12.6", 1)
