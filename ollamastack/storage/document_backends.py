"""Where the document store keeps its passages: LangGraph's SQLite store (sqlite-vec loaded
when the connection can load extensions: Python's sqlite3, else pysqlite3's) or its
PostgreSQL store (pgvector when installed). `Backend.make_index` opens the store with its
vector index once the embedding length is known; None: vectors are ranked in Python."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_vec
from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore, Op, Result
from langgraph.store.sqlite import SqliteStore

from ollamastack.storage.sqlite import Worker, private_database

MMAP_BYTES = 2**30  # of the documents' file read through memory mapping (address space, not RAM)
NOTES = {
    "postgres": "pgvector is not installed in PostgreSQL: document passages are ranked in Python",
    "sqlite": "sqlite-vec could not be loaded into SQLite: document passages are ranked in Python",
    "off": "the vector index is off: document passages are ranked in Python",
}
_PG_HAS_VECTOR = "SELECT 1 AS found FROM pg_available_extensions WHERE name = 'vector'"
_PG_DIMS = ("SELECT atttypmod AS dims FROM pg_attribute "
            "WHERE attrelid = to_regclass('store_vectors') AND attname = 'embedding'")
VECTOR_SETUP_LOCK = 0x6F6C6C616D62  # PostgreSQL advisory lock held while creating the index



log = logging.getLogger(__name__)

MakeIndex = Callable[[int, Embeddings], Awaitable[BaseStore]]


@dataclass(frozen=True)
class Backend:
    """A plain store for entries and passages, and how to open the vector index beside it."""

    store: BaseStore
    mode: str  # where vectors are ranked: "sqlite-vec", "pgvector" or "numpy"
    note: str = ""  # the start-up line on the numpy path
    make_index: MakeIndex | None = None


class Handover(Embeddings):
    """What LangGraph's store gets as its `embed`: the vectors the document store just made
    itself (awaited, off the database thread, typed errors); any other text is embedded here."""

    def __init__(self, embeddings: Embeddings) -> None:
        self.embeddings, self.ready = embeddings, {}

    def _split(self, texts: list[str]) -> tuple[dict, list[str]]:
        found = {text: self.ready.get(text) for text in texts}
        return found, [text for text, vector in found.items() if vector is None]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        found, missing = self._split(texts)
        if missing:
            found.update(zip(missing, self.embeddings.embed_documents(missing), strict=True))
        return [found[text] for text in texts]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        found, missing = self._split(texts)
        if missing:
            made = await self.embeddings.aembed_documents(missing)
            found.update(zip(missing, made, strict=True))
        return [found[text] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    @contextmanager
    def holding(self, texts: list[str], vectors: list[list[float]]) -> Iterator[None]:
        self.ready.update(zip(texts, vectors, strict=True))
        try:
            yield
        finally:
            for text in texts:
                self.ready.pop(text, None)


class ThreadedStore(SqliteStore):
    """LangGraph's `SqliteStore` awaited on the document store's thread (as in sqlite.py);
    its index's `embed` is a `_Handover`, so no request to Ollama waits on that thread."""

    def __init__(self, conn: Any, worker: Worker, index: Any = None) -> None:
        super().__init__(conn, index=index)
        self._worker = worker

    async def abatch(self, ops: Sequence[Op]) -> list[Result]:
        return await self._worker.run(self.batch, list(ops))


def connect(path: str, vectors: bool) -> tuple[Any, bool]:
    """A connection to the file, and whether sqlite-vec loaded into it (Python's sqlite3 when
    it can load extensions, else pysqlite3's; foreign keys on, so vectors go with their rows)."""
    module: Any = sqlite3
    if vectors and not hasattr(sqlite3.Connection, "enable_load_extension"):
        with contextlib.suppress(ImportError):
            import pysqlite3.dbapi2 as module  # type: ignore[no-redef]
    connection = module.connect(path, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA foreign_keys=ON")
    # a search reads every vector of the conversation: mapped, those pages are read in place,
    # not copied in by a system call each (p50 at 10,000 passages: 41 -> 31 ms)
    connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    if not (vectors and hasattr(connection, "enable_load_extension")):
        return connection, False
    try:
        connection.enable_load_extension(True)
        sqlite_vec.load(connection)
        connection.enable_load_extension(False)
    except (OSError, module.Error) as error:
        log.warning("sqlite-vec could not be loaded: %s", error)
        return connection, False
    return connection, True


@asynccontextmanager
async def sqlite_backend(path: Path | str, *, vector_index: bool) -> AsyncIterator[Backend]:
    """The SQLite file's stores, on one thread of their own (as in sqlite.py); the file and
    its -wal and -shm files are this user's only."""
    if str(path) != ":memory:":
        private_database(Path(path))
    worker = Worker()
    connection, loaded = await worker.run(connect, str(path), vector_index)
    try:
        store = ThreadedStore(connection, worker)
        await worker.run(store.setup)

        async def make_index(dims: int, embed: Embeddings) -> BaseStore:
            # "text_fields": what this SqliteStore reads for "fields" (langgraph#8808)
            config = {"dims": dims, "embed": embed, "fields": ["text"], "text_fields": ["text"]}
            index = ThreadedStore(connection, worker, index=config)
            await worker.run(index.setup)
            return index

        if loaded:
            yield Backend(store, "sqlite-vec", make_index=make_index)
        else:
            yield Backend(store, "numpy", NOTES["sqlite" if vector_index else "off"])
    finally:
        await worker.run(connection.close)
        worker.close()


async def postgres_backend(store: BaseStore, *, vector_index: bool) -> Backend:
    """`store`, an `AsyncPostgresStore` over the app's pool (dict rows), and pgvector's index
    when the extension is installed."""
    pool = store.conn  # type: ignore[attr-defined]
    async with pool.connection() as connection:
        found = await (await connection.execute(_PG_HAS_VECTOR)).fetchone()
    if not (found and vector_index):
        return Backend(store, "numpy", NOTES["postgres" if vector_index else "off"])

    async def make_index(dims: int, embed: Embeddings) -> BaseStore:
        from langgraph.store.postgres.aio import AsyncPostgresStore

        async with pool.connection() as connection:
            row = await (await connection.execute(_PG_DIMS)).fetchone()
            if row is not None and row["dims"] != dims:
                raise ValueError(f"store_vectors holds vectors of {row['dims']}, not {dims}")
            index = AsyncPostgresStore(pool, index={  # exact ranking of one conversation
                "dims": dims, "embed": embed, "fields": ["text"],
                "distance_type": "cosine", "ann_index_config": {"kind": "flat"}})
            # replicas one at a time (no CREATE INDEX CONCURRENTLY here to wait on us)
            await connection.execute("SELECT pg_advisory_lock(%s)", (VECTOR_SETUP_LOCK,))
            try:
                await index.setup()
            finally:
                await connection.execute("SELECT pg_advisory_unlock(%s)", (VECTOR_SETUP_LOCK,))
        return index

    return Backend(store, "pgvector", make_index=make_index)
