"""Assemble the core from settings: database, Ollama client, tools, graph, chat service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ollamastack.agent import build_agent
from ollamastack.chat import ChatService
from ollamastack.memory import open_memory
from ollamastack.ollama_client import OllamaClient
from ollamastack.settings import Settings
from ollamastack.tools import build_tools


@asynccontextmanager
async def open_chat_service(settings: Settings) -> AsyncIterator[ChatService]:
    """Everything a UI or API needs, opened once and closed on exit."""
    ollama = OllamaClient(settings.ollama_host, settings.request_timeout)
    try:
        async with open_memory(settings) as memory:
            graph = build_agent(settings, memory.checkpointer, build_tools(settings))
            yield ChatService(settings, graph, memory, ollama)
    finally:
        await ollama.close()
