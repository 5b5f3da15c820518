"""The embedding model that indexes documents: `settings.embed_model` on the first Ollama host.

`OllamaEmbedder.embeddings` is LangChain's `OllamaEmbeddings` (what LangGraph's store calls
to index and to search) whose failures are the app's typed errors, so a document refused
half-way says "Ollama is not reachable at ..." rather than an httpx traceback. `ready()` says
whether vectors can be made at all (the model is installed and has Ollama's "embedding"
capability); when not, documents are searched by keywords instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import ollama
from langchain_ollama import OllamaEmbeddings

from ollamastack.engines.ollama.client import ollama_timeout, translate_error
from ollamastack.errors import OllamaStackError
from ollamastack.pace import give_way
from ollamastack.settings import Settings

READY_FOR = 30.0  # seconds `ready()` trusts its last answer: a pull elsewhere shows up soon


class TypedOllamaEmbeddings(OllamaEmbeddings):
    """`OllamaEmbeddings` raising `OllamaUnavailable`, `ModelNotFound`, `OllamaError`,
    `OllamaTimeout` or `OllamaConnectionLost`. The sync calls serve threads: the document
    store embeds passages in one (decoding a reply holds the GIL, so not on the event loop)
    and the SQLite store's index runs on its own; `embed_query` and `aembed_query` go through
    these two."""

    request_timeout: float = 300.0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        try:
            return super().embed_documents(texts)
        except Exception as error:
            raise self._typed(error) from None

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        try:
            return await super().aembed_documents(texts)
        except Exception as error:
            raise self._typed(error) from None

    def _typed(self, error: Exception) -> Exception:
        typed = translate_error(
            error, url=self.base_url or "", model=self.model, timeout=self.request_timeout
        )
        return typed if isinstance(typed, OllamaStackError) else error


class OllamaEmbedder:
    """`settings.embed_model` on `settings.ollama_host`: the LangChain embeddings, and
    whether the model can make vectors now."""

    def __init__(
        self,
        settings: Settings,
        *,
        ready_for: float = READY_FOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = settings.embed_model
        self.url = settings.ollama_host
        timeout = ollama_timeout(settings.request_timeout)
        self.embeddings = TypedOllamaEmbeddings(
            model=self.model, base_url=self.url, client_kwargs={"timeout": timeout},
            request_timeout=settings.request_timeout,
            # a document's passages (sync, in a thread) give way before a reply is read
            sync_client_kwargs={"event_hooks": {"response": [give_way]}},
        )
        self._client = ollama.AsyncClient(host=self.url, timeout=ollama_timeout(5.0))
        self._ready_for = ready_for
        self._clock = clock
        self._known: tuple[float, bool] | None = None  # (until, answer)

    async def ready(self) -> bool:
        """True when the model is installed and has the "embedding" capability (`/api/show`);
        False when it is not, or Ollama is down. Never raises; remembered `ready_for` s."""
        now = self._clock()
        if self._known is not None and now < self._known[0]:
            return self._known[1]
        try:
            shown = await self._client.show(self.model)
            answer = "embedding" in (shown.capabilities or ())
        except Exception:  # down, missing, or an answer we cannot read: no vectors now
            answer = False
        self._known = (now + self._ready_for, answer)
        return answer

    def forget(self) -> None:
        """Ask Ollama again next time (the model was just pulled or deleted)."""
        self._known = None
