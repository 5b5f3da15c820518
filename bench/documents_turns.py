"""Parts 3 and 4 of `bench.documents`: first tokens through the chat service, and other
chats' first tokens while another conversation's turn attaches a large PDF (the turn's
reading and storing timed, the event loop's worst lag, who spent the CPU)."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.documents_report import integrity, merged
from bench.search import text
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.engines.ollama.embeddings import OllamaEmbedder
from ollamastack.events import Started, TextDelta, TurnError
from ollamastack.settings import Settings
from ollamastack.storage.memory import documents_path
from tests.support.sample_files import WORDS, big_pdf, big_pdf_pages, pdf

OWNER = "ann"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def question(rng: random.Random) -> str:
    return f"What does the report say about the {rng.choice(WORDS)} and the {rng.choice(WORDS)}?"


async def first_token(service: Any, message: str, **options: Any) -> tuple[float, str]:
    """Seconds from asking to the first streamed text, and the turn's session."""
    started, first, session_id = time.perf_counter(), None, ""
    async for event in service.stream_turn(message, user=OWNER, **options):
        if isinstance(event, Started):
            session_id = event.session_id
        elif isinstance(event, TurnError):
            raise RuntimeError(f"the turn failed: {event}")
        elif isinstance(event, TextDelta) and first is None:
            first = time.perf_counter() - started
    assert first is not None, "no text was streamed"
    return first, session_id


async def chatter(service: Any, samples: list[tuple[float, float]], failed: list[str], *,
                  pause: float, stop: asyncio.Event, most: int = 10**9) -> None:
    """Other people's chats: a turn, a pause, ...; conversations of 10 turns. Appends (when
    the turn began, its first-token seconds), or the error of a turn that failed."""
    rng, session_id, n = random.Random(len(samples)), "", 0
    while not stop.is_set() and n < most:
        began = time.perf_counter()
        try:
            seconds, session_id = await first_token(
                service, text(rng, 25), session_id="" if n % 10 == 0 else session_id)
            samples.append((began, seconds))
        except Exception as error:
            failed.append(repr(error)[:160])
            session_id = ""
        n += 1
        try:
            await asyncio.wait_for(stop.wait(), pause)
        except TimeoutError:
            pass


@contextmanager
def phase_marks(marks: dict[str, list[float]]) -> Iterator[None]:
    """Record when the turn reads its files and when it stores them (split, embed, write)."""
    from ollamastack.agent import turn_streaming

    originals = turn_streaming.read_files, turn_streaming.store_files

    def timed(name: str, call: Any) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            marks[name] = [time.perf_counter()]
            try:
                return await call(*args, **kwargs)
            finally:
                marks[name].append(time.perf_counter())
        return wrapper

    turn_streaming.read_files = timed("read", originals[0])
    turn_streaming.store_files = timed("store", originals[1])
    try:
        yield
    finally:
        turn_streaming.read_files, turn_streaming.store_files = originals


@contextmanager
def vectors_in_rows(on: bool) -> Iterator[None]:
    """The documents' SQLite file without sqlite-vec: vectors kept in the rows and ranked
    with numpy, as on a PostgreSQL without pgvector."""
    from ollamastack.storage import document_backends

    original = document_backends.connect
    if on:
        document_backends.connect = lambda path, vectors: original(path, False)
    try:
        yield
    finally:
        document_backends.connect = original


