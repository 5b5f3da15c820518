"""Attached documents (issue 18): ingestion per MB, retrieval, first tokens with documents.

1. Ingestion: a PDF (`tests/support/sample_files.big_pdf`, dense text pages) and the same text
   as a .txt, each taken as a turn takes it: `accept` (the type from the bytes), `read_text` (a
   PDF in the reading worker process, text in a thread), `split`, `DocumentStore.add_document`
   into a SQLite file: by keywords only (no vectors), or embedded through the test server's
   `/api/embed` (vectors in sqlite-vec, or in the rows, ranked with numpy).
2. Retrieval: `DocumentStore.search` in one conversation of 1,000 and one of 10,000 passages
   (words drawn Zipf-like, as bench/search.py), both in one database: sqlite-vec, numpy, BM25;
   `--postgres` adds the test suite's PostgreSQL (numpy and BM25: it has no pgvector). Every
   query is new, so each pays for its vector from the test server.
3. First token through the chat service: turns without documents, with a small document
   attached (read whole), and later turns of a conversation holding a large one (searched).
4. Other chats' first tokens (one turn every `--pause` s, conversations of 10 turns) while
   another conversation's turn attaches a large PDF (three times), against the same chats idle.
Parts 3 and 4 run on four chat services (CONFIGS): as shipped here (sqlite-vec, in the
documents' own SQLite file; passages embedded by a second test server, as Ollama's runner of
the embedding model is a process of its own); the same with one test server for both; with
vectors in the rows, ranked with numpy (the path of a PostgreSQL without pgvector); and with
no embedding model (keywords). Afterwards both SQLite files are checked for integrity.
Parts 3 and 4: bench/documents_turns.py; the report: bench/documents_report.py.

The test server runs in its own process (bench/fake_ollama.py), unpaced. Its "embedding" is a
hash of the words: a real embedding model's time (nomic-embed-text, on a GPU or worse on this
CPU) comes on top of every embedded figure and is not measured here.

    .venv/bin/python -m bench.documents [--quick] [--postgres] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.documents_report import report, spread
from bench.documents_turns import OWNER, turns, vectors_in_rows
from bench.fake_ollama import RemoteOllama
from bench.search import text
from ollamastack.documents import ReadingPool, accept, read_text, split
from ollamastack.engines.ollama.embeddings import OllamaEmbedder
from ollamastack.settings import Settings
from ollamastack.storage.documents import DocumentStore
from ollamastack.storage.memory import open_memory
from tests.support.sample_files import big_pdf, big_pdf_pages, pdf

MB = 2**20
CONFIGS = {  # the chat service's documents: (embedding model, vectors in the rows (numpy),
    # passages embedded by a second test server). Ollama runs each model in a runner process
    # of its own, so an embedding never holds up a chat's reply there; the test server is
    # one process with one event loop, where it would: the shipped path gets a second server
    # for embeddings, as Ollama would answer, and also runs with one server for both.
    "sqlite-vec, as shipped": ("nomic-embed-text", False, True),
    "sqlite-vec, one test server for both": ("nomic-embed-text", False, False),
    "numpy (vectors in the rows)": ("nomic-embed-text", True, True),
    "keywords": ("absent", False, False),
}
READ_LIMIT = 600.0  # generous, to get a figure: the app refuses past `extract_timeout` (60 s)


# -- 1. ingestion ---------------------------------------------------------------------------


async def ingest(store: DocumentStore, pool: ReadingPool, name: str, data: bytes, *,
                 embed: bool) -> dict[str, float]:
    """One document through the turn's steps, each timed (seconds)."""
    marks = [time.perf_counter()]
    attachment = accept(name, data, max_bytes=len(data))
    marks.append(time.perf_counter())
    pages = await read_text(attachment, timeout=READ_LIMIT, max_pages=2000, pool=pool)
    marks.append(time.perf_counter())
    chunks = split(pages, overlap=0)  # as store_files splits
    marks.append(time.perf_counter())
    await store.add_document(OWNER, str(uuid.uuid4()), attachment.name, attachment.mime,
                             attachment.size, [(c.page, c.text) for c in chunks], embed=embed)
    marks.append(time.perf_counter())
    steps = [b - a for a, b in itertools.pairwise(marks)]
    return dict(zip(("accept", "read", "split", "store"), steps, strict=True),
                total=marks[-1] - marks[0], mb=len(data) / MB, chunks=len(chunks))


