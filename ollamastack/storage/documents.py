"""A conversation's documents and images, in LangGraph's store in the conversation's database.

Per owner and session, namespaces under ("attachments", <owner>, <session>): "file" holds one
entry per file; ("chunk", <file>) a document's passages, keys "000000"...; ("image", <file>)
an image's bytes. An entry is written last and removed first: a listed file is whole.

Vectors: passages are embedded as they are stored, in a thread (a reply is ~16 KB of JSON per
passage, decoded and checked holding the GIL: `embed_batch` passages a request bound each such
pause of the event loop to a few ms), then handed to the store; no request starts while
another conversation answers, nor is its reply read (`pace`, the chat service's:
`ollamastack/pace.py`). What was stored
fills the ranking cache (`passages.py`), so the document's first search reads nothing back.
With sqlite-vec loaded (SQLite) or pgvector (PostgreSQL) LangGraph's store indexes them
(`index` config) and ranks them in the database; otherwise each keeps its vector in its value
and a conversation's are ranked with numpy (cached per file: files never change). The first
time vectors are needed, one text is embedded to learn their length. Each file records its
embedder (model/length/where): a conversation holding a file embedded otherwise (another
`embed_model`), or not at all, is ranked by BM25 (`keyword_rank.py`), as are all when no
embedding model is available.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore, PutOp

from ollamastack.errors import InvalidInput, OllamaStackError
from ollamastack.pace import Pace
from ollamastack.storage.document_backends import (
    Backend,
    Handover,
    postgres_backend,
    sqlite_backend,
)
from ollamastack.storage.passages import CACHE_BYTES, Passage, Passages, loaded, unit_rows
from ollamastack.validation import session_id as valid_session_id

EMBED_BATCH = 16  # passages per embed request: ~250 KB of JSON decoded at once
WRITE_BATCH = 64  # passages per write
MOST = 100_000  # files, passages or namespaces read at once
IMAGE_TOKENS = 768  # what Ollama counts an image as in the context (server/prompt.go)
PROBE = "How long is a vector?"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredFile:
    id: str
    name: str
    kind: str  # "image" | "document"
    mime: str
    size: int  # bytes as uploaded
    pages: int  # a document's last page (0: none, or an image)
    tokens: int  # about how much of the context it fills whole
    created_at: float
    width: int = 0  # an image's pixels
    height: int = 0

    @classmethod
    def of(cls, key: str, value: dict) -> StoredFile:
        return cls(key, value["name"], value["kind"], value["mime"], value["size"],
                   value["pages"], value["tokens"], value["created_at"],
                   value.get("width", 0), value.get("height", 0))


def session_space(owner: str, session_id: str) -> tuple[str, ...]:
    """The namespace of a conversation's files (owners as the session index names them).

    >>> session_space("john.doe", "1b4e28ba-2fa1-41d2-883f-0016d3cca427")[:2]
    ('attachments', 'user-6a6f686e2e646f65')
    """
    label = f"user-{owner.encode().hex()}" if owner else "anonymous"
    return ("attachments", label, valid_session_id(session_id))


def _key(index: int) -> str:
    return f"{index:06d}"


def _pack(row: np.ndarray) -> str:
    return base64.b64encode(row.astype("<f4").tobytes()).decode()


class DocumentStore:
    """The files of each conversation; every call names the owner, so another user's
    conversation is never seen. `mode`: where vectors are ranked ("sqlite-vec", "pgvector",
    "numpy"); `note`: the line to log at start-up on the numpy path."""

    def __init__(
        self,
        store: BaseStore,
        embeddings: Embeddings | None = None,
        *,
        mode: str = "numpy",
        note: str = "",
        make_index: Callable[[int, Embeddings], Awaitable[BaseStore]] | None = None,
        embed_batch: int = EMBED_BATCH,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self._store, self.embeddings = store, embeddings
        self.mode, self.note = mode, note
        self._make_index, self._index = make_index, None
        self._handover = Handover(embeddings) if embeddings is not None else None
        self._tag: str | None = None
        self._probing = asyncio.Lock()
        self._batch = embed_batch
        self._passages = Passages(store, cache_bytes)
        self.pace = Pace()  # the chat service's: embedding gives way to other chats' turns

    @classmethod
    @asynccontextmanager
    async def open_sqlite(
        cls, path: Path | str, embeddings: Embeddings | None = None, *,
        vector_index: bool = True, **options: Any,
    ) -> AsyncIterator[DocumentStore]:
        """The store over the SQLite file (":memory:": a database of its own)."""
        async with sqlite_backend(path, vector_index=vector_index) as backend:
            yield cls.over(backend, embeddings, **options)

    @classmethod
    async def on_postgres(
        cls, store: BaseStore, embeddings: Embeddings | None = None, *,
        vector_index: bool = True, **options: Any,
    ) -> DocumentStore:
        """The store beside `store`, an `AsyncPostgresStore` over the app's pool (dict rows)."""
        return cls.over(await postgres_backend(store, vector_index=vector_index), embeddings,
                        **options)

    @classmethod
    def over(cls, backend: Backend, embeddings: Embeddings | None, **options: Any
             ) -> DocumentStore:
        note = backend.note if embeddings is not None else ""
        return cls(backend.store, embeddings, mode=backend.mode, note=note,
                   make_index=backend.make_index, **options)

    # -- writing -------------------------------------------------------------------------

    async def add_document(
        self, owner: str, session_id: str, name: str, mime: str, size: int,
        chunks: Sequence[tuple[int | None, str]], *, embed: bool,
    ) -> StoredFile:
        """Keep a document's passages (blank ones dropped), embedded when `embed` and an
        embedding model is set. All or nothing: on any failure what was written is removed."""
        base = session_space(owner, session_id)
        chunks = [(page, text) for page, text in chunks if text.strip()]
        file_id = uuid.uuid4().hex
        tag = await self._vector_tag() if embed and self.embeddings is not None else ""
        space = (*base, "chunk", file_id)
        pages = [page for page, _ in chunks if page is not None]
        entry = {"name": name, "kind": "document", "mime": mime, "size": size,
                 "pages": max(pages, default=0), "created_at": time.time(),
                 "tokens": -(-sum(len(text) for _, text in chunks) // 4),  # as LangChain counts
                 "chunks": len(chunks), "vectors": tag}
        try:
            rows = [await self._put_chunks(space, file_id, name, start,
                                           chunks[start:start + WRITE_BATCH], tag)
                    for start in range(0, len(chunks), WRITE_BATCH)]
            matrix = None  # as `Passages.load` would read them back: vectors in the rows only
            if tag.endswith("/value") and rows:
                matrix = await asyncio.to_thread(np.concatenate, rows)
            self._passages.keep(file_id, loaded([page for page, _ in chunks],
                                                [text for _, text in chunks], matrix))
            await self._store.aput((*base, "file"), file_id, entry, index=False)
        except BaseException:
            self._passages.forget(file_id)
            await self._forget(space, [_key(i) for i in range(len(chunks))])
            raise
        return StoredFile.of(file_id, entry)

    async def _put_chunks(self, space: tuple[str, ...], file_id: str, name: str, start: int,
                          chunks: list[tuple[int | None, str]], tag: str) -> np.ndarray | None:
        """Write passages (embedded when `tag`); their unit vectors, when embedded."""
        values = [{"file_id": file_id, "file": name, "page": page, "text": text}
                  for page, text in chunks]
        texts = [text for _, text in chunks]
        if not tag:
            await self._store.abatch(
                [PutOp(space, _key(start + i), v, index=False) for i, v in enumerate(values)])
            return None
        indexed = tag.endswith("/index") and self._index is not None  # the store indexes "text"
        vectors, units, packed = await asyncio.to_thread(self._embed, texts, not indexed)
        await asyncio.to_thread(self.pace.wait)  # writing them, too, gives way
        if indexed:
            with self._handover.holding(texts, vectors):
                await self._index.abatch(
                    [PutOp(space, _key(start + i), v) for i, v in enumerate(values)])
            return units
        for value, vector in zip(values, packed, strict=True):
            value["vector"] = vector
        await self._store.abatch(
            [PutOp(space, _key(start + i), v, index=False) for i, v in enumerate(values)])
        return units

    def _embed(self, texts: list[str], pack: bool
               ) -> tuple[list[list[float]], np.ndarray, list[str]]:
        """In a thread: the texts' vectors, `embed_batch` a request; as lists (for the store's
        index), unit rows (for ranking) and, with `pack`, packed (for the rows' values)."""
        vectors: list[list[float]] = []
        with self.pace.running():  # the embedder's client gives way before reading a reply
            for start in range(0, len(texts), self._batch):
                self.pace.wait()
                vectors += self.embeddings.embed_documents(texts[start:start + self._batch])
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
        return vectors, unit_rows(matrix), [_pack(row) for row in matrix] if pack else []

    async def add_image(self, owner: str, session_id: str, name: str, mime: str, data: bytes,
                        width: int, height: int) -> StoredFile:
        base, file_id = session_space(owner, session_id), uuid.uuid4().hex
        entry = {"name": name, "kind": "image", "mime": mime, "size": len(data), "pages": 0,
                 "tokens": IMAGE_TOKENS, "created_at": time.time(), "width": width,
                 "height": height, "chunks": 0, "vectors": ""}
        space = (*base, "image", file_id)
        try:
            await self._store.aput(space, "data", {"data": base64.b64encode(data).decode()},
                                   index=False)
            await self._store.aput((*base, "file"), file_id, entry, index=False)
        except BaseException:
            await self._forget(space, ["data"])
            raise
        return StoredFile.of(file_id, entry)

    async def _forget(self, space: tuple[str, ...], keys: list[str]) -> None:
        """Undo a write that failed half-way; a failure here leaves rows no entry lists."""
        try:
            await self._delete({space: keys})
        except Exception:
            log.exception("could not remove the passages of a refused file in %s", space)

    async def remove(self, owner: str, session_id: str, file_ids: Sequence[str]) -> None:
        """Remove these files (ids not found are ignored)."""
        base = session_space(owner, session_id)
        entries = await self._entries(base)
        gone = [file_id for file_id in file_ids if file_id in entries]
        await self._delete({(*base, "file"): gone})
        await self._delete(dict(self._content(base, file_id, entries[file_id]) for file_id in gone))
        for file_id in gone:
            self._passages.forget(file_id)

    async def delete_session(self, owner: str, session_id: str) -> None:
        """Everything of the conversation, including what a crash left half-written."""
        base = session_space(owner, session_id)
        entries = await self._entries(base)
        await self._delete({(*base, "file"): list(entries)})
        doomed = dict(self._content(base, file_id, entry) for file_id, entry in entries.items())
        for space in await self._store.alist_namespaces(prefix=base, limit=MOST):
            if space not in doomed and space[len(base)] != "file":  # unlisted: read its keys
                doomed[space] = [i.key for i in await self._store.asearch(space, limit=MOST)]
        await self._delete(doomed)
        for file_id in entries:
            self._passages.forget(file_id)

    @staticmethod
    def _content(base: tuple[str, ...], file_id: str, entry: dict) -> tuple[tuple, list[str]]:
        if entry["kind"] == "image":
            return (*base, "image", file_id), ["data"]
        return (*base, "chunk", file_id), [_key(i) for i in range(entry["chunks"])]

    async def _delete(self, keys: dict[tuple[str, ...], list[str]]) -> None:
        ops = [PutOp(space, key, None) for space, names in keys.items() for key in names]
        for start in range(0, len(ops), 5000):
            await self._store.abatch(ops[start:start + 5000])

    # -- reading -------------------------------------------------------------------------

    async def files(self, owner: str, session_id: str) -> list[StoredFile]:
        """The conversation's files, oldest first."""
        entries = await self._entries(session_space(owner, session_id))
        return [StoredFile.of(key, value) for key, value in entries.items()]

    async def image(self, owner: str, session_id: str, file_id: str) -> bytes:
        base = session_space(owner, session_id)
        await self._entry(base, file_id, "image")
        item = await self._store.aget((*base, "image", file_id), "data")
        if item is None:
            raise _not_found(file_id)
        return base64.b64decode(item.value["data"])

    async def text(self, owner: str, session_id: str, file_id: str) -> list[tuple[int | None, str]]:
        """A document's passages in order (a small one goes into the context whole)."""
        base = session_space(owner, session_id)
        entry = await self._entry(base, file_id, "document")
        loaded = await self._passages.load(base, file_id, entry)
        return list(zip(loaded.pages, loaded.texts, strict=True))

    async def search(self, owner: str, session_id: str, query: str, *, k: int = 6,
                     embed: bool) -> list[Passage]:
        """The `k` passages of the conversation's documents nearest `query`: by vectors when
        `embed` and every document has them from the current model, else by BM25."""
        base = session_space(owner, session_id)
        docs = {key: value for key, value in (await self._entries(base)).items()
                if value["kind"] == "document" and value["chunks"]}
        if not docs or not query.strip() or k < 1:
            return []
        if embed and self.embeddings is not None:
            try:
                tag = await self._vector_tag()
                if all(entry["vectors"] == tag for entry in docs.values()):
                    if tag.endswith("/index"):
                        return await self._ranked_in_store(base, docs, query, k)
                    vector = await self.embeddings.aembed_query(query)
                    return await self._passages.by_vector(base, docs, vector, k)
            except OllamaStackError as error:  # still an answer, from the words
                log.warning("document passages are ranked by keywords: %s", error)
        return await self._passages.by_keywords(base, docs, query, k)

    async def _ranked_in_store(self, base: tuple, docs: dict, query: str, k: int) -> list:
        assert self._index is not None and self._handover is not None
        vector = await self.embeddings.aembed_query(query)
        with self._handover.holding([query], [vector]):
            items = await self._index.asearch((*base, "chunk"), query=query, limit=2 * k)
        return [Passage(i.value["file_id"], i.value["file"], i.value["page"], i.value["text"],
                        float(i.score or 0.0)) for i in items if i.value["file_id"] in docs][:k]

    async def _vector_tag(self) -> str:
        """Which vectors a passage embedded now gets: "model/length/where" (where: "index",
        the store's; "value", its own). The first call embeds one text to learn the length."""
        async with self._probing:
            if self._tag is None:
                dims = len(await self.embeddings.aembed_query(PROBE))
                if self._make_index is not None:
                    try:
                        self._index = await self._make_index(dims, self._handover)
                    except Exception as error:
                        why = (str(error).strip() or type(error).__name__).splitlines()[0]
                        self.mode = "numpy"
                        self.note = (f"the vector index could not be opened ({why}): "
                                     "document passages are ranked in Python")
                        log.warning("%s", self.note)
                where = "value" if self._index is None else "index"
                self._tag = f"{getattr(self.embeddings, 'model', '')}/{dims}/{where}"
        return self._tag

    async def _entries(self, base: tuple[str, ...]) -> dict[str, dict]:
        items = await self._store.asearch((*base, "file"), limit=MOST)
        items.sort(key=lambda item: (item.value["created_at"], item.key))
        return {item.key: item.value for item in items}

    async def _entry(self, base: tuple[str, ...], file_id: str, kind: str) -> dict:
        item = await self._store.aget((*base, "file"), file_id) if file_id.isalnum() else None
        if item is None or item.value["kind"] != kind:
            raise _not_found(file_id)
        return item.value



def _not_found(file_id: str) -> InvalidInput:
    return InvalidInput(f"No file with id {file_id} is attached to this conversation.")
