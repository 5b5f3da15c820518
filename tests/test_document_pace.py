"""Embedding a document gives way to other conversations' turns (ollamastack/pace.py): no
passage is sent to `/api/embed` while another session answers, for as long as the pace's
patience lasts, and never longer; a turn's own files do not hold it back. Real HTTP to the
Ollama-protocol test server, whose request log shows the order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.engines.ollama.embeddings import OllamaEmbedder
from ollamastack.events import Done
from ollamastack.pace import Pace
from tests.support.chat_helpers import make_settings
from tests.support.ollama_server import FakeOllama

WORDS = "harbor ledger quarterly lantern orchard copper meadow signal"


def large_text(passages: int) -> bytes:
    """A text file split into about `passages` passages (several embedding requests)."""
    paragraph = " ".join([WORDS] * 40) + "\n\n"
    return (paragraph * passages * 2).encode()


@pytest.fixture
async def service(ollama_server: FakeOllama, tmp_path) -> AsyncIterator[ChatService]:
    ollama_server.add_model("nomic-embed-text", capabilities=("embedding",))
    settings = make_settings(ollama_server, data_dir=tmp_path,
                             database_url=f"sqlite:///{tmp_path}/chats.sqlite")
    async with open_chat_service(settings) as service:
        # the store learns the vectors' length once (one embedding, not paced)
        ollama_server.enqueue_text("Warm.")
        await drain(service.stream_turn("Warm up.", files=[("warm.txt", b"Warm words.")]))
        yield service


async def drain(events: AsyncIterator) -> list:
    return [event async for event in events]


def embeds(server: FakeOllama) -> int:
    return len(server.embed_requests)


async def test_no_passage_is_embedded_while_another_conversation_answers(
    service: ChatService, ollama_server: FakeOllama,
) -> None:
    assert service.memory.documents is not None
    service.memory.documents.pace.patience = 30.0  # the other turn ends first
    ollama_server.enqueue_text("Slowly, an answer.", first_byte_delay=1.0)
    other = asyncio.create_task(drain(service.stream_turn("Tell me slowly.")))
    await asyncio.to_thread(ollama_server.wait_until, lambda: ollama_server.chat_requests)
    before = embeds(ollama_server)
    ollama_server.enqueue_text("About the harbor.")
    attaching = asyncio.create_task(drain(service.stream_turn(
        "What about the harbor?", files=[("book.txt", large_text(60))])))
    answered = await other
    during = embeds(ollama_server) - before
    events = await attaching
    assert isinstance(answered[-1], Done) and isinstance(events[-1], Done)
    assert during == 0  # given way: nothing embedded while the other session answered
    assert embeds(ollama_server) - before >= 4  # then the passages, 16 a request, and the question
    assert service.memory.documents.pace.waited > 0.5


async def test_patience_bounds_the_wait_so_a_busy_server_still_stores_the_document(
    service: ChatService, ollama_server: FakeOllama,
) -> None:
    assert service.memory.documents is not None
    service.memory.documents.pace.patience = 0.05
    ollama_server.enqueue_text("Slowly, an answer.", first_byte_delay=3.0)
    other = asyncio.create_task(drain(service.stream_turn("Tell me slowly.")))
    await asyncio.to_thread(ollama_server.wait_until, lambda: ollama_server.chat_requests)
    before = embeds(ollama_server)
    ollama_server.enqueue_text("About the harbor.")
    began = time.monotonic()
    events = await drain(service.stream_turn(
        "What about the harbor?", files=[("book.txt", large_text(60))]))
    took = time.monotonic() - began
    assert not other.done()  # the other turn still answers: the document did not wait for it
    assert isinstance(events[-1], Done) and embeds(ollama_server) - before >= 4
    assert took < 2.5
    await other


async def test_a_turn_storing_files_alone_does_not_wait_for_itself(
    service: ChatService, ollama_server: FakeOllama,
) -> None:
    assert service.memory.documents is not None
    service.memory.documents.pace.patience = 30.0
    ollama_server.enqueue_text("About the harbor.")
    await drain(service.stream_turn("What about the harbor?",
                                    files=[("book.txt", large_text(60))]))
    assert service.memory.documents.pace.waited == 0.0


def test_pace_waits_while_busy_and_at_most_its_patience() -> None:
    until = time.monotonic() + 0.1
    pace = Pace(lambda: time.monotonic() < until, patience=5.0, poll=0.001)
    began = time.monotonic()
    pace.wait()
    assert 0.09 <= time.monotonic() - began < 1.0
    stuck = Pace(lambda: True, patience=0.05, poll=0.001)
    began = time.monotonic()
    stuck.wait()
    assert 0.05 <= time.monotonic() - began < 0.5
    assert stuck.waited >= 0.05


def test_the_embedder_waits_before_reading_a_reply_only_in_paced_work(
    ollama_server: FakeOllama,
) -> None:
    """The embedding client's response hook: in a thread doing a pace's work, the reply is
    read only once nobody else is answering (or the patience is spent); a question's
    embedding, outside that work, never waits."""
    ollama_server.add_model("nomic-embed-text", capabilities=("embedding",))
    embeddings = OllamaEmbedder(make_settings(ollama_server,
                                              embed_model="nomic-embed-text")).embeddings
    pace = Pace(lambda: True, patience=0.3, poll=0.01)
    began = time.monotonic()
    with pace.running():
        [vector] = embeddings.embed_documents(["harbor ledger"])
    paced = time.monotonic() - began
    began = time.monotonic()
    assert embeddings.embed_query("harbor ledger") == vector
    unpaced = time.monotonic() - began
    assert paced >= 0.3 and pace.waited >= 0.3
    assert unpaced < 0.25
    assert len(ollama_server.embed_requests) == 2
