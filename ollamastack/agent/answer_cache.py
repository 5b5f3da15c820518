"""The opt-in answer cache (`OLLAMASTACK_CACHE`): a model call at temperature 0 whose model,
options, system prompt, tools and whole conversation match an earlier one of the same user
is answered from memory, without calling Ollama.

LangChain does the caching: a chat model given `cache=` looks each call up by its messages
(`prompt`) and its model, options and tools (`llm_string`) before calling, and stores the
answer only after a whole generation came back, so a failed, cut or stopped answer (an
exception, a cancellation) is never stored. Here are only what LangChain leaves open:

- `ExpiringCache`: its `BaseCache` interface over a dict whose entries expire after
  `OLLAMASTACK_CACHE_TTL` seconds (LangChain's `InMemoryCache` never forgets);
- `ScopedCache`: one user's view of it (with login nobody is answered from another's turns);
- `CachedAnswers`: the middleware that gives the turn's chat model the user's cache, at
  temperature 0 only, and sends the conversation without Ollama's per-call bookkeeping
  (`response_metadata`: timings, dates) so that the same words make the same key.

A hit comes back from LangChain whole, not token by token; its message carries
`response_metadata["cached"] = True`, which the turn turns into `TurnStats.cached`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.outputs import ChatGeneration

CACHED = "cached"  # the key of `response_metadata` that marks an answer from the cache
MAX_ENTRIES = 10_000


class ExpiringCache(BaseCache):
    """Answers kept `ttl` seconds, at most `max_entries` (the least recently used go first)."""

    def __init__(self, ttl: float, *, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, RETURN_VAL_TYPE]] = (
            OrderedDict())

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        key = (prompt, llm_string)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return [_marked(generation) for generation in value]

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        key = (prompt, llm_string)
        self._entries[key] = (self.clock() + self.ttl, list(return_val))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self, **kwargs: Any) -> None:
        """Forget every entry; `prefix=`: only those whose `llm_string` starts with it."""
        prefix = str(kwargs.get("prefix", ""))
        for key in [k for k in self._entries if k[1].startswith(prefix)]:
            del self._entries[key]

    # a dict needs no thread: BaseCache's async methods would hop to one for each call
    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self.lookup(prompt, llm_string)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self.update(prompt, llm_string, return_val)

    async def aclear(self, **kwargs: Any) -> None:
        self.clear()


class ScopedCache(BaseCache):
    """`cache` as one user sees it: their entries only."""

    def __init__(self, cache: BaseCache, scope: str) -> None:
        self.cache, self.scope = cache, scope

    def _key(self, llm_string: str) -> str:
        return f"user={self.scope!r}\n{llm_string}"

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self.cache.lookup(prompt, self._key(llm_string))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self.cache.update(prompt, self._key(llm_string), return_val)

    def clear(self, **kwargs: Any) -> None:
        """Forget this user's entries (the others' stay)."""
        self.cache.clear(prefix=self._key(""))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return await self.cache.alookup(prompt, self._key(llm_string))

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await self.cache.aupdate(prompt, self._key(llm_string), return_val)


def _marked(generation: Any) -> Any:
    """A copy of a stored generation whose message says it comes from the cache (LangChain
    changes the message it returns; the stored one stays as it was)."""
    if not isinstance(generation, ChatGeneration):
        return generation
    message = generation.message
    metadata = {**message.response_metadata, CACHED: True}
    return generation.model_copy(update={"message": message.model_copy(
        update={"response_metadata": metadata})})


def plain(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """The conversation as the model reads it: answers without their per-call bookkeeping
    (timings, dates, token counts, ids), which Ollama never reads but the cache key would."""
    return [
        m.model_copy(update={"response_metadata": {}, "usage_metadata": None, "id": None})
        if isinstance(m, AIMessage) else m
        for m in messages
    ]


class CachedAnswers(AgentMiddleware):
    """Answers temperature-0 model calls from `cache`, per user (`TurnContext.user`).
    Inside `TurnMiddleware`: it sees the chat model, options and window of this call."""

    def __init__(self, cache: BaseCache) -> None:
        super().__init__()
        self.cache = cache

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        context = request.runtime.context
        if context.temperature != 0:
            return await handler(request)
        model = request.model.model_copy(  # the shared model stays uncached
            update={"cache": ScopedCache(self.cache, context.user)})
        return await handler(request.override(model=model, messages=plain(request.messages)))
