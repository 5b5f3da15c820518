"""A turn's stream read once more, for the observers: what it did, as lifecycle events on the
app's bus (`bus.py`). It only looks at the events going by; the turn never waits for it."""

from __future__ import annotations

import time
from collections.abc import Callable

from ollamastack.bus import EventBus
from ollamastack.events import (
    ApprovalPending,
    Done,
    Event,
    Started,
    TextDelta,
    ToolCall,
    ToolResult,
    TurnError,
)
from ollamastack.lifecycle import STOPPED, ToolCalled, TurnCompleted, TurnFailed, TurnStarted


class TurnObserver:
    """Emits `TurnStarted`, a `ToolCalled` per tool result, then exactly one of `TurnCompleted`
    or `TurnFailed` (also when the turn's reader went away: `close` says "stopped").
    With `content`, the message and the answer's text go along (`OLLAMASTACK_LOG_CONTENT`)."""

    def __init__(
        self, bus: EventBus, user: str, model: str, *, message: str | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.bus, self.user, self.model, self.message, self.clock = bus, user, model, message, clock
        self.session_id = ""
        self.started = clock()
        self.calls: dict[str, tuple[str, float]] = {}  # open tool calls: id -> (name, since)
        self.tools: list[str] = []
        self.answer: list[str] | None = [] if message is not None else None
        self.reads_text = self.answer is not None  # else the tokens need not be shown to it
        self.paused = False
        self.ended = False

    def see(self, event: Event) -> None:
        kind = type(event)
        if kind is TextDelta:  # by far the most frequent: one per token
            if self.answer is not None:
                self.answer.append(event.text)  # type: ignore[union-attr]
        elif kind is Started:
            self.session_id, self.model = event.session_id, event.model or self.model  # type: ignore[union-attr]
            self.bus.emit(TurnStarted(self.session_id, self.user, self.model, self.message))
        elif kind is ToolCall:
            self.calls[event.id] = (event.name, self.clock())  # type: ignore[union-attr]
        elif kind is ToolResult:
            self._tool(event)  # type: ignore[arg-type]
        elif kind is ApprovalPending:
            self.paused = True
        elif kind is Done:
            self._done(event)  # type: ignore[arg-type]
        elif kind is TurnError:
            error = event.error  # type: ignore[union-attr]
            self.session_id = self.session_id or event.session_id  # type: ignore[union-attr]
            self._end(type(error).__name__, str(error))

    def close(self) -> None:
        """The turn's stream is over: a turn that neither finished nor failed was stopped."""
        if not self.ended:
            self._end(STOPPED, "")

    def _tool(self, result: ToolResult) -> None:
        name, since = self.calls.pop(result.id, (result.name, self.started))
        self.tools.append(name)
        self.bus.emit(ToolCalled(self.session_id, self.user, self.model, name,
                                 self.clock() - since, "error" if result.is_error else "ok"))

    def _done(self, done: Done) -> None:
        self.ended = True
        stats = done.stats
        self.bus.emit(TurnCompleted(
            self.session_id, self.user, self.model, stats.prompt_tokens, stats.completion_tokens,
            stats.time_to_first_token, self.clock() - self.started, tuple(self.tools),
            bool(getattr(stats, "cached", False)), self.paused,
            None if self.answer is None else "".join(self.answer),
        ))

    def _end(self, kind: str, error: str) -> None:
        self.ended = True
        self.bus.emit(TurnFailed(self.session_id, self.user, self.model, kind, error,
                                 self.clock() - self.started, tuple(self.tools)))
