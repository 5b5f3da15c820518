"""Make conversations stored before the search index existed (or whose first turn could not
be indexed) searchable, in the background from start-up.

Every conversation of the session index whose first message is not in the search index is
read back from the checkpointer and indexed. The test is the index itself, so a pass cut
short by a restart carries on where it stopped, and once all are indexed a start reads no
conversation again (but those whose first message has no text, a file sent alone: read,
nothing written). An older conversation continued before the pass reached it keeps its new
turn's rows: only the messages before the first indexed one are added (`SearchIndex.fill`).
On PostgreSQL one replica does it, under an advisory lock; the others leave it to that one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

from langgraph.graph.state import CompiledStateGraph

from ollamastack.agent.sealing import thread
from ollamastack.storage.memory import Memory
from ollamastack.storage.search import searchable

PAGE = 200  # sessions listed and checked at a time: each read is short beside a turn's
GIVE_UP = 5  # conversations failing in a row: the database is gone, the next start carries on
FLUSH_SECONDS = 5.0  # how long closing waits for the index writes still queued

log = logging.getLogger(__name__)


def owner_of(label: str) -> str:
    """The user whose sessions are under a session-index namespace label (the reverse of
    `storage.memory.owner_namespace`).

    >>> from ollamastack.storage.memory import owner_namespace
    >>> [owner_of(owner_namespace(user)[1]) for user in ("", "john.doe", "zoë")]
    ['', 'john.doe', 'zoë']
    """
    return "" if label == "anonymous" else bytes.fromhex(label.removeprefix("user-")).decode()


async def unindexed(memory: Memory) -> AsyncIterator[tuple[str, str]]:
    """(session id, owner) of every conversation not indexed from its first message, a page
    of the session index at a time. Pages run newest first: a session touched while they are
    read moves to the front and may be missed (its turn is indexed; the next start sees the
    rest)."""
    offset = 0
    while True:
        items = await memory.store.asearch(("sessions",), limit=PAGE, offset=offset)
        owners = {item.key: owner_of(item.namespace[1]) for item in items}
        indexed = await memory.search.indexed_from_start(list(owners)) if owners else set()
        for session_id, owner in owners.items():
            if session_id not in indexed:
                yield session_id, owner
        if len(items) < PAGE:
            return
        offset += PAGE


async def backfill(memory: Memory, graph: CompiledStateGraph) -> int | None:
    """Index the conversations missing from the search index; how many were indexed, or None
    when another replica is doing it."""
    indexed = failed = 0
    async with memory.search.backfill_lock() as ours, aclosing(unindexed(memory)) as missing:
        if not ours:
            return None
        async for session_id, owner in missing:
            try:
                state = await graph.aget_state(thread(session_id))
                entries = searchable(state.values.get("messages", []))
                if entries:
                    await memory.search.fill(session_id, owner, entries)
                    indexed += 1
                failed = 0
            except Exception:  # one unreadable conversation does not stop the others
                log.exception("could not index session %s for search", session_id)
                failed += 1
                if failed == GIVE_UP:
                    raise
    if indexed:
        log.info("indexed %d earlier conversations for search", indexed)
    return indexed


async def _logged(memory: Memory, graph: CompiledStateGraph) -> int | None:
    try:
        return await backfill(memory, graph)
    except Exception:  # the database went away: the next start carries on
        log.exception("could not index earlier conversations for search")
        return None


@asynccontextmanager
async def search_upkeep(memory: Memory, graph: CompiledStateGraph) -> AsyncIterator[None]:
    """While the chat service is open: the backfill runs in the background (its task is
    `memory.search.backfill`); on close it is stopped, and the index writes still queued
    (`SearchIndex.flush`) are made before the database closes."""
    task = asyncio.get_running_loop().create_task(_logged(memory, graph))
    memory.search.backfill = task
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])
        memory.search.backfill = None
        try:
            await asyncio.wait_for(memory.search.flush(), FLUSH_SECONDS)
        except TimeoutError:
            log.warning("the search index's last writes were not made: the database is slow")
