"""One chat turn as a stream of typed events, and the sessions it is stored in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from langchain_core.messages import (
    AnyMessage,
    HumanMessage,
    RemoveMessage,
)
from langchain_core.tools import BaseTool
from langgraph.graph.state import CompiledStateGraph

from ollamastack import validation
from ollamastack.agent.graph import TurnContext
from ollamastack.agent.prompted_tools import choice_prompt
from ollamastack.agent.sealing import seal_cut_off_turn, thread
from ollamastack.agent.turn import Turn
from ollamastack.engines.factory import Engines
from ollamastack.engines.ollama.client import OllamaClient
from ollamastack.engines.ollama.pool import OllamaPool
from ollamastack.engines.types import EMBEDDED, OLLAMA
from ollamastack.errors import OllamaStackError, SessionBusy
from ollamastack.events import (
    Event,
    Started,
    TurnError,
)
from ollamastack.settings import Settings
from ollamastack.storage.memory import Memory, SessionInfo

log = logging.getLogger(__name__)

STOP_SECONDS = 10.0  # how long deleting a conversation waits for its running turn to stop


def tool_mode(setting: str, capabilities: tuple[str, ...]) -> str:
    """The turn's tool mode: "auto" is native where the model calls tools itself.

    >>> tool_mode("auto", ("completion", "tools")), tool_mode("auto", ("completion",))
    ('native', 'prompted')
    """
    if setting == "auto":
        return "native" if "tools" in capabilities else "prompted"
    return setting


@dataclass
class _Running:
    """A turn in progress: the task reading it (cancelled to stop it), set once it is stored."""

    task: asyncio.Task | None
    stored: asyncio.Event = field(default_factory=asyncio.Event)


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
    tools: Sequence[BaseTool] = ()  # the tools the graph offers (for warming prompts)
    # sessions looked at since this process started: a turn cut off by a crash is sealed
    # the first time its session is loaded again (turns of this process seal themselves)
    _loaded: set[str] = field(default_factory=set, repr=False)
    # sessions answering now: a second message to one of them is refused (`SessionBusy`)
    _running: dict[str, _Running] = field(default_factory=dict, repr=False)

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

    async def warm(self) -> None:
        """When the embedded model answers by default, load it and evaluate its fixed prompt
        prefixes now (the system prompt; the tool-choice prompt in prompted mode), so that
        the first turn after start is as quick as later ones (llama.cpp reuses them)."""
        model = await self.engines.default_model()
        if self.engines.engine_of(model) != EMBEDDED:
            return
        prompts = [self.settings.system_prompt]
        if tool_mode(self.settings.tool_mode, await self.engines.capabilities(model)) == (
            "prompted"
        ) and self.tools:
            prompts.append(choice_prompt(list(self.tools)))
        await self.engines.warm(model, prompts)

    def answering(self, session_id: str) -> asyncio.Event | None:
        """While `session_id` answers, an event set once its turn is over and stored."""
        running = self._running.get(session_id)
        return None if running is None else running.stored

    def _claim(self, session_id: str) -> _Running:
        """Mark `session_id` as answering, or `SessionBusy` when it already is. No await
        comes between the check and the mark, so two calls at once cannot both pass."""
        if session_id in self._running:
            raise SessionBusy()
        running = self._running[session_id] = _Running(asyncio.current_task())
        return running

    def _release(self, session_id: str, running: _Running) -> None:
        running.stored.set()
        if self._running.get(session_id) is running:
            del self._running[session_id]

    async def delete_session(self, session_id: str, user: str = "") -> None:
        """Delete a conversation and every checkpoint of it; a turn still answering in it is
        stopped first (and its sealing awaited), so nothing is written after the delete."""
        session_id = await self.memory.sessions.check(session_id, user)
        if (running := self._running.get(session_id)) is not None:
            if running.task is not None and running.task is not asyncio.current_task():
                running.task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(running.stored.wait()), STOP_SECONDS)
            except TimeoutError:
                log.warning("turn of session %s did not stop in time; deleting", session_id)
        await self.memory.checkpointer.adelete_thread(session_id)
        await self.memory.sessions.delete(session_id, user)
        self._loaded.discard(session_id)

    async def undo_last_turn(self, session_id: str, user: str = "") -> str:
        """Forget the last turn: the last user message and all that followed it.

        Returns that message's text (to edit or send again), or "" when there was none.
        """
        session_id = await self.memory.sessions.check(session_id, user)
        if session_id in self._running:
            raise SessionBusy()
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
        max_tokens: int | None = None,
    ) -> AsyncIterator[Event]:
        """Answer `message` in `session_id` (a new session when empty), streaming events.

        The first event is `Started` with the session id and the answering model, once the
        turn is accepted. Bad input raises `InvalidInput`, and a session still answering an
        earlier message raises `SessionBusy`, before anything is stored. Ollama's failures end
        the stream with a `TurnError`; what was streamed so far is stored, marked as
        interrupted, so the conversation stays valid for the next turn.
        """
        settings = self.settings
        text = validation.clean_text(message, what="message", limit=settings.max_message_chars)
        model = (
            validation.model_name(model, registries=settings.registries) if model
            else await self.engines.default_model()
        )
        temperature = (
            settings.temperature if temperature is None else validation.temperature(temperature)
        )
        prompt = validation.clean_text(
            system_prompt, what="system prompt", limit=8000, allow_empty=True
        ) or settings.system_prompt
        claimed: list[tuple[str, _Running]] = []  # released however the turn ends
        if session_id:
            session_id = await self._load(session_id, user)
            claimed.append((session_id, self._claim(session_id)))
        try:
            try:
                capabilities = await self.engines.capabilities(model)
            except OllamaStackError as error:
                yield TurnError(session_id, error)
                return
            if not session_id:
                session_id = await self.new_session(user)
                claimed.append((session_id, self._claim(session_id)))
            await self.memory.sessions.touch(session_id, user, text)
            yield Started(session_id, model)
            async with aclosing(self._run(text, session_id, model, temperature, prompt,
                                          capabilities, max_tokens)) as events:
                async for event in events:
                    yield event
        finally:
            for claimed_id, running in claimed:
                self._release(claimed_id, running)

    async def _run(
        self, text: str, session_id: str, model: str, temperature: float, prompt: str,
        capabilities: tuple[str, ...], max_tokens: int | None = None,
    ) -> AsyncIterator[Event]:
        context = TurnContext(
            model=model,
            temperature=temperature,
            system_prompt=prompt,
            tool_mode=tool_mode(self.settings.tool_mode, capabilities),
            num_ctx=await self.engines.context_length(model),
            max_tokens=max_tokens,
            think=True if "thinking" in capabilities else None,
            ollama_url=(
                self.ollama.instance_for(session_id)
                if isinstance(self.ollama, OllamaPool) and self.engines.engine_of(model) == OLLAMA
                else ""
            ),
        )
        turn = Turn(self.graph, session_id, context, self.ollama)
        # aclosing: when our consumer stops (aclose), the turn seals its partial answer now,
        # not whenever the garbage collector finalizes the inner generator.
        async with aclosing(turn.run(text)) as events:
            async for event in events:
                yield event
