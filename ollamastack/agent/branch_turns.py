"""The chat service's branches: a user message edited (or retried) is answered from the state
just before it, and what was answered before stays as a sibling branch to move back to
(`branches.py` reads them from the checkpoints)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AnyMessage, HumanMessage, RemoveMessage
from langgraph.graph import END
from langgraph.graph.state import CompiledStateGraph

from ollamastack import validation
from ollamastack.agent.approval import AwaitingApproval, pending_approvals, turn_options
from ollamastack.agent.attachments import carried_ids, turn_files, vision_model
from ollamastack.agent.branches import BranchInfo, Outlines, Tree
from ollamastack.agent.sealing import thread
from ollamastack.engines.factory import Engines
from ollamastack.errors import InvalidInput, NeedsVision, OllamaStackError
from ollamastack.events import Event, Started, TurnError
from ollamastack.settings import Settings
from ollamastack.storage.memory import Memory, session_title
from ollamastack.storage.search import searchable

if TYPE_CHECKING:
    from ollamastack.agent.attachments import DocumentContext
    from ollamastack.agent.service import _Running

Options = tuple[str, float, str, int | None]  # model, temperature, prompt, max_tokens


class BranchTurns:
    """`edit_message`, `retry_turn`, `branches` and `switch_branch` of `ChatService`."""

    settings: Settings
    graph: CompiledStateGraph
    memory: Memory
    engines: Engines
    outlines: Outlines

    if TYPE_CHECKING:  # in ChatService and TurnStreaming
        async def _load(self, session_id: str, user: str) -> str: ...
        def _claim(self, session_id: str) -> _Running: ...
        def _release(self, session_id: str, running: _Running) -> None: ...
        async def history(self, session_id: str, user: str = "") -> list[AnyMessage]: ...
        def _observed(self, events: AsyncIterator[Event], user: str, model: str,
                      message: str | None) -> AsyncIterator[Event]: ...
        def _run(self, turn_input: dict, session_id: str, model: str, temperature: float,
                 prompt: str, capabilities: Sequence[str], max_tokens: int | None = None,
                 user: str = "", documents: DocumentContext = ...,
                 pictures: tuple[tuple[str, str], ...] = ()) -> AsyncIterator[Event]: ...

    async def branches(self, session_id: str, user: str = "") -> list[BranchInfo]:
        """Each user message of the active branch (at its index in `history`): which of its
        versions it is and how many there are."""
        session_id = await self._load(session_id, user)
        return (await self.outlines.tree(self.graph.checkpointer, session_id)).info()

    async def edit_message(
        self, session_id: str, message_index: int, message: str, *, user: str = "",
        model: str = "", temperature: float | None = None, system_prompt: str = "",
    ) -> AsyncIterator[Event]:
        """Answer `message` in place of the user message at `message_index` of `history`, as
        a new branch from the state just before it, streaming like `stream_turn`; the earlier
        branch is kept. The message keeps its files; options left empty are the turn's.

        Refused before anything changes: `SessionNotFound` (another user's conversation
        too); `InvalidInput` for an index not of a user message, empty (unless the message
        has files) or over-long text, bad options; `SessionBusy` while it answers or waits
        for a tool's approval.
        """
        session_id = await self._load(session_id, user)
        running = self._claim(session_id)
        try:
            tree = await self.outlines.tree(self.graph.checkpointer, session_id)
            index = tree.user_message(message_index)
            edited = (await self.history(session_id, user))[index]
            refs = list(edited.additional_kwargs.get("attachments") or [])
            text = validation.clean_text(message, what="message", allow_empty=bool(refs),
                                         limit=self.settings.max_message_chars)
            options = await self._options(tree.turn_options(index), model, temperature,
                                          system_prompt)
            await self._not_waiting(session_id)
            async with aclosing(self._observed(
                self._edited(tree, index, edited.text, text, refs, session_id, user, options),
                user, options[0], text,
            )) as events:
                async for event in events:
                    yield event
        finally:
            self._release(session_id, running)

    async def retry_turn(
        self, session_id: str, *, user: str = "", model: str = "",
        temperature: float | None = None, system_prompt: str = "",
    ) -> AsyncIterator[Event]:
        """Answer the last user message again as a sibling branch: `edit_message` with its
        own text (and files). `InvalidInput` when the conversation has none."""
        messages = await self.history(session_id, user)
        asked = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
        if not asked:
            raise InvalidInput("This conversation has no message to answer again.")
        async with aclosing(self.edit_message(
            session_id, asked[-1], messages[asked[-1]].text, user=user, model=model,
            temperature=temperature, system_prompt=system_prompt,
        )) as events:
            async for event in events:
                yield event

    async def switch_branch(
        self, session_id: str, message_index: int, branch: int, user: str = ""
    ) -> list[AnyMessage]:
        """Make version `branch` (from 1) of the user message at `message_index` active, as
        it was last left; returns the conversation now active. Refused before anything
        changes like `edit_message`, and for a branch that does not exist."""
        session_id = await self._load(session_id, user)
        running = self._claim(session_id)
        try:
            tree = await self.outlines.tree(self.graph.checkpointer, session_id)
            index = tree.user_message(message_index)
            chosen = tree.branch(index, branch)
            was = await self.history(session_id, user)
            if chosen == tree.ids[index]:
                return was
            await self._not_waiting(session_id)
            # a checkpoint continuing the branch's tip, with its values: the newest now
            await self.graph.aupdate_state(tree.tip(index, chosen).config, None, as_node=END)
            messages = await self.history(session_id, user)
            await self.memory.search.add(session_id, user, index, searchable(messages, index))
            if index == 0:
                await self._retitle(session_id, user, was[0].text, messages[0].text)
            return messages
        finally:
            self._release(session_id, running)

    async def _not_waiting(self, session_id: str) -> None:
        """`AwaitingApproval` while a tool call waits: leaving its branch would drop it."""
        if waiting := await pending_approvals(self.graph, thread(session_id)):
            raise AwaitingApproval(waiting[0].name)

    async def _options(
        self, turn: dict, model: str, temperature: float | None, system_prompt: str
    ) -> Options:
        """The edit's model, temperature, prompt and answer length: those given (checked),
        else those of the turn edited, else the server's."""
        settings = self.settings
        was_model, was_temperature, was_prompt, max_tokens = turn_options(turn)
        model = (validation.model_name(model, registries=settings.registries) if model
                 else was_model or await self.engines.default_model())
        if temperature is not None:
            temperature = validation.temperature(temperature)
        prompt = validation.clean_text(system_prompt, what="system prompt", limit=8000,
                                       allow_empty=True)
        temperature = next(t for t in (temperature, was_temperature, settings.temperature)
                           if t is not None)
        return model, temperature, prompt or was_prompt or settings.system_prompt, max_tokens

    async def _edited(
        self, tree: Tree, index: int, was: str, text: str, refs: list[dict], session_id: str,
        user: str, options: Options,
    ) -> AsyncIterator[Event]:
        model, temperature, prompt, max_tokens = options
        try:
            capabilities = await self.engines.capabilities(model)
        except OllamaStackError as error:
            yield TurnError(session_id, error)
            return
        store = self.memory.documents
        kept = {f.id for f in await store.files(user, session_id)} if store is not None else set()
        refs = [ref for ref in refs if ref.get("id") in kept]  # files removed since are not
        if not (text or refs):
            raise InvalidInput("The message is empty.")
        if any(ref.get("kind") == "image" for ref in refs) and "vision" not in capabilities:
            raise NeedsVision(model, await vision_model(self.engines))
        yield Started(session_id, model)
        async def carried() -> set[str]:  # what the messages before the edited one carry
            state = await self.graph.aget_state(thread(session_id))
            earlier = state.values.get("messages", [])[:index]
            return carried_ids(earlier) | {str(ref["id"]) for ref in refs}

        documents, pictures = await turn_files(store, self.engines, self.settings, user,
                                               session_id, text, capabilities, model,
                                               carried=carried)
        extra: dict[str, Any] = {"attachments": refs} if refs else {}
        if documents.sources:
            extra["sources"] = [source.as_dict() for source in documents.sources]
        await self._fork(tree, index)
        await self.memory.sessions.touch(session_id, user, text)
        if index == 0:
            await self._retitle(session_id, user, was, text)
        message = HumanMessage(text, id=str(uuid.uuid4()), additional_kwargs=extra)
        async with aclosing(self._run({"messages": [message]}, session_id, model, temperature,
                                      prompt, capabilities, max_tokens, user,
                                      documents, pictures)) as events:
            async for event in events:  # its end indexes the new branch from `index` on
                yield event

    async def _fork(self, tree: Tree, index: int) -> None:
        """Make the state just before the message at `index` the latest checkpoint. Where
        no checkpoint holds exactly that, the active one is copied less the messages from
        `index` on: the copy is a sibling, so the active branch stays a tip either way."""
        if (before := tree.fork_point(index)) is not None:
            await self.graph.aupdate_state(before.config, None, as_node="__copy__")
            return
        removed = [RemoveMessage(id=message_id) for message_id in tree.ids[index:]]
        await self.graph.aupdate_state(tree.checkpoints[0].config,
                                       [({"messages": removed}, "model")], as_node="__copy__")

    async def _retitle(self, session_id: str, user: str, was: str, now: str) -> None:
        """A title made from the first message follows it to another branch; one the user
        chose stays."""
        info = (await self.memory.sessions.found(user, [session_id])).get(session_id)
        if info is not None and was.strip() and now.strip() and info.title == session_title(was):
            await self.memory.sessions.rename(session_id, user, session_title(now))
