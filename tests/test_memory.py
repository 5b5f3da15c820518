"""Where conversations live: sessions per user, in a database that outlives the service.

Every test runs on both backends: a SQLite file (the default) and a real PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.errors import SessionNotFound
from ollamastack.events import Done
from ollamastack.storage.memory import TITLE_CHARS, SessionInfo
from tests.support.chat_helpers import assistant, make_settings, run_turn, user
from tests.support.ollama_server import FakeOllama


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'chat.sqlite'}"  # the folder is created
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
async def service(ollama_server: FakeOllama, database_url: str) -> AsyncIterator[ChatService]:
    settings = make_settings(ollama_server, database_url=database_url)
    async with open_chat_service(settings) as chat:
        yield chat


def stored(messages: list) -> list[tuple[str, str]]:
    return [(type(m).__name__, m.text) for m in messages]


# Persistence


async def test_a_conversation_survives_a_new_service(ollama_server: FakeOllama, database_url: str):
    settings = make_settings(ollama_server, database_url=database_url)
    async with open_chat_service(settings) as service:
        ollama_server.enqueue_text("Noted, your favourite colour is green.")
        first = await run_turn(service, "My favourite colour is green.", user="alice")
        session = first[-1].session_id
        listed = await service.sessions("alice")

    if (database := settings.sqlite_path) is not None:
        with closing(sqlite3.connect(database)) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    async with open_chat_service(settings) as service:
        assert await service.sessions("alice") == listed
        assert stored(await service.history(session, "alice")) == [
            ("HumanMessage", "My favourite colour is green."),
            ("AIMessage", "Noted, your favourite colour is green."),
        ]
        ollama_server.enqueue_text("Green.")
        second = await run_turn(service, "What is my favourite colour?", session_id=session,
                                user="alice")  # fmt: skip

    assert second[-1] == Done(session, second[-1].stats)
    assert ollama_server.chat_requests[-1]["messages"][1:] == [
        user("My favourite colour is green."),
        assistant("Noted, your favourite colour is green."),
        user("What is my favourite colour?"),
    ]


# Sessions


async def test_new_session_and_listing(service: ChatService, ollama_server: FakeOllama):
    empty = await service.new_session()
    first = (await run_turn(service, "  What is   the\ncapital of France?  "))[-1].session_id
    await run_turn(service, "And of Spain?", session_id=first)
    long = (await run_turn(service, "word " * 40))[-1].session_id

    for session in (empty, first, long):
        assert uuid.UUID(session).version == 4 and str(uuid.UUID(session)) == session
    listing = await service.sessions()
    assert [(s.id, s.title) for s in listing] == [  # the newest activity first
        (long, ("word " * 40)[:TITLE_CHARS]),
        (first, "What is the capital of France?"),  # the first message, on one line
        (empty, ""),
    ]
    assert all(isinstance(s, SessionInfo) and s.created_at <= s.updated_at for s in listing)
    assert await service.history(empty) == []


async def test_sessions_belong_to_their_user(service: ChatService, ollama_server: FakeOllama):
    alice = (await run_turn(service, "Alice's secret", user="alice"))[-1].session_id
    requests_before = ollama_server.requests

    assert await service.sessions("bob") == []
    assert await service.sessions() == []  # no login is a user of its own
    for attempt in (
        lambda: service.history(alice, "bob"),
        lambda: run_turn(service, "Tell me Alice's secret", session_id=alice, user="bob"),
        lambda: service.delete_session(alice, "bob"),
    ):
        with pytest.raises(SessionNotFound) as raised:
            await attempt()
        assert str(raised.value) == f"No conversation with id {alice} was found."
    assert ollama_server.requests == requests_before
    assert [s.id for s in await service.sessions("alice")] == [alice]
    assert stored(await service.history(alice, "alice")) == [
        ("HumanMessage", "Alice's secret"),
        ("AIMessage", "You said: Alice's secret"),
    ]


async def test_delete_session(service: ChatService, ollama_server: FakeOllama):
    kept = (await run_turn(service, "Keep me"))[-1].session_id
    gone = (await run_turn(service, "Delete me"))[-1].session_id

    await service.delete_session(gone)

    assert [s.id for s in await service.sessions()] == [kept]
    for attempt in (
        lambda: service.history(gone),
        lambda: service.delete_session(gone),
        lambda: run_turn(service, "Hello again", session_id=gone),
    ):
        with pytest.raises(SessionNotFound):
            await attempt()
    assert len(await service.history(kept)) == 2
    state = await service.memory.checkpointer.aget_tuple({"configurable": {"thread_id": gone}})
    assert state is None  # the checkpoints are gone too, not only the listing


async def test_rename_settings_and_a_deletion_that_can_be_undone_are_the_owners_only(
    ollama_server: FakeOllama, database_url: str
):
    """What the page's side list keeps in the session index: a title, the chat's settings,
    and a deletion pending its undo; kept across a restart, reached by the owner only."""
    settings = make_settings(ollama_server, database_url=database_url)
    chat_settings = {"model": "qwen3:8b", "temperature": 0.2, "system_prompt": "Be brief.",
                     "show_thinking": False}
    async with open_chat_service(settings) as service:
        index = service.memory.sessions
        kept = (await run_turn(service, "Keep me", user="alice"))[-1].session_id
        hidden = (await run_turn(service, "Hide me", user="alice"))[-1].session_id
        await index.rename(kept, "alice", "Trip plans")
        await index.save_settings(kept, "alice", chat_settings)
        await index.hide(hidden, "alice")
        for attempt in (  # Bob names Alice's conversations: none of his
            lambda: index.rename(kept, "bob", "Mine"),
            lambda: index.save_settings(kept, "bob", {}),
            lambda: index.hide(kept, "bob"),
            lambda: index.restore(hidden, "bob"),
        ):
            with pytest.raises(SessionNotFound):
                await attempt()
        with pytest.raises(SessionNotFound):  # hidden: no reader reaches it, its owner neither
            await service.history(hidden, "alice")
        await run_turn(service, "And more", session_id=kept, user="alice")  # a turn keeps them

    async with open_chat_service(settings) as service:
        index = service.memory.sessions
        [listed] = await service.sessions("alice")
        assert (listed.id, listed.title, listed.settings, listed.deleted_at) == (
            kept, "Trip plans", chat_settings, None
        )
        [pending] = await index.list("alice", deleted=True)
        assert (pending.id, pending.title) == (hidden, "Hide me")
        assert isinstance(pending.deleted_at, float)
        await index.restore(hidden, "alice")  # undo
        assert [s.id for s in await service.sessions("alice")] == [kept, hidden]
        assert await index.list("alice", deleted=True) == []
        assert stored(await service.history(hidden, "alice")) == [
            ("HumanMessage", "Hide me"), ("AIMessage", "You said: Hide me")
        ]
