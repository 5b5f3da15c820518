"""The chat service: sessions, history and tools here; its turns in `turn_streaming.py`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.messages import AnyMessage, HumanMessage, RemoveMessage
from langchain_core.tools import BaseTool
from langgraph.graph.state import CompiledStateGraph

from ollamastack import validation
from ollamastack.agent.approval import Pending, pending_approvals
from ollamastack.agent.branch_turns import BranchTurns
from ollamastack.agent.branches import Outlines
from ollamastack.agent.graph import build_agent
from ollamastack.agent.prompted_tools import choice_prompt
from ollamastack.agent.sealing import seal_cut_off_turn, thread
from ollamastack.agent.toolbox import Toolbox, ToolInfo, summary
from ollamastack.agent.turn_streaming import TurnStreaming, tool_mode
from ollamastack.bus import EventBus
from ollamastack.engines.factory import Engines
from ollamastack.engines.ollama.client import OllamaClient
from ollamastack.engines.ollama.pool import OllamaPool
from ollamastack.engines.types import EMBEDDED
from ollamastack.errors import SessionBusy, SessionNotFound
from ollamastack.lifecycle import ConversationDeleted, ModelDeleted, ModelPulled
from ollamastack.pace import Pace
from ollamastack.settings import Settings
from ollamastack.storage.memory import Memory, SessionInfo
from ollamastack.storage.search import Found

log = logging.getLogger(__name__)

STOP_SECONDS = 10.0  # how long deleting a conversation waits for its running turn to stop


@dataclass
class _Running:
    """A turn in progress: the task reading it (cancelled to stop it), set once it is stored."""

    task: asyncio.Task | None
    stored: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class ChatService(TurnStreaming, BranchTurns):
    """The core's whole surface for the UI and API: turns, history, sessions, branches.

    Every call takes the `user` (empty without login); sessions of other users do not exist
    for it. `ollama` is the one Ollama instance, or the pool of several that keeps each
    session on one of them.
    """

    settings: Settings
    graph: CompiledStateGraph
    memory: Memory
    engines: Engines
    tools: Sequence[BaseTool] = ()  # the tools the graph offers (for warming prompts)
    toolbox: Toolbox | None = None  # where they come from; refreshed by `refresh_tools`
    bus: EventBus | None = None  # the app's observers hear what happens here (`lifecycle.py`)
    answer_cache: BaseCache | None = None  # OLLAMASTACK_CACHE: kept when the graph is rebuilt
    # sessions looked at since this process started: a turn cut off by a crash is sealed
    # the first time its session is loaded again (turns of this process seal themselves)
    _loaded: set[str] = field(default_factory=set, repr=False)
    # sessions answering now: a second message to one of them is refused (`SessionBusy`)
    _running: dict[str, _Running] = field(default_factory=dict, repr=False)
    # what branches need of each conversation's checkpoints, read once (`branches.py`)
    outlines: Outlines = field(default_factory=Outlines, repr=False)
    _ingesting: int = field(default=0, repr=False)  # of them, storing a message's files now

    def __post_init__(self) -> None:
        if self.memory.documents is not None:  # embedding gives way to the others' turns
            self.memory.documents.pace = Pace(self._others_answering)

    def _others_answering(self) -> bool:
        """Whether a session answers that is not storing files (from any thread)."""
        return len(self._running) > self._ingesting

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

    async def search_conversations(self, query: str, user: str = "") -> list[Found]:
        """`user`'s conversations holding every word of `query`, newest match first: where
        (the message's index in `history`), a plain-text snippet and the title. Conversations
        deleted and waiting for their undo are left out. A bad query: `InvalidInput`."""
        hits = await self.memory.search.search(user, query)
        infos = await self.memory.sessions.found(user, [hit.session_id for hit in hits])
        return [
            Found(hit.session_id, infos[hit.session_id].title, hit.snippet, hit.message_index)
            for hit in hits if hit.session_id in infos
        ]

    async def rename_session(self, session_id: str, title: str, user: str = "") -> str:
        """Give `user`'s conversation a title (`validation.title`); returns it as stored."""
        title = validation.title(title)
        await self.memory.sessions.rename(session_id, user, title)
        return title

    async def history(self, session_id: str, user: str = "") -> list[AnyMessage]:
        session_id = await self._load(session_id, user)
        state = await self.graph.aget_state(thread(session_id))
        return list(state.values.get("messages", []))

    async def image(self, session_id: str, file_id: str, user: str = "") -> tuple[str, bytes]:
        """An image attached in `user`'s conversation: its type and bytes (to show it again);
        `SessionNotFound` for another user's conversation or an unknown file."""
        session_id = await self.memory.sessions.check(session_id, user)
        store = self.memory.documents
        files = {f.id: f for f in await store.files(user, session_id)} if store else {}
        if file_id not in files or files[file_id].kind != "image":
            raise SessionNotFound(session_id)
        return files[file_id].mime, await store.image(user, session_id, file_id)

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

    @property
    def in_flight(self) -> int:
        """How many sessions are answering now (metrics)."""
        return len(self._running)

    def _emit(self, event: Any) -> None:
        if self.bus is not None:
            self.bus.emit(event)

    async def pull_model(self, name: str, user: str = "") -> AsyncIterator[Any]:
        """Ollama's progress pulling `name` (validated by the caller); `ModelPulled` once done."""
        async with aclosing(self.engines.pull(name)) as progress:
            async for step in progress:
                yield step
        self._models_changed()
        self._emit(ModelPulled(name, user))

    async def delete_model(self, name: str, user: str = "") -> None:
        await self.engines.delete(name)
        self._models_changed()
        self._emit(ModelDeleted(name, user))

    def _models_changed(self) -> None:
        if self.engines.embedder is not None:  # the embedding model may have come or gone
            self.engines.embedder.forget()

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
        await self.memory.search.remove(session_id)
        if self.memory.documents is not None:
            await self.memory.documents.delete_session(user, session_id)
        await self.memory.sessions.delete(session_id, user)
        self._loaded.discard(session_id)
        self._emit(ConversationDeleted(session_id, user))

    async def undo_last_turn(self, session_id: str, user: str = "") -> str:
        """Forget the last turn: the last user message and all that followed it, and the
        files it brought unless another branch carries them.

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
        await self.memory.search.remove(session_id, asked[-1])
        files = [ref["id"] for m in removed for ref in m.additional_kwargs.get("attachments", [])]
        if files and self.memory.documents is not None:
            shared = (await self.outlines.tree(self.graph.checkpointer, session_id)
                      ).files_elsewhere()  # an edit in another branch keeps its files
            files = [file_id for file_id in files if file_id not in shared]
            await self.memory.documents.remove(user, session_id, files)
        return removed[0].text

    async def refresh_tools(self) -> list[ToolInfo]:
        """List the MCP servers again; when their tools changed, the graph is compiled anew
        (turns already answering finish on the old one; stored turns carry on in the new)."""
        if self.toolbox is None:
            return self.tool_entries()
        before = [tool.name for tool in self.tools]
        tools = await self.toolbox.refresh()
        if [tool.name for tool in tools] != before:
            self.graph = build_agent(self.settings, self.memory.checkpointer, tools, self.engines,
                                     self.answer_cache)
            self.tools = list(tools)
        return self.toolbox.entries()

    def tool_entries(self) -> list[ToolInfo]:
        """Every tool as last listed, MCP servers that did not answer included."""
        if self.toolbox is None:
            return [ToolInfo(tool.name, "", summary(tool), True) for tool in self.tools]
        return self.toolbox.entries()

    async def waiting_call(self, session_id: str, user: str = "") -> Pending | None:
        """The tool call of `session_id` waiting for the user's approval, or None."""
        session_id = await self._load(session_id, user)
        waiting = await pending_approvals(self.graph, thread(session_id))
        return waiting[0] if waiting else None


__all__ = ["ChatService", "tool_mode"]
