"""Attached documents and images in the conversation's database (`storage/documents.py`).

Every vector crosses real HTTP: the app's embedder (LangChain's `OllamaEmbeddings`) asks the
test server's `/api/embed`. Each test runs on SQLite with sqlite-vec (pysqlite3 loads it),
on SQLite with vectors ranked by numpy, and on PostgreSQL (numpy too: Debian's PostgreSQL
here has no pgvector); the tables are read back to see what is stored.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psycopg
import pytest
from langgraph.store.base import BaseStore

from ollamastack.engines.ollama.embeddings import OllamaEmbedder
from ollamastack.errors import InvalidInput, OllamaError, OllamaUnavailable
from ollamastack.storage.document_backends import NOTES
from ollamastack.storage.documents import DocumentStore, Passage, StoredFile
from ollamastack.storage.memory import open_memory
from tests.support.chat_helpers import make_settings
from tests.support.ollama_server import FakeOllama, embed_vector

REPORT = [(1, "Narwhals migrate along the Arctic coast every spring"),
          (2, "Lemurs live only on Madagascar"),
          (3, "Okapis hide in the Ituri rainforest")]
NOTES_TXT = [(None, "Shopping list: bread, milk, oat cookies")]
QUESTION = "When do narwhals migrate?"
PDF = "application/pdf"
Rows = Callable[[str], list[tuple[str, str, str]]]
KEYWORD_SCORE = pytest.approx(1.75395, abs=1e-5)  # BM25 of the two words shared, by hand


@dataclass
class Backend:
    kind: str
    documents: DocumentStore  # embeds through the test server, two passages a request
    memory_store: BaseStore  # the session index's store, on the same database
    without_model: DocumentStore  # as `open_memory` opens it without embeddings
    rows: Rows  # (table, namespace, key) of the rows naming a session


@pytest.fixture
def server(ollama_server: FakeOllama) -> FakeOllama:
    ollama_server.add_model("nomic-embed-text", capabilities=("embedding",))
    return ollama_server


@pytest.fixture(params=["sqlite-vec", "numpy-sqlite", "numpy-postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "numpy-postgres":
        return request.param, request.getfixturevalue("postgres").new_database()
    return request.param, f"sqlite:///{tmp_path / 'chat.sqlite'}"


@pytest.fixture
async def backend(
    server: FakeOllama, database: tuple[str, str], tmp_path: Path
) -> AsyncIterator[Backend]:
    kind, url = database
    settings = make_settings(server, database_url=url, data_dir=tmp_path)
    embeddings = OllamaEmbedder(settings).embeddings
    async with open_memory(settings) as memory:
        assert memory.documents is not None
        if settings.on_postgres:
            documents = await DocumentStore.on_postgres(memory.store, embeddings, embed_batch=2)
            yield Backend(kind, documents, memory.store, memory.documents,
                          partial(postgres_rows, url))
            return
        async with DocumentStore.open_sqlite(settings.sqlite_path, embeddings, embed_batch=2,
                                             vector_index=kind == "sqlite-vec") as documents:
            yield Backend(kind, documents, memory.store, memory.documents,
                          partial(sqlite_rows, settings.sqlite_path))


def sqlite_rows(path: Path, session_id: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as connection:
        tables = [t for (t,) in connection.execute("SELECT name FROM sqlite_master")
                  if t in ("store", "store_vectors")]
        query = "SELECT prefix, key FROM {} WHERE prefix LIKE ?"
        return sorted((table, *row) for table in tables for row in connection.execute(
            query.format(table), (f"%{session_id}%",)))


def postgres_rows(url: str, session_id: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as connection:
        tables = [t for t in ("store", "store_vectors")
                  if connection.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]]
        query = "SELECT prefix, key FROM {} WHERE prefix LIKE %s"
        return sorted((table, *row) for table in tables for row in connection.execute(
            query.format(table), (f"%{session_id}%",)))


def new_session() -> str:
    return str(uuid.uuid4())


def similarity(a: str, b: str) -> float:
    return sum(x * y for x, y in zip(embed_vector(a, 768), embed_vector(b, 768), strict=True))


# -- retrieval ---------------------------------------------------------------------------


async def test_the_passage_sharing_the_questions_words_comes_first(
    backend: Backend, server: FakeOllama
) -> None:
    documents, session = backend.documents, new_session()
    report = await documents.add_document("", session, "report.pdf", PDF, 9_000, REPORT,
                                          embed=True)
    notes = await documents.add_document("", session, "notes.txt", "text/plain", 40, NOTES_TXT,
                                         embed=True)
    found = await documents.search("", session, QUESTION, k=3, embed=True)

    expected = similarity(QUESTION, REPORT[0][1])
    assert found[0] == Passage(report.id, "report.pdf", 1, REPORT[0][1], pytest.approx(expected))
    assert len(found) == 3 and {p.file_id for p in found} <= {report.id, notes.id}
    texts = [text for _, text in REPORT]
    assert [body["input"] for body in server.embed_requests] == [
        ["How long is a vector?"],  # the length of its vectors, learnt once
        texts[:2], texts[2:], [NOTES_TXT[0][1]], [QUESTION]]
    assert {body["model"] for body in server.embed_requests} == {"nomic-embed-text"}
    mode = "sqlite-vec" if backend.kind == "sqlite-vec" else "numpy"
    note = {"sqlite-vec": "", "numpy-sqlite": NOTES["off"], "numpy-postgres": NOTES["postgres"]}
    assert (documents.mode, documents.note) == (mode, note[backend.kind])


async def test_without_an_embedding_model_passages_are_ranked_by_keywords(
    backend: Backend, server: FakeOllama
) -> None:
    documents, session = backend.without_model, new_session()
    report = await documents.add_document("", session, "report.pdf", PDF, 1, REPORT, embed=True)
    found = await documents.search("", session, QUESTION, k=3, embed=True)

    assert found == [Passage(report.id, "report.pdf", 1, REPORT[0][1], KEYWORD_SCORE)]
    assert await documents.search("", session, "giraffes", embed=True) == []
    assert server.embed_requests == []  # no vector was asked for

    embedded, session = backend.documents, new_session()  # a model, not to be used
    await embedded.add_document("", session, "more.pdf", PDF, 1, REPORT[1:], embed=False)
    assert [p.text for p in await embedded.search("", session, "Madagascar", embed=False)] == [
        REPORT[1][1]]
    assert server.embed_requests == []


async def test_another_users_conversation_is_invisible(backend: Backend) -> None:
    documents, session = backend.documents, new_session()
    report = await documents.add_document("ann", session, "report.pdf", PDF, 1, REPORT,
                                          embed=True)
    image = await documents.add_image("ann", session, "cat.png", "image/png", b"png", 4, 3)

    assert await documents.search("bob", session, QUESTION, embed=True) == []
    assert await documents.search("", session, QUESTION, embed=False) == []
    assert await documents.files("bob", session) == []
    with pytest.raises(InvalidInput, match=f"No file with id {report.id} is attached"):
        await documents.text("bob", session, report.id)
    with pytest.raises(InvalidInput):
        await documents.image("bob", session, image.id)
    await documents.remove("bob", session, [report.id, image.id])
    await documents.delete_session("bob", session)
    assert [f.id for f in await documents.files("ann", session)] == [report.id, image.id]
    found = await documents.search("ann", session, QUESTION, k=1, embed=True)
    assert [(p.file_id, p.page) for p in found] == [(report.id, 1)]


# -- what is stored ----------------------------------------------------------------------


async def test_files_text_and_images_read_back_as_stored(backend: Backend) -> None:
    documents, session = backend.documents, new_session()
    chunks = [(page, f"Passage {n} about topic {n}") for n, page in enumerate([1, 1, 2, 5, 5])]
    report = await documents.add_document("", session, "report.pdf", PDF, 123_456,
                                          [*chunks[:2], (2, "  "), *chunks[2:]], embed=True)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    image = await documents.add_image("", session, "chart.png", "image/png", png, 640, 480)

    assert report == StoredFile(report.id, "report.pdf", "document", PDF, 123_456, pages=5,
                                tokens=29, created_at=report.created_at)  # 115 characters / 4
    assert image == StoredFile(image.id, "chart.png", "image", "image/png", len(png), pages=0,
                               tokens=768, created_at=image.created_at, width=640, height=480)
    assert await documents.files("", session) == [report, image]
    assert await documents.text("", session, report.id) == chunks  # the blank one dropped
    assert await documents.image("", session, image.id) == png
    with pytest.raises(InvalidInput):
        await documents.text("", session, image.id)


async def test_remove_takes_a_files_rows_with_it(backend: Backend) -> None:
    documents, session = backend.documents, new_session()
    report = await documents.add_document("", session, "report.pdf", PDF, 1, REPORT, embed=True)
    notes = await documents.add_document("", session, "notes.txt", "text/plain", 1, NOTES_TXT,
                                         embed=True)
    image = await documents.add_image("", session, "cat.png", "image/png", b"png", 1, 1)

    await documents.remove("", session, [report.id, image.id, "0" * 32])
    assert await documents.files("", session) == [notes]
    assert [p.file_id for p in await documents.search("", session, QUESTION, embed=True)] == [
        notes.id]
    assert {key for _, prefix, key in backend.rows(session) if report.id in prefix} == set()
    assert [(t, k) for t, p, k in backend.rows(session) if notes.id in p] == [
        ("store", "000000"), *([("store_vectors", "000000")] * (backend.kind == "sqlite-vec"))]


async def test_delete_session_leaves_no_row_of_it(backend: Backend) -> None:
    documents, session, other = backend.documents, new_session(), new_session()
    await documents.add_document("", session, "report.pdf", PDF, 1, REPORT, embed=True)
    await documents.add_document("", session, "plain.txt", "text/plain", 1, NOTES_TXT,
                                 embed=False)
    await documents.add_image("", session, "cat.png", "image/png", b"png", 1, 1)
    kept = await documents.add_document("", other, "report.pdf", PDF, 1, REPORT, embed=True)
    crashed = ("attachments", "anonymous", session, "chunk", uuid.uuid4().hex)  # no entry
    await backend.memory_store.aput(crashed, "000000", {"text": "half written"}, index=False)
    vectors = 3 if backend.kind == "sqlite-vec" else 0
    # 3 entries, 3 + 1 passages, the image's bytes, the half-written passage, the vectors
    assert len(backend.rows(session)) == 3 + 3 + 1 + 1 + 1 + vectors

    await documents.delete_session("", session)
    assert backend.rows(session) == []
    assert await documents.files("", session) == []
    assert len(backend.rows(other)) == 1 + 3 + vectors
    assert [p.file_id for p in await documents.search("", other, QUESTION, k=1, embed=True)] == [
        kept.id]


async def test_a_document_is_stored_whole_or_not_at_all(
    backend: Backend, server: FakeOllama
) -> None:
    documents, session = backend.documents, new_session()
    chunks = [(n, f"passage number {n}") for n in range(1, 6)]
    server.enqueue_embed_error(500, "llama runner process has terminated", after=2)
    with pytest.raises(OllamaError, match="llama runner process has terminated"):
        await documents.add_document("", session, "big.pdf", PDF, 1, chunks, embed=True)

    assert [body["input"] for body in server.embed_requests] == [
        ["How long is a vector?"], ["passage number 1", "passage number 2"],
        ["passage number 3", "passage number 4"]]  # the second batch failed
    assert backend.rows(session) == []  # the first batch was taken back
    assert await documents.files("", session) == []

    server.stop()  # Ollama goes away before the next document
    with pytest.raises(OllamaUnavailable):
        await documents.add_document("", session, "big.pdf", PDF, 1, chunks, embed=True)
    assert backend.rows(session) == []


async def test_search_falls_back_to_keywords_when_embedding_fails(
    backend: Backend, server: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    documents, session = backend.documents, new_session()
    report = await documents.add_document("", session, "report.pdf", PDF, 1, REPORT, embed=True)
    server.stop()
    with caplog.at_level(logging.WARNING, "ollamastack.storage.documents"):
        found = await documents.search("", session, QUESTION, embed=True)
    assert found == [Passage(report.id, "report.pdf", 1, REPORT[0][1], KEYWORD_SCORE)]
    assert "document passages are ranked by keywords: Ollama is not reachable" in caplog.text


async def test_a_new_embedding_model_does_not_mix_its_vectors_with_the_old_ones(
    backend: Backend, server: FakeOllama, tmp_path: Path
) -> None:
    if backend.kind == "numpy-postgres":
        pytest.skip("the same path as numpy-sqlite; one database file is enough here")
    session = new_session()
    report = await backend.documents.add_document("", session, "report.pdf", PDF, 1, REPORT,
                                                  embed=True)
    server.add_model("mxbai-embed-large", capabilities=("embedding",), embedding_length=1024)
    settings = make_settings(server, embed_model="mxbai-embed-large")
    path = tmp_path / "chat.sqlite"
    async with DocumentStore.open_sqlite(path, OllamaEmbedder(settings).embeddings,
                                         vector_index=backend.kind == "sqlite-vec") as renamed:
        newer = await renamed.add_document("", session, "notes.txt", "text/plain", 1, NOTES_TXT,
                                           embed=True)
        found = await renamed.search("", session, QUESTION, embed=True)

    assert [(p.file_id, p.page) for p in found] == [(report.id, 1)]  # by keywords
    assert [(b["model"], b["input"]) for b in server.embed_requests[-2:]] == [
        ("mxbai-embed-large", ["How long is a vector?"]),
        ("mxbai-embed-large", [NOTES_TXT[0][1]])]  # the question was not embedded
    assert newer.id in {f.id for f in await backend.documents.files("", session)}


async def test_open_memory_opens_the_documents_beside_the_rest(
    server: FakeOllama, postgres: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    embeddings = OllamaEmbedder(make_settings(server)).embeddings
    sqlite = make_settings(server, database_url=f"sqlite:///{tmp_path / 'a.sqlite'}",
                           data_dir=tmp_path)
    async with open_memory(sqlite, embeddings=embeddings) as memory:
        assert memory.documents is not None
        assert (memory.documents.mode, memory.documents.embeddings) == ("sqlite-vec", embeddings)

    on_postgres = make_settings(server, database_url=postgres.new_database())  # type: ignore[attr-defined]
    with caplog.at_level(logging.INFO, "ollamastack.storage.memory"):
        async with open_memory(on_postgres, embeddings=embeddings) as memory:
            assert memory.documents is not None
            assert memory.documents.mode == "numpy"
    assert [r.getMessage() for r in caplog.records if r.name == "ollamastack.storage.memory"] == [
        "pgvector is not installed in PostgreSQL: document passages are ranked in Python"]