async def loop_lag(stop: asyncio.Event, worst: list[float]) -> None:
    """The event loop's worst lateness (s) until `stop`: a 2 ms sleep, timed, over and over."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.002)
        worst[0] = max(worst[0], time.perf_counter() - started - 0.002)


async def busy(service: Any, data: bytes, pause: float, server_pid: int) -> dict[str, Any]:
    """Other chats while one turn attaches `data`; the turn's times and who spent the CPU."""
    from ollamastack.documents import extract

    marks: dict[str, list[float]] = {}
    samples: list[tuple[float, float]] = []
    failed: list[str] = []
    stop = asyncio.Event()
    worker = extract._shared().pids[0]
    cpu = (time.process_time(), cpu_seconds(worker), cpu_seconds(server_pid))
    ingest_first, lag = float("nan"), [0.0]
    with phase_marks(marks):
        others = asyncio.create_task(chatter(service, samples, failed, pause=pause, stop=stop))
        lagging = asyncio.create_task(loop_lag(stop, lag))
        began = time.perf_counter()
        try:
            ingest_first, _ = await first_token(
                service, "What does the report say about the harbor?",
                files=[("report.pdf", data)])
        except Exception as error:
            failed.append(f"the ingesting turn: {repr(error)[:160]}")
        finally:
            ended = time.perf_counter()
            stop.set()
            await others
            await lagging
    spent = (time.process_time(), cpu_seconds(worker), cpu_seconds(server_pid))
    phase = {name: [s for b, s in samples if start <= b < end]
             for name, (start, end) in marks.items() if len(marks[name]) == 2}
    return {"first": ingest_first, "wall": ended - began, "failed": failed,
            "during": [s for b, s in samples if b < ended], "phase": phase,
            "read": marks["read"][1] - marks["read"][0] if "read" in phase else float("nan"),
            "store": marks["store"][1] - marks["store"][0] if "store" in phase
            else float("nan"), "cpu": [b - a for a, b in zip(cpu, spent, strict=True)],
            "lag": lag[0]}


async def turns(settings: Settings, args: argparse.Namespace, server_pid: int,
                embed_url: str = "") -> dict:
    """Part 3's first tokens (one turn at a time), then part 4 (idle, ingesting, idle), on
    one chat service; then both SQLite files' integrity (conversations, documents).
    `embed_url`: the server that embeds passages (the chats' server by default; whether the
    model is ready is asked there in any case)."""
    rng = random.Random(5)
    small = pdf(big_pdf_pages(0.01)[:1])  # one page, ~5.7 KB of text: read whole
    large = big_pdf(args.large_mb)
    found: dict[str, Any] = {}
    async with open_chat_service(settings) as service:
        if embed_url:
            service.memory.documents.embeddings = OllamaEmbedder(
                settings.model_copy(update={"ollama_host": embed_url})).embeddings
        await first_token(service, "Warm up.", files=[("warm.pdf", pdf(["Warm."]))])
        for _ in range(5):
            await first_token(service, "Hello?")
        cases: dict[str, list[float]] = {}
        cases["no document, new conversation"] = [
            (await first_token(service, question(rng)))[0] for _ in range(args.turns)]
        cases["small PDF attached (read whole), new conversation"] = [
            (await first_token(service, question(rng), files=[("notes.pdf", small)]))[0]
            for _ in range(args.turns)]
        found["alone"], big = await first_token(service, question(rng),
                                                 files=[("report.pdf", large)])
        _, plain = await first_token(service, question(rng))
        _, noted = await first_token(service, question(rng), files=[("notes.pdf", small)])
        for name, session_id in (("no document", plain), ("small PDF, read whole", noted),
                                 (f"{args.large_mb:g} MB PDF, searched", big)):
            cases[f"{name}: a later turn"] = [
                (await first_token(service, question(rng), session_id=session_id))[0]
                for _ in range(args.turns)]
        found["cases"] = cases

        idle: list[tuple[float, float]] = []
        found["idle_failed"], rounds = [], []
        for n in range(args.rounds + 1):  # idle, then (ingesting, idle) each round
            await chatter(service, idle, found["idle_failed"], pause=args.pause,
                          stop=asyncio.Event(), most=args.idle_turns // (args.rounds + 1))
            if n < args.rounds:
                rounds.append(await busy(service, large, args.pause, server_pid))
        found["busy"] = merged(rounds)
        found["idle"] = [s for _, s in idle]
    found["integrity"] = " / ".join(
        integrity(path) for path in (settings.sqlite_path, documents_path(settings.sqlite_path)))
    return found


