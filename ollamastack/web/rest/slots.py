"""The bound on REST and OpenAI turns answering at once.

Gradio's queue allows `OLLAMASTACK_CONCURRENCY` generations of each of the page's and named
API's events at a time; the REST and OpenAI routes do not go through that queue, so they share
a bound of their own with the same number. A turn over it waits, in order of arrival, as an
event waits in Gradio's queue: refusing it would make every script retry in a loop, while a
wait is what a client with a timeout already expects of a model that is busy. A client that
hangs up while waiting gives its place up: its turn never runs (and is never stored).
"""

from __future__ import annotations

import asyncio

import anyio

from ollamastack.web.http import Receive


async def hung_up(receive: Receive) -> None:
    """Return once the client has closed the connection (its body has been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class TurnSlots:
    """At most `size` turns answering at once; the others wait for one to end. Made once per
    launch (an asyncio semaphore belongs to the event loop that first waits on it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.answering = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(size)

    async def take(self, receive: Receive) -> bool:
        """Wait for a slot; True once it is held (give it back with `release`), False when
        the client hung up first (then none is held)."""
        if not self._free.locked():
            await self._free.acquire()  # free: returns without suspending
            self.answering += 1
            return True
        held = False
        self.waiting += 1
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    await hung_up(receive)
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                await self._free.acquire()
                held = True
                self.answering += 1
                group.cancel_scope.cancel()
        except BaseException:
            if held:  # the request itself was cancelled after the slot came
                self.release()
            raise
        finally:
            self.waiting -= 1
        return held

    def release(self) -> None:
        self.answering -= 1
        self._free.release()
