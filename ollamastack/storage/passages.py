"""Documents' passages in memory for ranking: kept as they are stored or read once per file
(files never change), dropped least recently used past a byte budget; ranked by their unit
vectors with numpy, or by their words with BM25 (`keyword_rank.py`). Decoding what was read
and building a BM25 index take a whole core for up to a second at 10,000 passages, so they
run in a thread: other conversations' turns on the event loop are not held up."""

from __future__ import annotations

import asyncio
import base64
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from langgraph.store.base import BaseStore

from ollamastack.storage.keyword_rank import BM25

CACHE_BYTES = 256 * 2**20  # passages and vectors kept in memory, least recent dropped
KEYWORD_INDEXES = 16  # conversations whose BM25 index is kept


@dataclass(frozen=True)
class Passage:
    file_id: str
    file: str
    page: int | None
    text: str
    score: float  # cosine similarity, or BM25 when ranked by keywords


@dataclass(frozen=True)
class Loaded:
    """A document's passages in order, their unit vectors (rows) if any, and their bytes."""

    pages: list[int | None]
    texts: list[str]
    matrix: np.ndarray | None
    size: int


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """The rows scaled to length 1 (float32; a zero row stays zero), for cosine by dot product.

    >>> unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    rows = np.array(matrix, dtype=np.float32)
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return rows


def loaded(pages: list[int | None], texts: list[str], matrix: np.ndarray | None) -> Loaded:
    size = sum(map(len, texts)) + (0 if matrix is None else matrix.nbytes)
    return Loaded(pages, texts, matrix, size)


def _decoded(values: list[dict]) -> Loaded:
    """What the store holds for a document's passages (sorted by key) as a `Loaded`."""
    matrix = None
    if values and all("vector" in value for value in values):
        raw = b"".join(base64.b64decode(value["vector"]) for value in values)
        matrix = unit_rows(np.frombuffer(raw, dtype="<f4").reshape(len(values), -1))
    return loaded([v["page"] for v in values], [v["text"] for v in values], matrix)


class Passages:
    """The passages of documents under a store's namespaces, cached by file id."""

    def __init__(self, store: BaseStore, cache_bytes: int = CACHE_BYTES) -> None:
        self._store, self._cache_bytes = store, cache_bytes
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._keywords: OrderedDict[tuple[str, ...], tuple[BM25, list]] = OrderedDict()

    def forget(self, file_id: str) -> None:
        self._loaded.pop(file_id, None)

    async def by_vector(self, base: tuple, docs: dict, vector: Sequence[float], k: int
                        ) -> list[Passage]:
        """The `k` passages of `docs` (file id -> entry) nearest `vector` (cosine)."""
        query_vector = np.asarray(vector, dtype=np.float32)
        query_vector /= max(float(np.linalg.norm(query_vector)), 1e-12)
        best: list[tuple[float, str, int, Loaded]] = []
        for file_id, entry in docs.items():
            loaded = await self.load(base, file_id, entry)
            scores = loaded.matrix @ query_vector
            top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else range(len(scores))
            best += [(float(scores[i]), file_id, int(i), loaded) for i in top]
        best.sort(key=lambda hit: -hit[0])
        return [Passage(file_id, docs[file_id]["name"], loaded.pages[i], loaded.texts[i], score)
                for score, file_id, i, loaded in best[:k]]

    async def by_keywords(self, base: tuple, docs: dict, query: str, k: int) -> list[Passage]:
        """The `k` passages of `docs` that best match `query`'s words (BM25; an index per
        set of files, the latest few kept)."""
        ids = tuple(docs)
        if (found := self._keywords.get(ids)) is None:
            refs = [(file_id, i, loaded) for file_id in ids
                    for loaded in [await self.load(base, file_id, docs[file_id])]
                    for i in range(len(loaded.texts))]
            index = await asyncio.to_thread(BM25, [loaded.texts[i] for _, i, loaded in refs])
            found = index, refs
            self._keywords[ids] = found
            while len(self._keywords) > KEYWORD_INDEXES:
                self._keywords.popitem(last=False)
        self._keywords.move_to_end(ids)
        index, refs = found
        return [Passage(refs[n][0], docs[refs[n][0]]["name"], refs[n][2].pages[refs[n][1]],
                        refs[n][2].texts[refs[n][1]], score) for n, score in index.top(query, k)]

    def keep(self, file_id: str, passages: Loaded) -> None:
        """Remember a document's passages as they were just stored (its first search then
        reads nothing back)."""
        self._loaded[file_id] = passages
        total = sum(cached.size for cached in self._loaded.values())
        while total > self._cache_bytes and len(self._loaded) > 1:
            total -= self._loaded.popitem(last=False)[1].size

    async def load(self, base: tuple[str, ...], file_id: str, entry: dict) -> Loaded:
        """A document's passages (and vectors), from memory or the store."""
        if (found := self._loaded.get(file_id)) is None:
            items = await self._store.asearch((*base, "chunk", file_id),
                                              limit=max(entry["chunks"], 1))
            values = [item.value for item in sorted(items, key=lambda item: item.key)]
            found = await asyncio.to_thread(_decoded, values)
            self.keep(file_id, found)
        self._loaded.move_to_end(file_id)
        return found
