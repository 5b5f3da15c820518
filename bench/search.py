"""Search latency over many stored conversations, and what a turn pays to keep search current.

Fills the search index (and the session index it takes titles from) with `--conversations`
conversations of two turns each (a question of ~25 words, an answer of ~100, words drawn
Zipf-like from a 4,000-word vocabulary), 90% of them one user's, then times what
`ChatService.search_conversations` does per query (the full-text query, then the titles),
for several kinds of query. Then runs real turns through the chat service against the test
server and times the indexing step each turn ends with (`_index_turn`: reading the stored
turn, then the index write; on PostgreSQL the write is queued and made behind the turn, and
its own time is reported beside). SQLite file by default; `--postgres` adds the test suite's
throwaway PostgreSQL.

    .venv/bin/python -m bench.search [--conversations 10000] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ollamastack.agent.service_handle import open_chat_service
from ollamastack.settings import Settings
from ollamastack.storage.memory import Memory
from tests.support.ollama_server import FakeOllama

VOCABULARY = [f"{a}{b}{c}" for a in ("ka", "lo", "mi", "ne", "pu", "ro", "sa", "ti", "vu", "ze")
              for b in ("bar", "den", "fis", "gol", "hum", "jak", "lin", "mor", "nup", "rik")
              for c in ("a", "e", "i", "o", "u", "an", "el", "in", "on", "us",
                        "ar", "et", "ix", "ol", "um", "ax", "ed", "is", "ot", "ur",
                        "ab", "ec", "id", "og", "uk", "ay", "ew", "iz", "oy", "uq",
                        "al", "em", "ip", "or", "ut", "ak", "ey", "iv", "ow", "uz")]
WEIGHTS = [1 / (rank + 1) for rank in range(len(VOCABULARY))]  # Zipf: a few words everywhere
QUERIES = {  # kind: query (markers: each in 1 conversation in 1,000)
    "rare word": "marker7",
    "common word": VOCABULARY[0],
    "two words": f"{VOCABULARY[1]} {VOCABULARY[40]}",
    "prefix": VOCABULARY[3][:3],
    "no match": "nowhere",
    "only another user's": "bobword",
}


def text(rng: random.Random, words: int, extra: str = "") -> str:
    chosen = rng.choices(VOCABULARY, WEIGHTS, k=words)
    return " ".join(chosen) + (f" {extra}" if extra else "")


async def fill(memory: Memory, conversations: int, rng: random.Random) -> float:
    """Store the conversations; returns the seconds it took."""
    started = time.perf_counter()
    for n in range(conversations):
        owner = "ann" if n % 10 else "bob"
        extra = "bobword" if owner == "bob" else f"marker{n % 1000}"
        session_id = await memory.sessions.create(owner)
        await memory.sessions.touch(session_id, owner, text(rng, 8))
        messages = [text(rng, 25, extra), text(rng, 100), text(rng, 25), text(rng, 100)]
        await memory.search.add(session_id, owner, 0, list(enumerate(messages)))
    return time.perf_counter() - started


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, round(len(samples) * 0.95) - 1)]


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def measure(settings: Settings, server: FakeOllama, conversations: int, turns: int,
                  repeat: int) -> dict[str, Any]:
    rng = random.Random(7)
    async with open_chat_service(settings) as service:
        filled = await fill(service.memory, conversations, rng)
        await service.memory.search.flush()
        if settings.on_postgres:  # statistics, as autovacuum keeps them after a bulk insert
            async with service.memory.search._pool.connection() as connection:
                await connection.execute("ANALYZE search_message")
        latency: dict[str, Any] = {}
        for kind, query in QUERIES.items():
            found = await service.search_conversations(query, "ann")
            samples = await timed(lambda q=query: service.search_conversations(q, "ann"), repeat)
            latency[kind] = (len(found), statistics.median(samples) * 1000, p95(samples) * 1000)

        # what the write is: `add` on SQLite, the queued batch written behind on PostgreSQL
        search = service.memory.search
        write_name = "_write" if settings.on_postgres else "add"
        index_turn, write = service._index_turn, getattr(search, write_name)
        spent: dict[str, list[float]] = {"turn": [], "write": []}

        async def timed_index(*args: Any) -> None:
            started = time.perf_counter()
            await index_turn(*args)
            spent["turn"].append(time.perf_counter() - started)

        async def timed_write(*args: Any) -> None:
            started = time.perf_counter()
            await write(*args)
            spent["write"].append(time.perf_counter() - started)

        service._index_turn = timed_index  # type: ignore[method-assign]
        setattr(search, write_name, timed_write)
        session_id = ""
        for n in range(turns):
            if n % 10 == 0:
                session_id = ""  # conversations of 10 turns: the stored history grows
            server.enqueue_text(text(rng, 100))
            async for event in service.stream_turn(text(rng, 25), session_id=session_id,
                                                   user="ann"):
                session_id = getattr(event, "session_id", session_id)
        await search.flush()
    return {"fill_s": filled, "latency": latency, "index": spent,
            "behind": settings.on_postgres}


def report(name: str, result: dict[str, Any], conversations: int, repeat: int) -> None:
    print(f"\n{name}: {conversations} conversations stored ({result['fill_s']:.1f} s to fill)")
    print(f"  search, {repeat} runs each   results   p50 ms   p95 ms")
    for kind, (count, p50, high) in result["latency"].items():
        print(f"  {kind:<22} {count:>9} {p50:>8.2f} {high:>8.2f}")
    write = "the index write, behind the turn" if result["behind"] else "  of which the index write"
    for part, samples, unit in (("indexing step per turn", result["index"]["turn"], "turns"),
                                (write, result["index"]["write"], "writes")):
        ms = [s * 1000 for s in samples]
        print(f"  {part:<33} p50 {statistics.median(ms):.2f} ms, p95 {p95(ms):.2f} ms "
              f"({len(ms)} {unit})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    with FakeOllama() as server, tempfile.TemporaryDirectory() as directory:
        server.add_model("llama3.2", capabilities=("completion", "tools"))
        common: dict[str, Any] = {"ollama_host": server.url, "model": "llama3.2",
                                  "embedded": False, "data_dir": Path(directory)}
        databases = [("SQLite", f"sqlite:///{directory}/bench.sqlite")]
        postgres = None
        if args.postgres:
            from tests.support.postgres_server import PostgresServer

            postgres = PostgresServer().start()
            databases.append(("PostgreSQL", postgres.new_database()))
        try:
            for name, url in databases:
                settings = Settings(_env_file=None, database_url=url, **common)
                result = asyncio.run(measure(settings, server, args.conversations, args.turns,
                                             args.repeat))
                report(name, result, args.conversations, args.repeat)
        finally:
            if postgres is not None:
                postgres.stop()


if __name__ == "__main__":
    main()
