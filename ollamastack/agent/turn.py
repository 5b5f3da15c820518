"""One running turn: the agent's stream turned into typed events, and sealed however it ends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace

from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from ollamastack.agent.approval import pending_approvals, turn_metadata
from ollamastack.agent.graph import TurnContext
from ollamastack.agent.sealing import seal_turn, thread
from ollamastack.agent.text_tool_calls import may_become_call
from ollamastack.engines.ollama.client import OllamaClient, translate_error
from ollamastack.engines.ollama.pool import OllamaPool
from ollamastack.errors import OllamaError, OllamaUnavailable
from ollamastack.events import (
    STOPPED_BY_USER,
    ApprovalPending,
    Done,
    Event,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolResult,
    TurnError,
    TurnStats,
)

log = logging.getLogger(__name__)


class Turn:
    """The state of one running turn: what has streamed, and how to seal it on failure."""

    def __init__(
        self,
        graph: CompiledStateGraph,
        session_id: str,
        context: TurnContext,
        ollama: OllamaClient | OllamaPool,
    ) -> None:
        self.graph, self.session_id, self.context, self.ollama = graph, session_id, context, ollama
        self.stats = TurnStats()
        self.partial = ""  # answer text of the model call in progress
        # While that text may still be a tool call written as text, it is held back: shown
        # once it cannot be one, or dropped when the model call ends as a call (repair.py).
        self.holding = context.tool_mode == "native"
        self.refused: list[str] = []  # instances of the pool that refused this turn
        self.paused = False  # the graph stopped at an interrupt: a tool waits for approval

    async def run(self, turn_input: dict | Command) -> AsyncIterator[Event]:
        """Run the graph from `turn_input`: the new user message, or the user's answer to a
        tool call waiting for approval (`Command(resume=...)`)."""
        started = time.perf_counter()
        finished = False
        context = self.context
        config = thread(self.session_id) | {"metadata": turn_metadata(
            context.model, context.temperature, context.system_prompt, context.max_tokens)}
        try:
            while True:
                try:
                    stream = self.graph.astream(
                        turn_input,
                        config,
                        context=self.context,
                        stream_mode=["messages", "updates", "custom"],
                    )
                    async with aclosing(stream):
                        async for mode, data in stream:
                            for event in self._events(mode, data, started):
                                yield event
                    break
                except Exception as error:
                    if not self._move_on(error):
                        raise
                    turn_input = None  # resume from the last checkpoint: redo the failed call
            if self.paused:
                pending = await pending_approvals(self.graph, thread(self.session_id))
                if pending:
                    call = pending[0]
                    yield ApprovalPending(self.session_id, call.call_id, call.name, call.args)
            self.stats.total_seconds = time.perf_counter() - started
            finished = True
            yield Done(self.session_id, self.stats)
        except Exception as error:
            typed = translate_error(
                error, url=self.context.ollama_url or self.ollama.url, model=self.context.model,
                timeout=self.ollama.request_timeout,
            )
            if isinstance(typed, OllamaUnavailable) and len(self.refused) > 1:
                typed = OllamaUnavailable(", ".join(self.refused))
            if typed is None:
                log.exception("turn failed in session %s", self.session_id)
                typed = OllamaError(f"unexpected {type(error).__name__}; see the server log")
            await self._seal(str(typed))
            finished = True
            yield TurnError(self.session_id, typed)
        finally:
            if not finished:  # cancelled (Stop) or the consumer went away
                await asyncio.shield(self._seal(STOPPED_BY_USER))

    def _move_on(self, error: Exception) -> bool:
        """With a pool, when the session's instance refused the connection (so no token of
        this model call streamed): move the session to its next instance, for a retry."""
        if not isinstance(self.ollama, OllamaPool):
            return False
        url = self.context.ollama_url
        if not isinstance(translate_error(error, url=url), OllamaUnavailable):
            return False
        self.refused.append(url)
        moved = self.ollama.move(self.session_id, url, tried=self.refused)
        if moved is None:
            return False
        self.context = replace(self.context, ollama_url=moved)
        return True

    def _events(self, mode: str, data: object, started: float) -> list[Event]:
        if mode == "custom":  # what the turn's middleware reports (see graph.py)
            if isinstance(data, dict) and "messages_left_out" in data:
                self.stats.messages_left_out = int(data["messages_left_out"])
            return []
        if mode == "messages":
            chunk, _ = data  # type: ignore[misc]
            cached = isinstance(chunk, AIMessage) and chunk.response_metadata.get("cached")
            if not isinstance(chunk, AIMessageChunk) and not cached:
                return []
            if cached:  # a whole answer from the answer cache: Ollama did no work
                self.stats.cached = True
            events: list[Event] = []
            if thinking := chunk.additional_kwargs.get("reasoning_content"):
                events.append(ThinkingDelta(thinking))
            if isinstance(chunk.content, str) and chunk.content:
                self.partial += chunk.content
                if self.holding and not may_become_call(self.partial):
                    self.holding = False
                    events.append(self._text(self.partial, started))
                elif not self.holding:
                    events.append(self._text(chunk.content, started))
            if chunk.response_metadata.get("done") and not cached:
                self.stats.add(chunk.response_metadata)
            return events
        events = []
        for node, update in (data or {}).items():  # type: ignore[union-attr]
            if node == "__interrupt__":
                self.paused = True
                continue
            for message in (update or {}).get("messages", []):
                if isinstance(message, AIMessage):
                    if self.holding and self.partial and not message.tool_calls:
                        events.append(self._text(self.partial, started))  # not a call after all
                    self.partial, self.holding = "", self.context.tool_mode == "native"
                    calls = message.tool_calls
                    events += [ToolCall(c["id"] or "", c["name"], c["args"]) for c in calls]
                elif isinstance(message, ToolMessage) and node == "tools":
                    events.append(
                        ToolResult(
                            message.tool_call_id,
                            message.name or "",
                            message.text,
                            is_error=message.status == "error",
                        )
                    )
        return events

    def _text(self, text: str, started: float) -> TextDelta:
        if self.stats.time_to_first_token is None:
            self.stats.time_to_first_token = time.perf_counter() - started
        return TextDelta(text)

    async def _seal(self, reason: str) -> None:
        await seal_turn(self.graph, self.session_id, self.partial, reason)
