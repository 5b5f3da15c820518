"""Search in the SQLite file: FTS5 over an external-content table."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from ollamastack.storage.search.base import SNIPPET_WORDS, Hit, SearchIndex


def fts5_query(words: list[str]) -> str:
    """An FTS5 query of quoted words, the last one a prefix.

    >>> fts5_query(["foo", "AND"])
    '"foo" "AND"*'
    """
    return " ".join(f'"{word}"' for word in words) + "*"


_SQLITE_TABLES = """
CREATE TABLE IF NOT EXISTS search_message (
    id INTEGER PRIMARY KEY, owner TEXT NOT NULL, session_id TEXT NOT NULL,
    message_index INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS search_message_session ON search_message (session_id, message_index);
CREATE VIRTUAL TABLE IF NOT EXISTS search_text
    USING fts5(text, content='search_message', content_rowid='id', prefix='2 3');
CREATE TRIGGER IF NOT EXISTS search_message_added AFTER INSERT ON search_message BEGIN
    INSERT INTO search_text (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS search_message_removed AFTER DELETE ON search_message BEGIN
    INSERT INTO search_text (search_text, rowid, text) VALUES ('delete', old.id, old.text);
END;
"""
# Newest rows first (FTS5 walks its matches by rowid); the owner filter is in the query.
_SQLITE_SEARCH = f"""
SELECT m.session_id, m.message_index, snippet(search_text, 0, '', '', '…', {SNIPPET_WORDS})
FROM search_text JOIN search_message AS m ON m.id = search_text.rowid
WHERE search_text MATCH ? AND m.owner = ?
ORDER BY search_text.rowid DESC
"""
_SQLITE_INSERT = ("INSERT INTO search_message (owner, session_id, message_index, text)"
                  " VALUES (?, ?, ?, ?)")
_SQLITE_INDEXED = """SELECT value FROM json_each(?)
WHERE EXISTS (SELECT 1 FROM search_message WHERE session_id = value AND message_index = 0)"""
_SQLITE_FIRST = "SELECT min(message_index) FROM search_message WHERE session_id = ?"


class SqliteSearchIndex(SearchIndex):
    """FTS5 over an external-content table in the SQLite file, on a thread of its own (the
    connection is used by that thread only)."""

    def __init__(self, connection: sqlite3.Connection, worker: ThreadPoolExecutor) -> None:
        self._connection = connection
        self._worker = worker

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str) -> AsyncIterator[SqliteSearchIndex]:
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search")
        index = cls(sqlite3.connect(str(path), check_same_thread=False), worker)
        try:
            await index.setup()
            yield index
        finally:
            await index._run(index._connection.close)
            worker.shutdown(wait=True)

    async def _run(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self._worker, partial(call, *args)
        )

    async def setup(self) -> None:
        # As the saver's connections (sqlite.py): WAL, and no fsync per commit.
        await self._run(self._connection.executescript,
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + _SQLITE_TABLES)

    async def add(
        self, session_id: str, owner: str, start: int, entries: Sequence[tuple[int, str]]
    ) -> None:
        await self._run(self._add, session_id, owner, start, list(entries))

    def _add(self, session_id: str, owner: str, start: int, entries: list) -> None:
        with self._connection:  # one transaction
            self._delete(session_id, start)
            self._connection.executemany(
                _SQLITE_INSERT, [(owner, session_id, index, text) for index, text in entries]
            )

    async def flush(self) -> None:
        return None  # nothing is queued: `add` returns once its rows are committed

    async def remove(self, session_id: str, start: int = 0) -> None:
        def remove() -> None:
            with self._connection:
                self._delete(session_id, start)

        await self._run(remove)

    def _delete(self, session_id: str, start: int) -> None:
        self._connection.execute(
            "DELETE FROM search_message WHERE session_id = ? AND message_index >= ?",
            (session_id, start),
        )

    async def indexed_from_start(self, session_ids: Sequence[str]) -> set[str]:
        def indexed() -> list[tuple[str]]:
            ids = json.dumps(list(session_ids))
            return self._connection.execute(_SQLITE_INDEXED, (ids,)).fetchall()

        return {session_id for (session_id,) in await self._run(indexed)}

    async def fill(self, session_id: str, owner: str, entries: Sequence[tuple[int, str]]) -> None:
        def fill() -> None:
            with self._connection:  # on this thread, no write comes between the two
                (first,) = self._connection.execute(_SQLITE_FIRST, (session_id,)).fetchone()
                self._connection.executemany(_SQLITE_INSERT, [
                    (owner, session_id, index, text) for index, text in entries
                    if first is None or index < first])

        await self._run(fill)

    async def _search(self, owner: str, words: list[str], limit: int) -> list[Hit]:
        return await self._run(self._find, owner, fts5_query(words), limit)

    def _find(self, owner: str, query: str, limit: int) -> list[Hit]:
        hits: dict[str, Hit] = {}
        cursor = self._connection.execute(_SQLITE_SEARCH, (query, owner))
        try:
            for session_id, index, snippet in cursor:  # read lazily: stop at `limit`
                if session_id not in hits:
                    hits[session_id] = Hit(session_id, index, snippet)
                    if len(hits) == limit:
                        break
        finally:
            cursor.close()
        return list(hits.values())