async def ingestion(settings: Settings, directory: Path, sizes: list[float]) -> list[dict]:
    embeddings = OllamaEmbedder(settings).embeddings
    pool = ReadingPool()  # one worker, as the app's
    rows = []
    try:
        started = time.perf_counter()
        await read_text(accept("w.pdf", pdf(["Warm."]), max_bytes=MB), timeout=60,
                        max_pages=10, pool=pool)
        rows.append({"worker_start": time.perf_counter() - started})
        async with DocumentStore.open_sqlite(directory / "vec.sqlite", embeddings) as vec, \
                DocumentStore.open_sqlite(directory / "numpy.sqlite", embeddings,
                                          vector_index=False) as plain:
            paths = [("keywords", vec, False), ("sqlite-vec", vec, True), ("numpy", plain, True)]
            for _, store, embed in paths[1:]:  # the vector length probe, the index tables
                await store.add_document(OWNER, str(uuid.uuid4()), "w.txt", "text/plain", 5,
                                         [(None, "Warm.")], embed=embed)
            for megabytes in sizes:
                files = [("report.pdf", big_pdf(megabytes)),
                         ("report.txt", "\n\n".join(big_pdf_pages(megabytes)).encode())]
                for name, data in files:
                    for path, store, embed in paths:
                        row = await ingest(store, pool, name, data, embed=embed)
                        rows.append(row | {"format": name.split(".")[1].upper(), "path": path})
                        print(f"ingested {name} {row['mb']:.1f} MB by {path}: "
                              f"{row['total']:.1f} s", file=sys.stderr)
    finally:
        pool.close()
    return rows


# -- 2. retrieval ---------------------------------------------------------------------------


