"""Background work that gives way to people waiting. A document's passages are embedded in
steps (a request to Ollama each): no step starts, and no reply is decoded, while another
conversation is answering, for up to `patience` seconds each time. On a box whose cores also
run the chats, each step's work (Ollama computing the vectors, the app decoding ~250 KB of
JSON holding the GIL) otherwise slows their first tokens (BENCHMARKS-documents.md); giving
way bounds that to what is under way, and `patience` keeps a busy server from starving the
document.

The HTTP client that embeds calls `give_way()` from its response hook, before it reads the
body: it holds only a thread doing `Pace.running` work (never a question's embedding)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PATIENCE = 0.25  # seconds a step waits at most for the others' turns
POLL = 0.005  # seconds between looks

_running = threading.local()  # .pace: the Pace whose work this thread is doing


class Pace:
    """`wait()` before each step, from the step's thread; `busy()` says whether others are
    being answered now (never, until the chat service sets it)."""

    def __init__(self, busy: Callable[[], bool] = lambda: False, *,
                 patience: float = PATIENCE, poll: float = POLL) -> None:
        self.busy, self.patience, self.poll = busy, patience, poll
        self.waited = 0.0  # seconds given way in all, for benchmarks and tests

    def wait(self) -> None:
        """Block while `busy()`, `patience` s at most. Not on the event loop."""
        if not self.busy():
            return
        began = time.monotonic()
        deadline = began + self.patience
        while self.busy() and time.monotonic() < deadline:
            time.sleep(self.poll)
        self.waited += time.monotonic() - began

    @contextmanager
    def running(self) -> Iterator[None]:
        """This thread does this pace's work meanwhile: `give_way` may hold it."""
        _running.pace = self
        try:
            yield
        finally:
            _running.pace = None


def give_way(*_: Any) -> None:
    """Wait as the pace of the work this thread is doing says, if any (an httpx hook)."""
    pace = getattr(_running, "pace", None)
    if pace is not None:
        pace.wait()
