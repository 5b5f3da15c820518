"""Assemble the core from settings: database, Ollama client, tools, graph, chat service."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from ollamastack.settings import Settings

if TYPE_CHECKING:
    from ollamastack.agent.service import ChatService
    from ollamastack.bus import EventBus


@asynccontextmanager
async def open_chat_service(
    settings: Settings, bus: EventBus | None = None
) -> AsyncIterator[ChatService]:
    """Everything a UI or API needs, opened once and closed on exit; its lifecycle events
    go to `bus` (the app's; None: nowhere)."""
    # LangChain, LangGraph and the database drivers load here, on first use: not at start-up.
    from ollamastack.agent.answer_cache import ExpiringCache
    from ollamastack.agent.graph import build_agent
    from ollamastack.agent.search_backfill import search_upkeep
    from ollamastack.agent.service import ChatService
    from ollamastack.agent.toolbox import Toolbox
    from ollamastack.agent.tools import build_tools
    from ollamastack.documents import extract as documents
    from ollamastack.engines.factory import open_engines
    from ollamastack.storage.memory import open_memory

    engines = open_engines(settings)  # Ollama (one or several) and the embedded model
    try:
        embeddings = engines.embedder.embeddings if engines.embedder is not None else None
        async with open_memory(settings, embeddings=embeddings) as memory:
            toolbox = Toolbox(settings, build_tools(settings))
            tools = await toolbox.refresh()  # the MCP servers' tools; one that is down: none
            cache = ExpiringCache(settings.cache_ttl) if settings.cache else None
            graph = build_agent(settings, memory.checkpointer, tools, engines, cache)
            async with search_upkeep(memory, graph):  # older conversations indexed meanwhile
                yield ChatService(settings, graph, memory, engines, tools, toolbox,
                                  answer_cache=cache, bus=bus)
    finally:
        await engines.close()
        documents.shutdown()  # the worker processes that read attached documents


class ServiceHandle:
    """Opens the chat service on first use, inside the server's own event loop.

    The database connection and HTTP pool belong to the loop that opened them, and Gradio
    serves from its own loop in its own thread, so the service cannot be opened earlier.
    """

    def __init__(self, settings: Settings, bus: EventBus | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self._opening: asyncio.Task[ChatService] | None = None
        self._stack = AsyncExitStack()

    @property
    def current(self) -> ChatService | None:
        """The chat service once it is open, else None (nothing is opened here)."""
        opening = self._opening
        if opening is None or not opening.done() or opening.cancelled():
            return None
        return None if opening.exception() is not None else opening.result()

    async def get(self) -> ChatService:
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self._opening)
        except Exception:
            self._opening = None  # e.g. the data directory was not writable: try again later
            raise

    async def _open(self) -> ChatService:
        service = await self._stack.enter_async_context(
            open_chat_service(self.settings, self.bus))
        # The agent's graph, tools and clients live as long as the process: frozen with the
        # rest of start-up (see `web.preload_core`), full collections stay short (~12 ms).
        gc.freeze()
        return service

    async def close(self) -> None:
        """Close what was opened; an open still in progress (a database that does not
        answer yet) is cancelled rather than awaited, so shutdown does not wait for it."""
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
            await asyncio.wait([self._opening])
        await self._stack.aclose()
        self._opening = None
