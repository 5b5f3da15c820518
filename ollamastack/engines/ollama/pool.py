"""Several Ollama instances (one per GPU): each session keeps one, and moves only when it is down.

Ollama keeps the evaluated prompt of a conversation in the slot that answered it, so the next
turn of that session only evaluates the new message, on that instance. A session's instance is
the first of its rendezvous order (highest-random-weight hashing of the session id over the
URLs): the same in every app process, and sessions spread evenly. An instance that refuses a
connection is marked down for `RETRY_AFTER` seconds; its sessions move to the next instance of
their order and stay there (remembered by this process) after it comes back, since their
context is warm on the new one now.

`OllamaPool` also has `OllamaClient`'s surface for the UI and API (health, models, pull,
delete), answered by the first instance that is up, primary first. The instances are expected
to share one model store (deploy/compose.multi-gpu.yml): a pull through one is a pull for all.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import TypeVar

from ollamastack.engines.ollama.client import OllamaClient
from ollamastack.engines.types import Health, ModelInfo, PullProgress, RunningModel
from ollamastack.errors import OllamaUnavailable
from ollamastack.settings import Settings

log = logging.getLogger(__name__)

RETRY_AFTER = 10.0  # seconds an instance that refused a connection is skipped
REMEMBERED_MOVES = 100_000  # sessions whose move this process remembers, least recent dropped

T = TypeVar("T")


def rendezvous_order(session_id: str, urls: Sequence[str]) -> list[str]:
    """The instances in `session_id`'s order of preference; the same in every process.

    >>> urls = ["http://gpu0:11434", "http://gpu1:11434", "http://gpu2:11434"]
    >>> [rendezvous_order(s, urls)[0] for s in ("alice-chat", "carol-chat", "dave-chat")]
    ['http://gpu1:11434', 'http://gpu0:11434', 'http://gpu2:11434']
    >>> rendezvous_order("alice-chat", urls)
    ['http://gpu1:11434', 'http://gpu0:11434', 'http://gpu2:11434']

    Without an instance, only its sessions move (to their second choice):

    >>> [rendezvous_order(s, urls[:2])[0] for s in ("alice-chat", "carol-chat", "dave-chat")]
    ['http://gpu1:11434', 'http://gpu0:11434', 'http://gpu0:11434']
    """

    def weight(url: str) -> bytes:
        return hashlib.blake2b(f"{url}\n{session_id}".encode(), digest_size=8).digest()

    return sorted(urls, key=weight, reverse=True)


def connect(settings: Settings) -> OllamaClient | OllamaPool:
    """A client for the one Ollama instance, or a pool when `OLLAMA_HOST` lists several."""
    clients = [OllamaClient(url, settings.request_timeout) for url in settings.ollama_hosts]
    return clients[0] if len(clients) == 1 else OllamaPool(clients)


class OllamaPool:
    """One `OllamaClient` per instance, the session routing, and the client surface for the UI."""

    def __init__(
        self,
        clients: Sequence[OllamaClient],
        *,
        retry_after: float = RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = {client.url: client for client in clients}
        self.urls = list(self.clients)
        self.retry_after = retry_after
        self._clock = clock
        self._down_until: dict[str, float] = {}
        self._moved: OrderedDict[str, str] = OrderedDict()  # session -> instance not its first

    @property
    def url(self) -> str:
        """The primary instance."""
        return self.urls[0]

    @property
    def request_timeout(self) -> float:
        return self.clients[self.url].request_timeout

    # -- routing ---------------------------------------------------------------

    def is_up(self, url: str) -> bool:
        """False while `url` is skipped after refusing a connection."""
        return self._down_until.get(url, 0.0) <= self._clock()

    def mark_down(self, url: str) -> None:
        self._down_until[url] = self._clock() + self.retry_after

    def instance_for(self, session_id: str) -> str:
        """The instance that answers `session_id` now."""
        return self._assign(session_id, self._candidates(session_id)[0])

    def move(self, session_id: str, refused: str, tried: Collection[str]) -> str | None:
        """`refused` did not take the connection: mark it down and return the session's next
        instance, which keeps the session from now on; None once all were `tried`."""
        self.mark_down(refused)
        for url in self._candidates(session_id):
            if url != refused and url not in tried:
                log.warning("Ollama at %s is down; session %s moves to %s",
                            refused, session_id, url)
                return self._assign(session_id, url)
        return None

    def _candidates(self, session_id: str) -> list[str]:
        """Where the session was moved to, then its rendezvous order; instances up first."""
        order = rendezvous_order(session_id, self.urls)
        if (kept := self._moved.get(session_id)) in self.clients:
            order = [kept, *(url for url in order if url != kept)]
        return sorted(order, key=lambda url: not self.is_up(url))  # stable

    def _assign(self, session_id: str, url: str) -> str:
        if url == rendezvous_order(session_id, self.urls)[0]:
            self._moved.pop(session_id, None)
        else:
            self._moved[session_id] = url
            self._moved.move_to_end(session_id)
            if len(self._moved) > REMEMBERED_MOVES:
                self._moved.popitem(last=False)
        return url

    # -- the OllamaClient surface, for the UI and API ----------------------------

    def _by_preference(self) -> list[OllamaClient]:
        return [self.clients[url] for url in sorted(self.urls, key=lambda u: not self.is_up(u))]

    async def _first_up(self, call: Callable[[OllamaClient], Awaitable[T]]) -> T:
        """`call` on the first instance that takes the connection, primary first."""
        for client in self._by_preference():
            try:
                return await call(client)
            except OllamaUnavailable:
                self.mark_down(client.url)
        raise OllamaUnavailable(", ".join(self.urls))

    async def health(self) -> Health:
        """The first reachable instance's health; the primary's when none is reachable."""
        primary = None
        for client in self._by_preference():
            health = await client.health()
            if health.reachable:
                return health
            primary = health if client.url == self.url else primary
        assert primary is not None
        return primary

    async def version(self) -> str:
        return await self._first_up(lambda client: client.version())

    async def capabilities(self, model: str) -> tuple[str, ...]:
        return await self._first_up(lambda client: client.capabilities(model))

    async def context_length(self, model: str) -> int | None:
        return await self._first_up(lambda client: client.context_length(model))

    async def list_models(self) -> list[ModelInfo]:
        return await self._first_up(lambda client: client.list_models())

    async def running_models(self) -> list[RunningModel]:
        return await self._first_up(lambda client: client.running_models())

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """Pull through the first instance that is up; the others see the shared store."""
        self._forget(model)
        for client in self._by_preference():
            started = False
            try:
                async for step in client.pull(model):
                    started = True
                    yield step
            except OllamaUnavailable:
                if started:
                    raise
                self.mark_down(client.url)
                continue
            self._forget(model)
            return
        raise OllamaUnavailable(", ".join(self.urls))

    async def delete(self, model: str) -> None:
        await self._first_up(lambda client: client.delete(model))
        self._forget(model)

    def _forget(self, model: str) -> None:
        for client in self.clients.values():
            client.forget(model)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
