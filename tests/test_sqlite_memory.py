"""The SQLite file behind conversations: LangGraph's own format, written from one worker thread
while many turns run at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.sqlite.aio import AsyncSqliteStore

from ollamastack.agent.service_handle import open_chat_service
from ollamastack.events import Done
from ollamastack.storage.memory import owner_namespace
from tests.support.chat_helpers import make_settings, run_turn
from tests.support.ollama_server import FakeOllama


def stored(messages: list) -> list[tuple[str, str]]:
    return [(type(m).__name__, m.text) for m in messages]


async def test_many_turns_at_once_each_land_in_their_own_session(
    ollama_server: FakeOllama, tmp_path: Path
):
    settings = make_settings(ollama_server, database_url=f"sqlite:///{tmp_path / 'chat.sqlite'}")
    questions = [f"Question number {i}" for i in range(24)]
    async with open_chat_service(settings) as service:
        turns = await asyncio.gather(*(run_turn(service, q, user="alice") for q in questions))
        sessions = [events[-1].session_id for events in turns]
        assert all(isinstance(events[-1], Done) for events in turns)
        assert len(set(sessions)) == 24
        for question, session in zip(questions, sessions, strict=True):
            assert stored(await service.history(session, "alice")) == [
                ("HumanMessage", question),
                ("AIMessage", f"You said: {question}"),  # the test server's echo
            ]
        assert sorted(s.id for s in await service.sessions("alice")) == sorted(sessions)


async def test_the_file_reads_back_with_langgraphs_own_async_classes(
    ollama_server: FakeOllama, tmp_path: Path
):
    """Same tables and encoding as LangGraph's aiosqlite classes: a database written by an
    earlier version of the app, or read by another LangGraph program, stays readable."""
    path = tmp_path / "chat.sqlite"
    settings = make_settings(ollama_server, database_url=f"sqlite:///{path}")
    async with open_chat_service(settings) as service:
        ollama_server.enqueue_text("Noted.")
        session = (await run_turn(service, "Remember the number 7.", user="bob"))[-1].session_id

    async with aiosqlite.connect(str(path)) as saver_conn, aiosqlite.connect(
        str(path), isolation_level=None
    ) as store_conn:
        saved = await AsyncSqliteSaver(saver_conn).aget_tuple(
            {"configurable": {"thread_id": session, "checkpoint_ns": ""}}
        )
        assert saved is not None
        assert stored(saved.checkpoint["channel_values"]["messages"]) == [
            ("HumanMessage", "Remember the number 7."),
            ("AIMessage", "Noted."),
        ]
        item = await AsyncSqliteStore(store_conn).aget(owner_namespace("bob"), session)
        assert item is not None and item.value["title"] == "Remember the number 7."