async def retrieval_on(database: str, store: DocumentStore, sizes: list[int], repeat: int,
                       bm25: bool) -> list[dict]:
    """Fill one conversation per size, then time searches in each: the first (it loads the
    passages into memory) and `repeat` more, each with a new question."""
    rng = random.Random(11)
    sessions = {}
    for count in sizes:
        session_id, started = str(uuid.uuid4()), time.perf_counter()
        passages = [(n // 5 + 1, text(rng, 150)) for n in range(count)]  # ~1,100 characters
        await store.add_document(OWNER, session_id, f"{count}.txt", "text/plain", 0, passages,
                                 embed=True)
        sessions[count] = (session_id, time.perf_counter() - started)
    rows = []
    for count, (session_id, filled) in sessions.items():
        for how, embed in [(store.mode, True)] + [("BM25", False)] * bm25:
            samples = []
            for _ in range(repeat + 1):
                query = text(rng, 8)
                started = time.perf_counter()
                found = await store.search(OWNER, session_id, query, k=16, embed=embed)
                samples.append(time.perf_counter() - started)
                assert len(found) == 16, (how, count, len(found))
            rows.append({"database": database, "how": how, "chunks": count, "fill": filled,
                         "first": samples[0], "samples": samples[1:]})
            print(f"search {database} {how} {count}: {spread(samples[1:])} ms", file=sys.stderr)
    return rows


async def retrieval(settings: Settings, directory: Path, sizes: list[int], repeat: int,
                    postgres_url: str) -> tuple[list[dict], list[float]]:
    embeddings = OllamaEmbedder(settings).embeddings
    query_vectors = []
    for n in range(repeat):
        started = time.perf_counter()
        await embeddings.aembed_query(f"how long is question {n}")
        query_vectors.append(time.perf_counter() - started)
    rows = []
    async with DocumentStore.open_sqlite(directory / "search-vec.sqlite", embeddings) as store:
        rows += await retrieval_on("SQLite", store, sizes, repeat, bm25=False)
    async with DocumentStore.open_sqlite(directory / "search-numpy.sqlite", embeddings,
                                         vector_index=False) as store:
        rows += await retrieval_on("SQLite", store, sizes, repeat, bm25=True)
    if postgres_url:
        pg = Settings(_env_file=None, database_url=postgres_url, data_dir=directory)
        async with open_memory(pg, embeddings=embeddings) as memory:
            assert memory.documents is not None
            rows += await retrieval_on("PostgreSQL", memory.documents, sizes, repeat, bm25=True)
    return rows, query_vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, few turns: a check that it runs (about 2 minutes)")
    parser.add_argument("--postgres", action="store_true",
                        help="retrieval on the test suite's throwaway PostgreSQL too")
    parser.add_argument("--pause", type=float, default=0.1,
                        help="seconds between the other chat's turns")
    parser.add_argument("--output", type=Path, help="write the figures as Markdown here")
    parser.add_argument("--save", type=Path, help="also keep the raw figures here (JSON)")
    parser.add_argument("--report-from", type=Path,
                        help="only write the report again, from the figures --save kept")
    args = parser.parse_args()
    if args.report_from:
        kept = json.loads(args.report_from.read_text())
        kept["args"].update(output=args.output)
        markdown = report(argparse.Namespace(**kept["args"]), kept["load"], kept["ingested"],
                          kept["searched"], kept["query_vectors"], kept["chats"])
        if args.output:
            args.output.write_text(markdown)
        print(markdown)
        return
    args.command = " ".join(["python -m bench.documents", *sys.argv[1:]])
    sizes = [0.5, 2.0] if args.quick else [1.0, 10.0]
    chunks = [1000, 2000] if args.quick else [1000, 10_000]
    repeat, args.turns = (20, 10) if args.quick else (100, 50)
    args.large_mb, args.idle_turns = (2.0, 40) if args.quick else (10.0, 240)
    args.rounds = 1 if args.quick else 3
    load = list(os.getloadavg())

    server, embedder = RemoteOllama(), RemoteOllama()
    postgres = None
    try:
        for each in (server, embedder):
            each.call("add_model", "llama3.2", capabilities=["completion", "tools"])
            each.call("add_model", "nomic-embed-text", capabilities=["embedding"])
        if args.postgres:
            from tests.support.postgres_server import PostgresServer

            postgres = PostgresServer().start()
        with tempfile.TemporaryDirectory() as name:
            directory = Path(name)

            def settings(label: str, **extra: Any) -> Settings:
                return Settings(_env_file=None, ollama_host=server.url, model="llama3.2",
                                embedded=False, data_dir=directory / label,
                                database_url=f"sqlite:///{directory}/{label}.sqlite", **extra)

            ingested = asyncio.run(ingestion(settings("ingest"), directory, sizes))
            searched, query_vectors = asyncio.run(retrieval(
                settings("search"), directory, chunks, repeat,
                postgres.new_database() if postgres else ""))
            chats = {}
            for n, (label, (model, in_rows, own)) in enumerate(CONFIGS.items()):
                with vectors_in_rows(in_rows):
                    chats[label] = asyncio.run(turns(
                        settings(f"chat-{n}", embed_model=model), args, server.pid,
                        embedder.url if own else ""))
    finally:
        server.close()
        embedder.close()
        if postgres is not None:
            postgres.stop()
    if args.save:
        args.save.write_text(json.dumps({
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "load": load, "ingested": ingested, "searched": searched,
            "query_vectors": query_vectors, "chats": chats}))
    markdown = report(args, load, ingested, searched, query_vectors, chats)
    print(markdown)
    if args.output:
        args.output.write_text(markdown)


if __name__ == "__main__":
    main()
