"""Usage records: one row per turn and per tool call, in the app's database (SQLite or
PostgreSQL), so the figures survive restarts and cover every replica. Never message text.

Rows in two small tables rather than items of the LangGraph store: the usage page groups by
day, model, user and tool, which SQL does in the database (`GROUP BY` on an indexed `day`)
where store items would all have to be read into Python first. Only the first-token times of
the range are read, for their percentiles (SQLite has no percentile function).

The log opens its own connection, on first use, in the loop that uses it (the server's).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ollamastack.bus import EventBus
from ollamastack.errors import InvalidInput
from ollamastack.lifecycle import ToolCalled, TurnCompleted, TurnFailed
from ollamastack.settings import Settings

MAX_DAYS = 366
LINGER = 0.05  # seconds the SQLite writer waits after a row for more to write with it
SETUP_LOCK = 0x6F6C6C7573  # PostgreSQL advisory lock held while creating the tables
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ollamastack_turns (time DOUBLE PRECISION NOT NULL, "
    "day TEXT NOT NULL, user_name TEXT NOT NULL, model TEXT NOT NULL, outcome TEXT NOT NULL, "
    "kind TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
    "first_token DOUBLE PRECISION, seconds DOUBLE PRECISION NOT NULL, tools INTEGER NOT NULL, "
    "cached INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ollamastack_turns_day ON ollamastack_turns (day)",
    "CREATE TABLE IF NOT EXISTS ollamastack_tool_calls (time DOUBLE PRECISION NOT NULL, "
    "day TEXT NOT NULL, user_name TEXT NOT NULL, model TEXT NOT NULL, tool TEXT NOT NULL, "
    "outcome TEXT NOT NULL, seconds DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ollamastack_tool_calls_day ON ollamastack_tool_calls (day)",
)
INSERT_TURN = "INSERT INTO ollamastack_turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_TOOL = "INSERT INTO ollamastack_tool_calls VALUES (?, ?, ?, ?, ?, ?, ?)"
PER_DAY = (
    "SELECT day, model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
    "SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END), SUM(cached) FROM ollamastack_turns "
    "WHERE day >= ? GROUP BY day, model ORDER BY day, model"
)
FIRST_TOKENS = (
    "SELECT day, first_token FROM ollamastack_turns WHERE day >= ? AND first_token IS NOT NULL "
    "AND cached = 0"
)
TOOLS = (
    "SELECT tool, COUNT(*), SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END) "
    "FROM ollamastack_tool_calls WHERE day >= ? GROUP BY tool ORDER BY COUNT(*) DESC, tool"
)
USERS = (
    "SELECT user_name, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
    "SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END), MAX(time) FROM ollamastack_turns "
    "WHERE day >= ? GROUP BY user_name ORDER BY COUNT(*) DESC, user_name"
)


def day_of(when: float) -> str:
    """
    >>> day_of(0.0), day_of(86_399.9)
    ('1970-01-01', '1970-01-01')
    """
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d")


def valid_days(days: object) -> int:
    """
    >>> valid_days(7), valid_days(7.0)
    (7, 7)
    >>> valid_days(0)
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: days must be a whole number from 1 to 366
    """
    if isinstance(days, bool) or not isinstance(days, int | float) or days != int(days) \
            or not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be a whole number from 1 to {MAX_DAYS}")
    return int(days)


def counted(event: object) -> bool:
    """What usage records: turns' ends and tool calls."""
    return isinstance(event, TurnCompleted | TurnFailed | ToolCalled)


