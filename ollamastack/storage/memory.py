"""Where conversations live: the LangGraph checkpointer, the index of sessions, and search.

The checkpointer holds each session's messages (keyed by `thread_id` = session id); a
LangGraph store beside it holds who owns each session, its title and times, so listing a
user's sessions never scans checkpoints. Both come from LangGraph's own SQLite or PostgreSQL
packages; the full-text search index (`search.py`) and the attached files (`documents.py`)
live in the same database. Every read and write passes the user: another user's session is
reported as not found, so no caller can forget the owner check.
"""

from __future__ import annotations

import asyncio
import logging
import stat
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.embeddings import Embeddings
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore, GetOp

from ollamastack.errors import DatabaseUnavailable, SessionNotFound
from ollamastack.settings import Settings
from ollamastack.storage.documents import DocumentStore
from ollamastack.storage.search import PostgresSearchIndex, SearchIndex, SqliteSearchIndex
from ollamastack.validation import session_id as valid_session_id

TITLE_CHARS = 60
SETUP_LOCK = 0x6F6C6C616D61  # PostgreSQL advisory lock held while creating the tables
TRY_LOCK = "SELECT pg_try_advisory_lock(%s) AS got"
MAX_LISTED = 10_000

log = logging.getLogger(__name__)


def session_title(message: str) -> str:
    """A conversation's title: its first message on one line, cut short.

    >>> session_title("  What is\\n 6 times 7? ")
    'What is 6 times 7?'
    """
    return " ".join(message.split())[:TITLE_CHARS]


@dataclass(frozen=True)
class SessionInfo:
    id: str
    title: str
    created_at: float
    updated_at: float
    settings: dict = field(default_factory=dict)  # the page's per-chat settings, as saved
    deleted_at: float | None = None  # deleted, but can still be brought back (undo)

    @classmethod
    def of(cls, key: str, value: dict) -> SessionInfo:
        return cls(key, value["title"], value["created_at"], value["updated_at"],
                   dict(value.get("settings") or {}), value.get("deleted_at"))


def owner_namespace(owner: str) -> tuple[str, str]:
    """The store namespace of one owner's sessions (labels may not hold '.' or be empty).

    >>> owner_namespace("")
    ('sessions', 'anonymous')
    >>> owner_namespace("john.doe")
    ('sessions', 'user-6a6f686e2e646f65')
    """
    return ("sessions", f"user-{owner.encode().hex()}" if owner else "anonymous")


class SessionIndex:
    """Owner, title and times of each session, as items of a LangGraph store."""

    def __init__(self, store: BaseStore) -> None:
        self._store = store

    async def create(self, owner: str) -> str:
        new_id, now = str(uuid.uuid4()), time.time()
        value = {"title": "", "created_at": now, "updated_at": now}
        await self._store.aput(owner_namespace(owner), new_id, value, index=False)
        return new_id

    async def check(self, session_id: str, owner: str) -> str:
        """The valid id of a session `owner` may use, or `SessionNotFound` (also for one
        deleted and waiting for its undo to expire)."""
        await self._item(session_id, owner)
        return valid_session_id(session_id)

    async def _item(self, session_id: str, owner: str, *, deleted: bool = False) -> dict:
        """The index entry of `owner`'s session; `deleted`: one waiting for its undo too."""
        session_id = valid_session_id(session_id)
        item = await self._store.aget(owner_namespace(owner), session_id)
        if item is None or (item.value.get("deleted_at") and not deleted):
            raise SessionNotFound(session_id)
        return dict(item.value)

    async def _update(
        self, session_id: str, owner: str, *, deleted: bool = False, **changes: object
    ) -> None:
        value = await self._item(session_id, owner, deleted=deleted)
        await self._store.aput(
            owner_namespace(owner), valid_session_id(session_id), value | changes, index=False
        )

    async def rename(self, session_id: str, owner: str, title: str) -> None:
        await self._update(session_id, owner, title=title)

    async def save_settings(self, session_id: str, owner: str, settings: dict) -> None:
        """Keep the page's settings for this chat (model, temperature, prompt...)."""
        await self._update(session_id, owner, settings=dict(settings))

    async def hide(self, session_id: str, owner: str) -> None:
        """Deleted for every reader, until `restore` or the real delete."""
        await self._update(session_id, owner, deleted_at=time.time())

    async def restore(self, session_id: str, owner: str) -> None:
        await self._update(session_id, owner, deleted=True, deleted_at=None)

    async def touch(self, session_id: str, owner: str, message: str) -> None:
        """Record activity; the first message becomes the title."""
        value = await self._item(session_id, owner)
        value |= {"title": value["title"] or session_title(message), "updated_at": time.time()}
        await self._store.aput(owner_namespace(owner), session_id, value, index=False)

    async def list(self, owner: str, *, deleted: bool = False) -> list[SessionInfo]:
        """`owner`'s sessions, newest first; `deleted`: only those waiting for their undo."""
        items = await self._store.asearch(owner_namespace(owner), limit=MAX_LISTED)
        sessions = [SessionInfo.of(i.key, i.value) for i in items]
        sessions = [s for s in sessions if bool(s.deleted_at) == deleted]
        return sorted(sessions, key=lambda s: s.updated_at, reverse=True)

    async def found(self, owner: str, session_ids: list[str]) -> dict[str, SessionInfo]:
        """Those of `session_ids` that are `owner`'s and not deleted, read in one batch."""
        namespace = owner_namespace(owner)
        items = await self._store.abatch([GetOp(namespace, key) for key in session_ids])
        infos = [SessionInfo.of(item.key, item.value) for item in items if item is not None]
        return {info.id: info for info in infos if not info.deleted_at}

    async def delete(self, session_id: str, owner: str) -> None:
        await self._store.adelete(owner_namespace(owner), session_id)


