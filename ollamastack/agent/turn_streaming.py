"""The chat service's turns: a message (or the user's answer to a tool call waiting for
approval) in, a stream of typed events out, each seen by the app's observers on the way;
once stored, the turn is made searchable."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING

from langchain_core.messages import HumanMessage
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from ollamastack import validation
from ollamastack.agent.approval import (
    AwaitingApproval,
    NothingToApprove,
    decision,
    pending_approvals,
    turn_options,
)
from ollamastack.agent.attachments import (
    DocumentContext,
    carried_ids,
    checked_files,
    file_refs,
    read_files,
    store_files,
    turn_files,
    vision_model,
)
from ollamastack.agent.graph import TurnContext
from ollamastack.agent.history import current_turn_start
from ollamastack.agent.observer import TurnObserver
from ollamastack.agent.sealing import thread
from ollamastack.agent.turn import Turn
from ollamastack.bus import EventBus
from ollamastack.documents.files import Attachment
from ollamastack.engines.factory import Engines
from ollamastack.engines.ollama.pool import OllamaPool
from ollamastack.engines.types import OLLAMA
from ollamastack.errors import InvalidInput, NeedsVision, OllamaStackError
from ollamastack.events import Event, Sources, Started, TextDelta, ToolCall, TurnError
from ollamastack.settings import Settings
from ollamastack.storage.documents import StoredFile
from ollamastack.storage.memory import Memory
from ollamastack.storage.search import searchable

if TYPE_CHECKING:
    from ollamastack.agent.service import _Running

log = logging.getLogger(__name__)
NO_DOCUMENTS = DocumentContext()


def tool_mode(setting: str, capabilities: tuple[str, ...]) -> str:
    """The turn's tool mode: "auto" is native where the model calls tools itself.

    >>> tool_mode("auto", ("completion", "tools")), tool_mode("auto", ("completion",))
    ('native', 'prompted')
    """
    if setting == "auto":
        return "native" if "tools" in capabilities else "prompted"
    return setting


class TurnStreaming:
    """`stream_turn` and `resume_turn` of `ChatService` (which holds these attributes)."""

    settings: Settings
    graph: CompiledStateGraph
    memory: Memory
    engines: Engines
    bus: EventBus | None
    _ingesting: int  # sessions storing a message's files now

    if TYPE_CHECKING:  # in ChatService: sessions, ownership, one turn at a time per session
        async def _load(self, session_id: str, user: str) -> str: ...
        async def new_session(self, user: str = "") -> str: ...
        def _claim(self, session_id: str) -> _Running: ...
        def _release(self, session_id: str, running: _Running) -> None: ...

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
        files: Sequence[tuple[str, bytes]] = (),
    ) -> AsyncIterator[Event]:
        """Answer `message` in `session_id` (a new session when empty), streaming events.

        The first event is `Started` with the session id and the answering model, once the
        turn is accepted; `Sources` follows when the conversation has documents. Bad input
        (a refused file among `files`, `(name, bytes)` pairs, included) raises `InvalidInput`,
        and a session still answering an earlier message raises `SessionBusy`, before
        anything is stored. Ollama's failures end the stream with a `TurnError`; what was
        streamed so far is stored, marked as interrupted, so the conversation stays valid for
        the next turn.
        """
        settings = self.settings
        text = validation.clean_text(message, what="message", limit=settings.max_message_chars,
                                     allow_empty=bool(files))
        attachments = checked_files(files, settings) if files else []
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
            if session_id and self.settings.confirmed_tools:
                if waiting := await pending_approvals(self.graph, thread(session_id)):
                    raise AwaitingApproval(waiting[0].name)
            async with aclosing(self._observed(
                self._accepted(text, session_id, user, model, temperature, prompt, max_tokens,
                               claimed, attachments),
                user, model, text,
            )) as events:
                async for event in events:
                    yield event
        finally:
            for claimed_id, running in claimed:
                self._release(claimed_id, running)

    async def _accepted(
        self, text: str, session_id: str, user: str, model: str, temperature: float,
        prompt: str, max_tokens: int | None, claimed: list[tuple[str, _Running]],
        attachments: Sequence[Attachment] = (),
    ) -> AsyncIterator[Event]:
        try:
            capabilities = await self.engines.capabilities(model)
        except OllamaStackError as error:
            yield TurnError(session_id, error)
            return
        if any(a.kind == "image" for a in attachments) and "vision" not in capabilities:
            raise NeedsVision(model, await vision_model(self.engines))
        incoming = await read_files(attachments, self.settings) if attachments else None
        new = not session_id
        if new:
            session_id = await self.new_session(user)
            claimed.append((session_id, self._claim(session_id)))
        stored: list[StoredFile] = []
        if incoming is not None:
            self._ingesting += 1  # its embedding gives way to the other sessions' turns
            try:
                stored += await store_files(incoming, self.memory.documents, user, session_id,
                                            embed=await self.engines.embedding_ready())
            except OllamaStackError as error:  # embedding failed: nothing of it was kept
                if new:
                    await self.memory.sessions.delete(session_id, user)
                yield TurnError("" if new else session_id, error)
                return
            finally:
                self._ingesting -= 1
        await self.memory.sessions.touch(session_id, user, text or stored[0].name)
        yield Started(session_id, model)
        documents, pictures = await turn_files(
            self.memory.documents, self.engines, self.settings, user, session_id, text,
            capabilities, model, carried=lambda: self._carried(session_id, stored))
        extra = {"attachments": file_refs(stored)} if stored else {}
        if documents.sources:
            extra["sources"] = [source.as_dict() for source in documents.sources]
        message = HumanMessage(text, id=str(uuid.uuid4()), additional_kwargs=extra)
        async with aclosing(self._run({"messages": [message]}, session_id, model, temperature,
                                      prompt, capabilities, max_tokens, user,
                                      documents, pictures)) as events:
            async for event in events:
                yield event

    async def _carried(self, session_id: str, new: Sequence[StoredFile] = ()) -> set[str]:
        """The files of the active branch of `session_id`, and those of the new message."""
        messages = (await self.graph.aget_state(thread(session_id))).values.get("messages", [])
        return carried_ids(messages) | {file.id for file in new}

    async def resume_turn(
        self, session_id: str, approve: bool, *, user: str = ""
    ) -> AsyncIterator[Event]:
        """Answer the oldest tool call waiting for approval in `session_id` and stream the rest
        of its turn, like `stream_turn`: `Started`, that call's `ToolCall` again, then its
        result. Approved, the tool runs; denied, the model is told the user declined. The
        turn goes on with its own model and prompt.

        Refused before anything changes: `SessionNotFound` for a conversation that is not the
        user's, `NothingToApprove` when no call waits, `SessionBusy` while it answers.
        """
        if not isinstance(approve, bool):
            raise InvalidInput("approve must be true or false")
        session_id = await self._load(session_id, user)
        running = self._claim(session_id)
        try:
            config = thread(session_id)
            waiting = await pending_approvals(self.graph, config)
            if not waiting:
                raise NothingToApprove(session_id)
            metadata = (await self.graph.aget_state(config)).metadata
            model, temperature, prompt, max_tokens = turn_options(metadata)
            model = model or await self.engines.default_model()
            temperature = self.settings.temperature if temperature is None else temperature
            async with aclosing(self._observed(
                self._resumed(session_id, approve, waiting[0], model, temperature,
                              prompt or self.settings.system_prompt, max_tokens, user),
                user, model, None,
            )) as events:
                async for event in events:
                    yield event
        finally:
            self._release(session_id, running)

    async def _resumed(
        self, session_id: str, approve: bool, call: object, model: str, temperature: float,
        prompt: str, max_tokens: int | None, user: str,
    ) -> AsyncIterator[Event]:
        try:
            capabilities = await self.engines.capabilities(model)
        except OllamaStackError as error:
            yield TurnError(session_id, error)
            return
        yield Started(session_id, model)
        yield ToolCall(call.call_id, call.name, call.args)  # type: ignore[attr-defined]
        answer = Command(resume={call.interrupt_id: decision(approve)})  # type: ignore[attr-defined]
        messages = (await self.graph.aget_state(thread(session_id))).values.get("messages", [])
        question = messages[current_turn_start(messages)].text if messages else ""
        documents, pictures = await turn_files(
            self.memory.documents, self.engines, self.settings, user, session_id, question,
            capabilities, model, carried=lambda: self._carried(session_id))
        async with aclosing(self._run(answer, session_id, model, temperature, prompt,
                                      capabilities, max_tokens, user,
                                      documents, pictures)) as events:
            async for event in events:
                yield event

    async def _observed(
        self, events: AsyncIterator[Event], user: str, model: str, message: str | None,
    ) -> AsyncIterator[Event]:
        """`events`, each shown to a `TurnObserver` that tells the bus what the turn did."""
        if self.bus is None:
            async with aclosing(events):
                async for event in events:
                    yield event
            return
        content = message if self.settings.log_content else None
        observer = TurnObserver(self.bus, user, model, message=content)
        try:
            async with aclosing(events):
                async for event in events:
                    if observer.reads_text or type(event) is not TextDelta:
                        observer.see(event)  # the tokens only for the answer's text
                    yield event
        finally:
            observer.close()

    async def _run(
        self, turn_input: dict | Command, session_id: str, model: str, temperature: float,
        prompt: str, capabilities: Sequence[str], max_tokens: int | None = None,
        user: str = "", documents: DocumentContext = NO_DOCUMENTS,
        pictures: tuple[tuple[str, str], ...] = (),
    ) -> AsyncIterator[Event]:
        if documents.sources:
            yield Sources(documents.sources)
        ollama = self.engines.ollama
        context = TurnContext(
            model=model,
            temperature=temperature,
            system_prompt=prompt,
            tool_mode=tool_mode(self.settings.tool_mode, tuple(capabilities)),
            num_ctx=await self.engines.context_length(model),
            max_tokens=max_tokens,
            user=user,
            documents=documents.text,
            document_tokens=documents.tokens,
            pictures=pictures,
            think=True if "thinking" in capabilities else None,
            ollama_url=(
                ollama.instance_for(session_id)
                if isinstance(ollama, OllamaPool) and self.engines.engine_of(model) == OLLAMA
                else ""
            ),
        )
        turn = Turn(self.graph, session_id, context, ollama)
        # aclosing: when our consumer stops (aclose), the turn seals its partial answer now,
        # not whenever the garbage collector finalizes the inner generator.
        try:
            async with aclosing(turn.run(turn_input)) as events:
                async for event in events:
                    yield event
        finally:  # however it ended, what is stored now is indexed (before the session is
            # released, so a delete waiting for it removes these rows too)
            await asyncio.shield(self._index_turn(session_id, user))

    async def _index_turn(self, session_id: str, user: str) -> None:
        """Make the stored turn searchable: its messages from its question on, replacing
        what was indexed from there (a turn resumed after an approval is indexed again). A
        failure is logged: the answer has been given, and search is secondary."""
        try:
            state = await self.graph.aget_state(thread(session_id))
            messages = state.values.get("messages", [])
            start = current_turn_start(messages)
            await self.memory.search.add(session_id, user, start, searchable(messages, start))
        except Exception:
            log.exception("could not index the last turn of session %s for search", session_id)

