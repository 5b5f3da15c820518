"""Context that fits the model: each model's own context length caps what is asked of Ollama,
the history window shrinks with it and says what it left out; keep_alive reaches Ollama."""

from __future__ import annotations

import pytest

from ollamastack.agent.service_handle import open_chat_service
from ollamastack.events import Done
from tests.support.chat_helpers import make_settings, run_turn
from tests.support.ollama_server import FakeOllama


async def test_a_model_trained_for_less_gets_its_own_context(ollama_server: FakeOllama):
    ollama_server.add_model("tiny", context_length=2048)
    async with open_chat_service(make_settings(ollama_server, num_ctx=8192)) as service:
        await run_turn(service, "Hi", model="tiny")
        await run_turn(service, "Hi")  # llama3.2: trained for 131,072, so the setting's 8192
    tiny, llama = ollama_server.chat_requests
    assert (tiny["options"]["num_ctx"], llama["options"]["num_ctx"]) == (2048, 8192)
    shows = [r.body["model"] for r in ollama_server.requests if r.path == "/api/show"]
    assert shows == ["tiny", "llama3.2"]  # read once per model


async def test_the_window_says_how_many_earlier_messages_it_left_out(ollama_server: FakeOllama):
    ollama_server.add_model("tiny", context_length=1024)
    settings = make_settings(ollama_server, num_ctx=2048, history_tokens=1200)
    long = "word " * 150  # about 200 tokens a message
    async with open_chat_service(settings) as service:
        first = await run_turn(service, long, model="tiny")
        session = first[-1].session_id
        for _ in range(3):
            events = await run_turn(service, long, session_id=session, model="tiny")
        stored = await service.history(session)
    done = events[-1]
    assert isinstance(done, Done)
    sent = ollama_server.chat_requests[-1]["messages"][1:]  # without the system prompt
    assert done.stats.messages_left_out == len(stored) - 1 - len(sent) > 0
    assert first[-1].stats.messages_left_out == 0


@pytest.mark.parametrize(("setting", "sent"), [("10m", "10m"), ("-1", -1), ("0", 0)])
async def test_keep_alive_reaches_ollama(ollama_server: FakeOllama, setting: str, sent):
    async with open_chat_service(make_settings(ollama_server, keep_alive=setting)) as service:
        await run_turn(service, "Hi")
    assert ollama_server.chat_requests[-1]["keep_alive"] == sent


async def test_without_keep_alive_ollama_keeps_its_default(ollama_server: FakeOllama):
    async with open_chat_service(make_settings(ollama_server)) as service:
        await run_turn(service, "Hi")
    assert "keep_alive" not in ollama_server.chat_requests[-1]
