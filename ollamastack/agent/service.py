"""One chat turn as a stream of typed events, and the sessions it is stored in."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langgraph.graph.state import CompiledStateGraph

from ollamastack import validation
from ollamastack.agent.graph import TurnContext
from ollamastack.agent.sealing import seal_cut_off_turn, seal_turn, thread
from ollamastack.engines.factory import Engines
from ollamastack.engines.ollama.client import OllamaClient, translate_error
from ollamastack.engines.ollama.pool import OllamaPool
from ollamastack.engines.types import OLLAMA
from ollamastack.errors import OllamaError, OllamaStackError, OllamaUnavailable
from ollamastack.events import (
    Done,
    Event,
    Started,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolResult,
    TurnError,
    TurnStats,
)
from ollamastack.settings import Settings
from ollamastack.storage.memory import Memory, SessionInfo

log = logging.getLogger(__name__)



@dataclass
class ChatService:
    """The core's whole surface for the UI and API: turns, history, sessions.

    Every call takes the `user` (empty without login); sessions of other users do not exist
    for it. `ollama` is the one Ollama instance, or the pool of several that keeps each
    session on one of them.
    """

    settings: Settings
    graph: CompiledStateGraph
    memory: Memory
    engines: Engines
    # sessions looked at since this process started: a turn cut off by a crash is sealed
    # the first time its session is loaded again (turns of this process seal themselves)
    _loaded: set[str] = field(default_factory=set, repr=False)

    @property
    def ollama(self) -> OllamaClient | OllamaPool:
        """The Ollama instance, or the pool of several (the embedded model is in `engines`)."""
        return self.engines.ollama

    async def _load(self, session_id: str, user: str) -> str:
        session_id = await self.memory.sessions.check(session_id, user)
        if session_id not in self._loaded:
            self._loaded.add(session_id)
            await seal_cut_off_turn(self.graph, session_id)
        return session_id

    async def new_session(self, user: str = "") -> str:
        session_id = await self.memory.sessions.create(user)
        self._loaded.add(session_id)
        return session_id

    async def sessions(self, user: str = "") -> list[SessionInfo]:
        return await self.memory.sessions.list(user)

    async def history(self, session_id: str, user: str = "") -> list[AnyMessage]:
        session_id = await self._load(session_id, user)
        state = await self.graph.aget_state(thread(session_id))
        return list(state.values.get("messages", []))

    async def delete_session(self, session_id: str, user: str = "") -> None:
        session_id = await self.memory.sessions.check(session_id, user)
        await self.memory.checkpointer.adelete_thread(session_id)
        await self.memory.sessions.delete(session_id, user)
        self._loaded.discard(session_id)

    async def undo_last_turn(self, session_id: str, user: str = "") -> str:
        """Forget the last turn: the last user message and all that followed it.

        Returns that message's text (to edit or send again), or "" when there was none.
        """
        session_id = await self.memory.sessions.check(session_id, user)
        config = thread(session_id)
        messages = (await self.graph.aget_state(config)).values.get("messages", [])
        asked = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
        if not asked:
            return ""
        removed = messages[asked[-1]:]
        await self.graph.aupdate_state(
            config, {"messages": [RemoveMessage(id=m.id) for m in removed]}, as_node="model"
        )
        return removed[0].text

    async def stream_turn(
        self,
        message: str,
        *,
        session_id: str = "",
        user: str = "",
        model: str = "",
        temperature: float | None = None,
        system_prompt: str = "",
    ) -> AsyncIterator[Event]:
        """Answer `message` in `session_id` (a new session when empty), streaming events.

        The first event is `Started` with the session id, once the turn is accepted. Bad
        input raises `InvalidInput` before anything is stored. Ollama's failures end
        the stream with a `TurnError`; what was streamed so far is stored, marked as
        interrupted, so the conversation stays valid for the next turn.
        """
        settings = self.settings
        text = validation.clean_text(message, what="message", limit=settings.max_message_chars)
        model = validation.model_name(model) if model else await self.engines.default_model()
        temperature = (
            settings.temperature if temperature is None else validation.temperature(temperature)
        )
        prompt = validation.clean_text(
            system_prompt, what="system prompt", limit=8000, allow_empty=True
        ) or settings.system_prompt
        if session_id:
            session_id = await self._load(session_id, user)
        try:
            capabilities = await self.engines.capabilities(model)
        except OllamaStackError as error:
            yield TurnError(session_id, error)
            return
        if not session_id:
            session_id = await self.new_session(user)
        await self.memory.sessions.touch(session_id, user, text)
        yield Started(session_id)
        context = TurnContext(
            model=model,
            temperature=temperature,
            system_prompt=prompt,
            use_tools="tools" in capabilities,
            think=True if "thinking" in capabilities else None,
            ollama_url=(
                self.ollama.instance_for(session_id)
                if isinstance(self.ollama, OllamaPool) and self.engines.engine_of(model) == OLLAMA
                else ""
            ),
        )
        turn = _Turn(self.graph, session_id, context, self.ollama)
        # aclosing: when our consumer stops (aclose), the turn seals its partial answer now,
        # not whenever the garbage collector finalizes the inner generator.
        async with aclosing(turn.run(text)) as events:
            async for event in events:
                yield event


class _Turn:
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
        self.refused: list[str] = []  # instances of the pool that refused this turn

    async def run(self, text: str) -> AsyncIterator[Event]:
        started = time.perf_counter()
        finished = False
        turn_input: dict | None = {"messages": [HumanMessage(text)]}
        try:
            while True:
                try:
                    stream = self.graph.astream(
                        turn_input,
                        thread(self.session_id),
                        context=self.context,
                        stream_mode=["messages", "updates"],
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
                await asyncio.shield(self._seal("stopped by the user"))

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
        if mode == "messages":
            chunk, _ = data  # type: ignore[misc]
            if not isinstance(chunk, AIMessageChunk):
                return []
            events: list[Event] = []
            if thinking := chunk.additional_kwargs.get("reasoning_content"):
                events.append(ThinkingDelta(thinking))
            if isinstance(chunk.content, str) and chunk.content:
                if self.stats.time_to_first_token is None:
                    self.stats.time_to_first_token = time.perf_counter() - started
                self.partial += chunk.content
                events.append(TextDelta(chunk.content))
            if chunk.response_metadata.get("done"):
                self._count(chunk.response_metadata)
            return events
        events = []
        for node, update in (data or {}).items():  # type: ignore[union-attr]
            for message in (update or {}).get("messages", []):
                if isinstance(message, AIMessage):
                    self.partial = ""
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

    def _count(self, metadata: dict) -> None:
        stats = self.stats
        stats.model_calls += 1
        stats.prompt_tokens += int(metadata.get("prompt_eval_count") or 0)
        stats.completion_tokens += int(metadata.get("eval_count") or 0)
        stats.eval_seconds += int(metadata.get("eval_duration") or 0) / 1e9
        stats.done_reason = str(metadata.get("done_reason") or "")

    async def _seal(self, reason: str) -> None:
        await seal_turn(self.graph, self.session_id, self.partial, reason)
