"""Conversations in a SQLite file: LangGraph's SQLite saver and store, on one worker thread.

LangGraph's async SQLite classes go through aiosqlite, which hops to its thread and back
for every statement, cursor and commit, and holds a lock across the hops. While the event
loop is busy streaming, each hop waits for a loop turn, so one checkpoint write held the
lock for several turns and, at 32 streaming sessions, a turn's first checkpoint read
queued for about 50 ms behind the others' writes (issue 8). Here each operation runs
whole, as LangGraph's synchronous code, in one hop to a thread of its own; the saver and
the store share that thread, so their two connections never wait on each other's lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.base import BaseStore, Op, Result
from langgraph.store.sqlite import SqliteStore

T = TypeVar("T")

log = logging.getLogger(__name__)


class Worker:
    """One thread that runs the database calls, one at a time, in the order asked."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(call, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class ThreadedSqliteSaver(SqliteSaver):
    """LangGraph's `SqliteSaver`, awaited: each call runs on the worker thread."""

    def __init__(self, conn: sqlite3.Connection, worker: Worker) -> None:
        super().__init__(conn)
        self._worker = worker

    async def aget_tuple(self, config: Any) -> CheckpointTuple | None:
        return await self._worker.run(self.get_tuple, config)

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[CheckpointTuple]:
        found = await self._worker.run(lambda: list(self.list(config, **kwargs)))
        for item in found:
            yield item

    async def aput(
        self,
        config: Any,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Any:
        return await self._worker.run(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: Any, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self._worker.run(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._worker.run(self.delete_thread, thread_id)

    async def aget_delta_channel_history(self, *, config: Any, channels: Sequence[str]) -> Any:
        return await self._worker.run(
            self.get_delta_channel_history, config=config, channels=channels
        )


class ThreadedSqliteStore(SqliteStore):
    """LangGraph's `SqliteStore`, awaited on the worker thread; its transactions BEGIN
    IMMEDIATE, so a write waits for another process's lock (within the busy timeout) rather
    than failing at once with "database is locked" after reading under a plain BEGIN."""

    def __init__(self, conn: sqlite3.Connection, worker: Worker) -> None:
        super().__init__(conn)
        self._worker = worker

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await self._worker.run(self.batch, list(ops))

    @contextmanager
    def _cursor(self, *, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        if not self.is_setup:
            self.setup()
        with self.lock:
            if transaction:
                self.conn.execute("BEGIN IMMEDIATE")
            cursor = self.conn.cursor()
            try:
                yield cursor
            finally:
                if transaction:
                    self.conn.execute("COMMIT")
                cursor.close()


def private_database(path: Path) -> None:
    """Create the database file readable by this user only (0600) before SQLite opens it:
    SQLite gives the -wal and -shm files it makes the main file's mode. Files that an older
    version left readable by others are narrowed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
        try:
            if file.exists() and stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(0o600)
        except OSError as error:
            log.warning("could not make %s readable by this user only: %s", file, error)


@asynccontextmanager
async def open_sqlite(path: Path | str) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    """The saver and the store over one file (":memory:" gives each its own), tables made;
    the file and its -wal and -shm files are this user's only."""
    if str(path) != ":memory:":
        private_database(Path(path))
    worker = Worker()
    # Two connections: the saver commits Python's implicit transactions, the store runs its
    # own BEGIN/COMMIT (autocommit mode). The saver's setup() switches the file to WAL, so a
    # crash never corrupts it; in WAL, synchronous=NORMAL keeps every commit through a
    # crash of the app (not of the machine's power) without an fsync per commit. Only the
    # worker thread uses the connections after this.
    connections = [
        sqlite3.connect(str(path), check_same_thread=False),
        sqlite3.connect(str(path), check_same_thread=False, isolation_level=None),
    ]
    try:
        saver = ThreadedSqliteSaver(connections[0], worker)
        store = ThreadedSqliteStore(connections[1], worker)
        await worker.run(saver.setup)
        await worker.run(store.setup)
        for connection in connections:
            await worker.run(connection.execute, "PRAGMA synchronous=NORMAL")
        yield saver, store
    finally:
        for connection in connections:
            await worker.run(connection.close)
        worker.close()
