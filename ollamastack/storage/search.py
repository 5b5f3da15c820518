"""Full-text search over each user's conversations: FTS5 in the SQLite file, tsvector with a
GIN index on PostgreSQL.

One row per stored user or model message with text (tool calls and results are not
searched), keyed by session and the message's index in the stored conversation, so a hit
opens the conversation at that message. The chat service keeps the rows in step: a turn's
messages are (re)indexed once it is stored, and undo and delete remove theirs. Queries are
plain words, never the engines' query syntax: each word is quoted, the last one also matches
as a prefix (search as you type), so `"foo AND (` searches for foo and and.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ollamastack.errors import InvalidInput
from ollamastack.validation import clean_text

QUERY_CHARS = 200  # the longest query accepted
QUERY_WORDS = 16  # words past these are ignored
RESULTS = 20  # conversations a search returns at most
SNIPPET_WORDS = 16  # about how many words of the message a snippet shows
_WORD = re.compile(r"[^\W_]+")  # letters and digits: what both engines' tokenizers keep


@dataclass(frozen=True)
class Hit:
    """The newest message of one conversation that matched."""

    session_id: str
    message_index: int
    snippet: str  # plain text around the matched words


@dataclass(frozen=True)
class Found:
    """A search result as the service returns it: the hit and its conversation's title."""

    session_id: str
    title: str
    snippet: str
    message_index: int


def query_words(query: object) -> list[str]:
    """The words searched for; `InvalidInput` for an empty, over-long or control-character
    query. Operators and punctuation are not words.

    >>> query_words('  "foo AND (bar* ')
    ['foo', 'AND', 'bar']
    >>> query_words("((")
    []
    >>> query_words("a\\tb")
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The search may not contain line breaks or control characters.
    """
    text = clean_text(query, what="search", limit=QUERY_CHARS)
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise InvalidInput("The search may not contain line breaks or control characters.")
    return _WORD.findall(text)[:QUERY_WORDS]


def searchable(messages: Sequence[Any], start: int = 0) -> list[tuple[int, str]]:
    """(index, text) of the user's and the model's messages from `start` on that have text."""
    return [
        (index, message.text)
        for index, message in enumerate(messages[start:], start)
        if message.type in ("human", "ai") and message.text.strip()
    ]


class SearchIndex(ABC):
    """The rows of one database; `add` and `remove` keep them in step, `search` reads."""

    @abstractmethod
    async def setup(self) -> None:
        """Create the tables and indexes when missing."""

    @abstractmethod
    async def add(
        self, session_id: str, owner: str, start: int, entries: Sequence[tuple[int, str]]
    ) -> None:
        """Index `entries` ((index, text), from `searchable`) as the messages of
        `session_id` from `start` on, replacing what was indexed there (a turn stored again)."""

    @abstractmethod
    async def remove(self, session_id: str, start: int = 0) -> None:
        """Forget the messages of `session_id` from `start` on (undo; all: delete)."""

    async def search(self, owner: str, query: object, limit: int = RESULTS) -> list[Hit]:
        """`owner`'s conversations with every word of `query` (the last as a prefix),
        newest match first, one hit each."""
        words = query_words(query)
        return await self._search(owner, words, limit) if words else []

    @abstractmethod
    async def _search(self, owner: str, words: list[str], limit: int) -> list[Hit]:
        """The hits of `words` (already split and checked)."""


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
                "INSERT INTO search_message (owner, session_id, message_index, text)"
                " VALUES (?, ?, ?, ?)",
                [(owner, session_id, index, text) for index, text in entries],
            )

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


def tsquery(words: list[str]) -> str:
    """A `to_tsquery` text: every word quoted, all required, the last one a prefix.

    >>> tsquery(["foo", "AND"])
    "'foo' & 'AND':*"
    """
    return " & ".join(f"'{word}'" for word in words) + ":*"