@dataclass(frozen=True)
class Memory:
    """The checkpointer, the session index, the search index and the attached files, opened
    together on one database."""

    checkpointer: BaseCheckpointSaver
    sessions: SessionIndex
    store: BaseStore  # the key-value store under the session index (API tokens share it)
    search: SearchIndex
    documents: DocumentStore | None = None


def private_directory(path: Path) -> None:
    """Create the data directory (database, audit log) for this user only (0700), and narrow
    one that others may read (as an older version made it)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o700)
    except OSError as error:
        log.warning("could not make %s private to this user (mode 0700): %s", path, error)


@asynccontextmanager
async def open_memory(
    settings: Settings, *, embeddings: Embeddings | None = None
) -> AsyncIterator[Memory]:
    """Open the database named by `settings.database_url`, creating its tables if missing;
    the data directory is made this user's only first (unless nothing is stored in it).
    `embeddings` index attached documents (None: they are searched by keywords)."""
    if str(settings.sqlite_path) != ":memory:":
        private_directory(settings.data_dir)
    if settings.on_postgres:
        async with _open_postgres(settings.database_url) as (checkpointer, store, search):
            documents = await DocumentStore.on_postgres(store, embeddings)
            _log_note(documents)
            yield Memory(checkpointer, SessionIndex(store), store, search, documents)
        return
    from ollamastack.storage.sqlite import open_sqlite

    assert settings.sqlite_path is not None
    async with (
        open_sqlite(settings.sqlite_path) as (checkpointer, store),
        SqliteSearchIndex.open(settings.sqlite_path) as search,
        DocumentStore.open_sqlite(documents_path(settings.sqlite_path), embeddings) as documents,
    ):
        _log_note(documents)
        yield Memory(checkpointer, SessionIndex(store), store, search, documents)


def documents_path(path: Path | str) -> Path | str:
    """The SQLite file of attached files, beside the conversations' file. A file of its own:
    where Python's sqlite3 cannot load sqlite-vec it is opened through pysqlite3, another copy
    of SQLite, and two copies in one process must never open the same file (each drops the
    other's POSIX locks: https://sqlite.org/howtocorrupt.html, "multiple copies of SQLite").

    >>> documents_path("data/ollamastack.sqlite"), documents_path(":memory:")
    (PosixPath('data/ollamastack-documents.sqlite'), ':memory:')
    """
    if str(path) == ":memory:":
        return path
    path = Path(path)
    return path.with_name(f"{path.stem}-documents{path.suffix}")


def _log_note(documents: DocumentStore) -> None:
    if documents.note:
        log.info("%s", documents.note)


async def check_postgres(url: str) -> None:
    """Fail at once, saying where and why, rather than after the pool's 30 s wait."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        connection = await psycopg.AsyncConnection.connect(url, connect_timeout=5)
    except psycopg.OperationalError as error:
        info = conninfo_to_dict(url)  # never shown whole: it may hold the password
        where = "{}:{}/{}".format(
            info.get("host", "localhost"), info.get("port", 5432), info.get("dbname", "")
        )
        reason = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise DatabaseUnavailable(where, reason) from None
    await connection.close()


@asynccontextmanager
async def _open_postgres(
    url: str,
) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore, SearchIndex]]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.store.postgres.aio import AsyncPostgresStore
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    await check_postgres(url)
    options = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    async with AsyncConnectionPool(url, kwargs=options, open=False, max_size=20) as pool:
        opened = AsyncPostgresSaver(pool), AsyncPostgresStore(pool), PostgresSearchIndex(pool)
        # App replicas started together on a new database would race to create the same
        # tables (duplicate key errors): one process at a time, under a session lock. Polled,
        # not waited for: a waiting statement would hold back the holder's CREATE INDEX
        # CONCURRENTLY, which waits for every open transaction.
        async with pool.connection() as lock:
            while True:
                if (await (await lock.execute(TRY_LOCK, (SETUP_LOCK,))).fetchone())["got"]:
                    break
                await asyncio.sleep(0.05)
            try:
                for part in opened:
                    await part.setup()
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
        yield opened
