"""Where conversations live: the LangGraph checkpointer and the index of sessions.

The checkpointer holds each session's messages (keyed by `thread_id` = session id); the
session index holds who owns a session and its title, so listing a user's sessions never
scans checkpoints. Every read and write passes the user: a session of another user is
reported as not found, so no caller can forget the owner check.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from ollamastack.errors import SessionNotFound, SettingsError
from ollamastack.settings import Settings
from ollamastack.validation import session_id as valid_session_id

TITLE_CHARS = 60


@dataclass(frozen=True)
class SessionInfo:
    id: str
    title: str
    created_at: float
    updated_at: float


class SessionIndex:
    """Owner, title and times of each session, in a table beside the checkpoints."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def setup(self) -> None:
        await self._conn.execute(
            "CREATE TABLE IF NOT EXISTS ollamastack_sessions ("
            " id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',"
            " created_at REAL NOT NULL, updated_at REAL NOT NULL)"
        )
        await self._conn.execute(
            "CREATE INDEX IF NOT EXISTS ollamastack_sessions_owner"
            " ON ollamastack_sessions (owner, updated_at)"
        )
        await self._conn.commit()

    async def create(self, owner: str) -> str:
        new_id = str(uuid.uuid4())
        now = time.time()
        await self._conn.execute(
            "INSERT INTO ollamastack_sessions (id, owner, created_at, updated_at)"
            " VALUES (?, ?, ?, ?)",
            (new_id, owner, now, now),
        )
        await self._conn.commit()
        return new_id

    async def check(self, session_id: str, owner: str) -> str:
        """The valid id of a session `owner` may use, or `SessionNotFound`."""
        session_id = valid_session_id(session_id)
        async with self._conn.execute(
            "SELECT 1 FROM ollamastack_sessions WHERE id = ? AND owner = ?", (session_id, owner)
        ) as cursor:
            if await cursor.fetchone() is None:
                raise SessionNotFound(session_id)
        return session_id

    async def touch(self, session_id: str, first_message: str) -> None:
        """Record activity; the first message becomes the title."""
        title = " ".join(first_message.split())[:TITLE_CHARS]
        await self._conn.execute(
            "UPDATE ollamastack_sessions SET updated_at = ?,"
            " title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
            (time.time(), title, session_id),
        )
        await self._conn.commit()

    async def list(self, owner: str) -> list[SessionInfo]:
        async with self._conn.execute(
            "SELECT id, title, created_at, updated_at FROM ollamastack_sessions"
            " WHERE owner = ? ORDER BY updated_at DESC",
            (owner,),
        ) as cursor:
            return [SessionInfo(*row) async for row in cursor]

    async def delete(self, session_id: str) -> None:
        await self._conn.execute("DELETE FROM ollamastack_sessions WHERE id = ?", (session_id,))
        await self._conn.commit()


@dataclass(frozen=True)
class Memory:
    """The checkpointer and the session index, opened together on one database."""

    checkpointer: BaseCheckpointSaver
    sessions: SessionIndex


@asynccontextmanager
async def open_memory(settings: Settings) -> AsyncIterator[Memory]:
    """Open the database named by `settings.database_url` (created if missing)."""
    if settings.database_url == "sqlite:///:memory:":
        path = ":memory:"
    elif (file := settings.sqlite_path) is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        path = str(file)
    else:
        raise SettingsError(
            f"OLLAMASTACK_DATABASE_URL {settings.database_url!r} is not supported; "
            "use sqlite:///path/to/file.sqlite"
        )
    conn = await aiosqlite.connect(path)
    try:
        checkpointer = AsyncSqliteSaver(conn)
        await checkpointer.setup()  # also switches the file to WAL mode
        sessions = SessionIndex(conn)
        await sessions.setup()
        yield Memory(checkpointer, sessions)
    finally:
        await conn.close()