def row_of(event: object) -> tuple[str, tuple] | None:
    """The INSERT of a usage row for `event`, if it counts."""
    if isinstance(event, TurnCompleted | TurnFailed):
        completed = isinstance(event, TurnCompleted)
        return INSERT_TURN, (
            event.time, day_of(event.time), event.user, event.model,
            "ok" if completed else event.outcome, "" if completed else event.kind,
            event.prompt_tokens if completed else 0,
            event.completion_tokens if completed else 0,
            event.time_to_first_token if completed else None, event.seconds,
            len(event.tools), int(completed and event.cached),
        )
    if isinstance(event, ToolCalled):
        return INSERT_TOOL, (event.time, day_of(event.time), event.user, event.model,
                             event.tool, event.outcome, event.seconds)
    return None


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted `values`.

    >>> percentile([1, 2, 3, 4], 0.5), percentile([1, 2, 3, 4], 0.95)
    (2, 4)
    """
    return values[max(0, math.ceil(share * len(values)) - 1)]


class UsageLog:
    """Writes records (`record`, a bus subscriber) and sums them up (`summary`)."""

    def __init__(self, settings: Settings, *, clock: Any = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._opening: asyncio.Task | None = None
        self._pool: Any = None  # PostgreSQL
        self._sqlite: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None  # `write`'s, on the bus's thread
        self._writing = threading.Lock()

    def subscribe(self, bus: EventBus) -> None:
        """Record what counts on `bus`: on SQLite by a thread of the bus's own, which writes
        the rows of `LINGER` s in one transaction (no hop through the loop and an executor
        for each row), on PostgreSQL by the loop, through the pool."""
        if self.settings.on_postgres:
            bus.subscribe(self.record, name="usage", accepts=counted)
        else:
            bus.subscribe(self.write, name="usage", accepts=counted, thread=True, batch=True,
                          linger=LINGER)

    async def record(self, event: Any) -> None:
        """Store one lifecycle event that counts: a turn's end, a tool call."""
        if not self.settings.on_postgres:
            await asyncio.to_thread(self.write, [event])  # SQLite's one writing path
        elif (statement := row_of(event)) is not None:
            await self._execute(*statement)

    def write(self, events: list) -> None:
        """`record` for SQLite, from a thread, over a connection of its own: the rows of
        `events` in one transaction."""
        rows = [row for row in map(row_of, events) if row is not None]
        with self._writing:
            if self._writer is None:
                self._writer = self._connect()
            with self._writer:
                for statement, values in rows:
                    self._writer.execute(statement, values)

    async def summary(self, days: object = 7) -> dict[str, Any]:
        """The last `days` days (today included, UTC): turns and tokens per day and model,
        first-token p50/p95 per day, the error rate per day, tool calls per tool, per user."""
        days = valid_days(days)
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        since = (today - timedelta(days=days - 1)).isoformat()
        per_day = await self._query(PER_DAY, since)
        first = await self._query(FIRST_TOKENS, since)
        tools = await self._query(TOOLS, since)
        users = await self._query(USERS, since)
        times: dict[str, list[float]] = defaultdict(list)
        for day, seconds in first:
            times[day].append(float(seconds))
        turns_of: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for day, _, turns, _, _, errors, _ in per_day:
            turns_of[day][0] += int(turns)
            turns_of[day][1] += int(errors)
        return {
            "days": days, "from": since, "to": today.isoformat(),
            "per_day": [
                {"day": d, "model": m, "turns": int(t), "prompt_tokens": int(p or 0),
                 "completion_tokens": int(c or 0), "errors": int(e or 0), "cached": int(k or 0)}
                for d, m, t, p, c, e, k in per_day
            ],
            "first_token": [
                {"day": day, "p50": round(percentile(sorted(v), 0.5), 4),
                 "p95": round(percentile(sorted(v), 0.95), 4), "turns": len(v)}
                for day, v in sorted(times.items())
            ],
            "error_rate": [{"day": day, "rate": round(errors / turns, 4) if turns else 0.0}
                           for day, (turns, errors) in sorted(turns_of.items())],
            "tools": [{"tool": t, "calls": int(n), "errors": int(e or 0)} for t, n, e in tools],
            "users": [
                {"user": u, "turns": int(t), "prompt_tokens": int(p or 0),
                 "completion_tokens": int(c or 0), "errors": int(e or 0),
                 "last_turn": datetime.fromtimestamp(float(last), UTC).isoformat(
                     timespec="seconds").replace("+00:00", "Z")}
                for u, t, p, c, e, last in users
            ],
        }

    # -- the database -------------------------------------------------------------------

    async def _ready(self) -> None:
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        try:
            await asyncio.shield(self._opening)
        except Exception:
            self._opening = None  # the database is down: try again next time
            raise

    async def _open(self) -> None:
        if self.settings.on_postgres:
            from psycopg_pool import AsyncConnectionPool

            pool = AsyncConnectionPool(self.settings.database_url, min_size=1, max_size=2,
                                       kwargs={"autocommit": True}, open=False)
            await pool.open()
            async with pool.connection() as connection, connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
                for statement in SCHEMA:
                    await connection.execute(statement)
            self._pool = pool
            return
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage")
        self._sqlite = await self._in_thread(self._connect)

    def _connect(self) -> sqlite3.Connection:
        path = self.settings.sqlite_path
        if str(path) != ":memory:":
            from ollamastack.storage.sqlite import private_database

            private_database(Path(str(path)))  # this user's only, as the conversations
        connection = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        connection.execute("PRAGMA journal_mode=WAL")  # as the conversations (sqlite.py)
        connection.execute("PRAGMA synchronous=NORMAL")
        with connection:
            for statement in SCHEMA:
                connection.execute(statement)
        return connection

    async def _in_thread(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)

    async def _execute(self, statement: str, row: tuple) -> None:
        """One row on PostgreSQL, through the pool."""
        await self._ready()
        async with self._pool.connection() as connection:
            await connection.execute(statement.replace("?", "%s"), row)

    async def _query(self, statement: str, since: str) -> list[tuple]:
        await self._ready()
        if self._pool is not None:
            async with self._pool.connection() as connection:
                cursor = await connection.execute(statement.replace("?", "%s"), (since,))
                return [tuple(row) for row in await cursor.fetchall()]
        assert self._sqlite is not None
        return await self._in_thread(
            lambda: self._sqlite.execute(statement, (since,)).fetchall())  # type: ignore[union-attr]

    async def aclose(self) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
            await asyncio.gather(self._opening, return_exceptions=True)
        self._opening = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._sqlite is not None:
            await self._in_thread(self._sqlite.close)
            self._sqlite = None
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        with self._writing:  # after the bus has closed: nothing more to write
            if self._writer is not None:
                self._writer.close()
                self._writer = None