_POSTGRES_TABLES = [
    """CREATE TABLE IF NOT EXISTS search_message (
        id bigserial PRIMARY KEY, owner text NOT NULL, session_id text NOT NULL,
        message_index integer NOT NULL, text text NOT NULL,
        words tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED)""",
    "CREATE INDEX IF NOT EXISTS search_message_words ON search_message USING gin (words)",
    """CREATE INDEX IF NOT EXISTS search_message_session
        ON search_message (session_id, message_index)""",
]
# The owner's matches, newest first, a batch at a time: for a common word the planner walks
# the primary key backwards and stops early, for a rare one it takes the GIN index. (One
# query with DISTINCT ON per conversation read every match: 75 ms for a word in 36,000.)
_POSTGRES_MATCHES = """
SELECT id, session_id, message_index FROM search_message
WHERE owner = %(owner)s AND words @@ to_tsquery('simple', %(q)s) AND id < %(before)s
ORDER BY id DESC LIMIT %(batch)s
"""
_POSTGRES_SNIPPETS = f"""
SELECT id, ts_headline('simple', text, to_tsquery('simple', %(q)s),
    'StartSel="", StopSel="", MaxWords={SNIPPET_WORDS}, MinWords={SNIPPET_WORDS // 2}') AS snippet
FROM search_message WHERE id = ANY(%(ids)s)
"""
MATCH_BATCH = 200
# One statement, so one round trip and atomic: the rows from `start` on, replaced.
_POSTGRES_ADD = """
WITH gone AS (
    DELETE FROM search_message WHERE session_id = %(session)s AND message_index >= %(start)s)
INSERT INTO search_message (owner, session_id, message_index, text)
SELECT %(owner)s, %(session)s, message.index, message.text
FROM unnest(%(indexes)s::integer[], %(texts)s::text[]) AS message (index, text)
"""


class PostgresSearchIndex(SearchIndex):
    """A table with a generated tsvector column under a GIN index, over the app's pool."""

    def __init__(self, pool: Any) -> None:  # psycopg_pool.AsyncConnectionPool, dict rows
        self._pool = pool

    async def setup(self) -> None:
        async with self._pool.connection() as connection:
            for statement in _POSTGRES_TABLES:
                await connection.execute(statement)

    async def add(
        self, session_id: str, owner: str, start: int, entries: Sequence[tuple[int, str]]
    ) -> None:
        values = {"owner": owner, "session": session_id, "start": start,
                  "indexes": [index for index, _ in entries],
                  "texts": [text for _, text in entries]}
        async with self._pool.connection() as connection:
            await connection.execute(_POSTGRES_ADD, values)

    async def remove(self, session_id: str, start: int = 0) -> None:
        async with self._pool.connection() as connection:
            await self._delete(connection, session_id, start)

    @staticmethod
    async def _delete(connection: Any, session_id: str, start: int) -> None:
        await connection.execute(
            "DELETE FROM search_message WHERE session_id = %s AND message_index >= %s",
            (session_id, start),
        )

    async def _search(self, owner: str, words: list[str], limit: int) -> list[Hit]:
        values: dict[str, Any] = {"q": tsquery(words), "owner": owner,
                                  "before": 2**63 - 1, "batch": MATCH_BATCH}
        newest: dict[str, dict] = {}  # the newest match of each conversation, newest first
        async with self._pool.connection() as connection:
            while len(newest) < limit:
                # not prepared: a plan for these very words (one cached for any words would
                # walk the whole table backwards for a word that is nowhere)
                matches = await connection.execute(_POSTGRES_MATCHES, values, prepare=False)
                rows = await matches.fetchall()
                for row in rows:
                    newest.setdefault(row["session_id"], row)
                if len(rows) < MATCH_BATCH:
                    break
                values["before"] = rows[-1]["id"]
            chosen = list(newest.values())[:limit]
            values["ids"] = [row["id"] for row in chosen]
            snippets = await (await connection.execute(_POSTGRES_SNIPPETS, values)).fetchall()
        text = {row["id"]: row["snippet"] for row in snippets}
        return [Hit(r["session_id"], r["message_index"], text[r["id"]]) for r in chosen]
