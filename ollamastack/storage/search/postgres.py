"""Search on PostgreSQL: a generated tsvector column under a GIN index, written behind turns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from ollamastack.storage.search.base import SNIPPET_WORDS, Hit, SearchIndex

BACKFILL_LOCK = 0x736561726368  # PostgreSQL advisory lock of the replica that backfills

log = logging.getLogger(__name__)


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
# Queued writes of any number of conversations, one statement (one round trip, one commit):
# each conversation's rows from its first changed message on, replaced.
_POSTGRES_WRITE = """
WITH gone AS (
    DELETE FROM search_message AS m
    USING unnest(%(sessions)s::text[], %(starts)s::integer[]) AS cut (session_id, start)
    WHERE m.session_id = cut.session_id AND m.message_index >= cut.start)
INSERT INTO search_message (owner, session_id, message_index, text)
SELECT * FROM unnest(%(owners)s::text[], %(row_sessions)s::text[], %(indexes)s::integer[],
                     %(texts)s::text[])
"""
_POSTGRES_INDEXED = """
SELECT id FROM unnest(%s::text[]) AS asked (id)
WHERE EXISTS (
    SELECT 1 FROM search_message WHERE session_id = asked.id AND message_index = 0)
"""
_POSTGRES_FILL = """
INSERT INTO search_message (owner, session_id, message_index, text)
SELECT %(owner)s, %(session)s, message.index, message.text
FROM unnest(%(indexes)s::integer[], %(texts)s::text[]) AS message (index, text)
WHERE message.index < coalesce(
    (SELECT min(message_index) FROM search_message WHERE session_id = %(session)s), 2147483647)
"""


@dataclass
class Queued:
    """What the queued writes of one conversation add up to: its rows from `start` on.

    >>> queued = Queued("ann", 0, {0: "hi", 1: "hello"})
    >>> queued.then(1, [(1, "hey"), (2, "and you?")])  # the turn resumed: indexed again
    >>> queued
    Queued(owner='ann', start=0, rows={0: 'hi', 1: 'hey', 2: 'and you?'})
    """

    owner: str
    start: int
    rows: dict[int, str] = field(default_factory=dict)

    def then(self, start: int, entries: Sequence[tuple[int, str]]) -> None:
        self.start = min(self.start, start)
        self.rows = {i: text for i, text in self.rows.items() if i < start} | dict(entries)


def write_values(queued: dict[str, Queued]) -> dict[str, list]:
    """The parameters of `_POSTGRES_WRITE`: where each conversation is cut, and the rows.

    >>> write_values({"s1": Queued("ann", 2, {3: "b", 2: "a"}), "s2": Queued("", 0)})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'sessions': ['s1', 's2'], 'starts': [2, 0], 'owners': ['ann', 'ann'],
     'row_sessions': ['s1', 's1'], 'indexes': [2, 3], 'texts': ['a', 'b']}
    """
    rows = [(q.owner, session_id, index, text)
            for session_id, q in queued.items() for index, text in sorted(q.rows.items())]
    columns = [list(column) for column in zip(*rows, strict=True)] or [[], [], [], []]
    return {"sessions": list(queued), "starts": [q.start for q in queued.values()],
            **dict(zip(("owners", "row_sessions", "indexes", "texts"), columns, strict=True))}


class PostgresSearchIndex(SearchIndex):
    """A table with a generated tsvector column under a GIN index, over the app's pool.

    A turn's `add` is queued and written behind it, so the turn does not wait for the
    round trip: one task writes what is queued, all of it in one statement. `search` and
    `remove` wait for the queue first, so this process always finds what its turns stored
    (another replica, a millisecond later); `flush` at shutdown writes what is left.
    """

    def __init__(self, pool: Any) -> None:  # psycopg_pool.AsyncConnectionPool, dict rows
        self._pool = pool
        self._queued: dict[str, Queued] = {}  # the next batch, by conversation
        self._queued_done: asyncio.Future[None] | None = None  # set once it is written
        self._in_flight: asyncio.Future[None] | None = None  # the batch being written
        self._writer: asyncio.Task[None] | None = None

    async def setup(self) -> None:
        async with self._pool.connection() as connection:
            for statement in _POSTGRES_TABLES:
                await connection.execute(statement)

    async def add(
        self, session_id: str, owner: str, start: int, entries: Sequence[tuple[int, str]]
    ) -> None:
        if self._queued_done is None:
            self._queued_done = asyncio.get_running_loop().create_future()
        self._queued.setdefault(session_id, Queued(owner, start)).then(start, entries)
        self._start_writer()

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())

    async def _write_queued(self) -> None:
        while self._queued_done is not None:
            batch, self._in_flight = self._queued, self._queued_done
            self._queued, self._queued_done = {}, None
            try:
                await self._write(batch)
            except Exception:  # as a turn's own write would be: logged, search is secondary
                log.exception("could not index %d conversations for search", len(batch))
            finally:
                self._in_flight.set_result(None)

    async def _write(self, batch: dict[str, Queued]) -> None:
        async with self._pool.connection() as connection:
            await connection.execute(_POSTGRES_WRITE, write_values(batch))

    async def flush(self) -> None:
        """Wait for the writes queued so far (not for those queued while waiting: under a
        steady stream of turns the queue is never empty)."""
        waiting = self._queued_done or self._in_flight
        if waiting is not None and not waiting.done():
            self._start_writer()  # one cancelled with the loop's tasks left these behind
            await asyncio.shield(waiting)

    async def remove(self, session_id: str, start: int = 0) -> None:
        await self.flush()
        async with self._pool.connection() as connection:
            await connection.execute(
                "DELETE FROM search_message WHERE session_id = %s AND message_index >= %s",
                (session_id, start),
            )

    async def indexed_from_start(self, session_ids: Sequence[str]) -> set[str]:
        async with self._pool.connection() as connection:
            rows = await (await connection.execute(_POSTGRES_INDEXED, (list(session_ids),))
                          ).fetchall()
        return {row["id"] for row in rows}

    async def fill(self, session_id: str, owner: str, entries: Sequence[tuple[int, str]]) -> None:
        values = {"owner": owner, "session": session_id,
                  "indexes": [index for index, _ in entries], "texts": [t for _, t in entries]}
        async with self._pool.connection() as connection:
            await connection.execute(_POSTGRES_FILL, values)

    @asynccontextmanager
    async def backfill_lock(self) -> AsyncIterator[bool]:
        """One replica at a time, under a transaction's advisory lock: released by the
        transaction's end, or by the server when this process dies."""
        async with self._pool.connection() as connection, connection.transaction():
            cursor = await connection.execute(
                "SELECT pg_try_advisory_xact_lock(%s) AS got", (BACKFILL_LOCK,))
            yield (await cursor.fetchone())["got"]

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
