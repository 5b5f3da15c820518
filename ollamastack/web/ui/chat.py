"""The chat tab's event handlers: a turn streamed into the chat, Stop, Retry and Undo (the
page's load, model picker and status line are `ui_page.py`'s).

Plain async functions of the page's values: `build_ui` wires them to the components, tests
call them directly. The user always comes from the request (login), so the chat service's owner
checks apply to every call; the `Edge` shared with the API counts each message against the
rate limit and records each turn in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Container
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import OllamaStackError, RateLimited, TooManyTurns
from ollamastack.events import Started, TurnError
from ollamastack.settings import Settings
from ollamastack.storage.memory import session_title
from ollamastack.web.audit import Entry
from ollamastack.web.coalesce import FRAME_SECONDS, any_delta
from ollamastack.web.edge import Caller, Edge, caller_of, user_of
from ollamastack.web.turns import TurnPipeline, TurnRequest
from ollamastack.web.ui.chat_view import TurnView, history_view
from ollamastack.web.ui.conversations import Conversations, conversation_list, known_conversations
from ollamastack.web.ui.safe_markdown import safe_markdown
from ollamastack.web.ui.status import (
    SKIP,
    open_service,
    shows_internals,
    status_line,
    toast_errors,
    waiting_title,
    warn,
)

if TYPE_CHECKING:
    from ollamastack.agent.service import ChatService

UPDATE_INTERVAL = FRAME_SECONDS  # while tokens stream, the chat is resent ~20 times a second
SETTLE_TIMEOUT = 10.0  # how long to wait for a stopped turn to be stored

Chat = list[Any]  # gr.ChatMessage, or the dicts the Chatbot hands back


class TurnUpdate(NamedTuple):
    """What a turn's handler sends, in the order of its outputs; unset ones stay as they are."""

    chat: Any = SKIP
    box: Any = SKIP  # the message box: emptied when sent, refilled when refused
    session_id: Any = SKIP
    status: Any = SKIP
    streaming: Any = SKIP  # True from the first update to the last (see `settle`)
    conversations: Any = SKIP
    listing: Any = SKIP


class AnsweringSessions:
    """`session_id in answering`: whether the chat service is answering in that session."""

    def __init__(self, handle: ServiceHandle) -> None:
        self.handle = handle

    def __contains__(self, session_id: object) -> bool:
        service = self.handle.current
        return service is not None and service.answering(str(session_id)) is not None


class ChatHandlers:
    """Everything the chat tab does, over one chat service."""

    def __init__(
        self,
        settings: Settings,
        handle: ServiceHandle,
        *,
        edge: Edge | None = None,
        update_interval: float = UPDATE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.handle = handle
        self.edge = edge or Edge(settings)
        self.update_interval = update_interval
        self.clock = clock
        self.turns = TurnPipeline(handle, self.edge)

    @property
    def answering(self) -> Container[str]:
        """The sessions answering now, as the chat service knows them (for other handlers)."""
        return AnsweringSessions(self.handle)

    # -- a turn -------------------------------------------------------------------------

    async def send(
        self,
        message: str,
        history: Chat,
        session_id: str,
        conversations: Conversations,
        model: str,
        temperature: float,
        system_prompt: str,
        show_thinking: bool,
        request: gr.Request | None = None,
    ) -> AsyncIterator[TurnUpdate]:
        """Stream the answer to `message`; a new conversation joins the side list at once."""
        if not (message or "").strip():
            yield TurnUpdate()
            return
        caller = caller_of(request)
        turn = TurnRequest(message, session_id, model, temperature, system_prompt)
        internals = shows_internals(self.settings, request)
        updates = self._admitted("ui_send", caller, turn, lambda entry: self._turn(
            turn, list(history or []), list(conversations or []), show_thinking, caller.user,
            entry, internals,
        ))
        async with aclosing(updates):
            async for update in updates:
                yield update

    async def retry(
        self,
        session_id: str,
        model: str,
        temperature: float,
        system_prompt: str,
        show_thinking: bool,
        request: gr.Request | None = None,
    ) -> AsyncIterator[TurnUpdate]:
        """Ask the last message again: its turn is forgotten and answered anew."""
        caller = caller_of(request)
        turn = TurnRequest("", session_id, model, temperature, system_prompt)
        internals = shows_internals(self.settings, request)
        updates = self._admitted("ui_retry", caller, turn, lambda entry: self._retry(  # counted
            turn, show_thinking, caller.user, entry, internals,  # before the undo
        ))
        async with aclosing(updates):
            async for update in updates:
                yield update

    async def _admitted(
        self, endpoint: str, caller: Caller, turn: TurnRequest,
        updates: Callable[[Entry], AsyncIterator[TurnUpdate]],
    ) -> AsyncIterator[TurnUpdate]:
        """`updates(entry)` once the turn pipeline admits the caller; over the rate limit or
        their turns in flight, a toast (recorded), and the page stays as it was."""
        try:
            with self.turns.admitted(endpoint, caller, turn) as entry:
                async with aclosing(updates(entry)) as admitted:
                    async for update in admitted:
                        yield update
        except (RateLimited, TooManyTurns) as refused:
            warn(str(refused))
            yield TurnUpdate()

    async def _retry(
        self, turn: TurnRequest, show_thinking: bool, user: str, entry: Entry, internals: bool
    ) -> AsyncIterator[TurnUpdate]:
        service = await open_service(self.handle)
        model = turn.model or await service.engines.default_model()
        try:  # what the turn checks first: if it would fail, keep the turn there is
            await service.engines.capabilities(model)
        except OllamaStackError as error:
            entry.fail(error)
            warn(str(error))
            yield TurnUpdate(status=await status_line(service.engines, model, internals=internals))
            return
        text = await self._undo(service, turn.session_id, user)
        if not text:
            yield TurnUpdate()
            return
        entry.message = text
        with toast_errors():
            messages = await service.history(turn.session_id, user)
        history = history_view(messages, show_thinking=show_thinking)
        updates = self._turn(replace(turn, message=text), history, None, show_thinking, user,
                             entry, internals)
        async with aclosing(updates):
            async for update in updates:
                yield update

    async def undo(
        self, session_id: str, show_thinking: bool, request: gr.Request | None = None
    ) -> tuple[Any, Any]:
        """Forget the last turn; its message goes back into the box to edit: (chat, box)."""
        caller = caller_of(request)
        with self.edge.audit("ui_undo", caller, session_id=session_id):
            service = await open_service(self.handle)
            text = await self._undo(service, session_id, caller.user)
            if not text:
                return SKIP, SKIP
            with toast_errors():
                messages = await service.history(session_id, caller.user)
            return history_view(messages, show_thinking=show_thinking), text

    async def settle(
        self,
        session_id: str,
        streaming: bool,
        conversations: Conversations,
        show_thinking: bool,
        request: gr.Request | None = None,
    ) -> tuple[Any, bool, Conversations, dict]:
        """After a turn however it ended: list its conversation; after Stop, show what was kept.

        Returns (chat, streaming, conversations, side list). `streaming` still True means the
        turn never sent its last update (Stop cancelled it): the chat is reloaded from memory,
        where the partial answer is stored, marked as stopped.
        """
        user = user_of(request)
        service = await open_service(self.handle)
        chat: Any = SKIP
        if session_id and streaming:
            if (stored := service.answering(session_id)) is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stored.wait(), SETTLE_TIMEOUT)
            with toast_errors():
                messages = await service.history(session_id, user)
            chat = history_view(messages, show_thinking=show_thinking)
        ids = [c for c in conversations or [] if isinstance(c, dict)]
        if session_id and all(c.get("id") != session_id for c in ids):
            ids.insert(0, {"id": session_id, "title": ""})
        known = await known_conversations(service, user, ids)
        return chat, False, known, conversation_list(known, session_id)

    async def _turn(
        self,
        turn: TurnRequest,
        history: Chat,
        conversations: Conversations | None,
        show_thinking: bool,
        user: str,
        entry: Entry,
        internals: bool,
    ) -> AsyncIterator[TurnUpdate]:
        """One turn on the page; `internals`: the status line may say where Ollama runs."""
        service = await open_service(self.handle)
        model = turn.model or await service.engines.default_model()
        view = TurnView(
            show_thinking=show_thinking, waiting=await waiting_title(service.engines, model)
        )
        chat = [*history, gr.ChatMessage(role="user", content=safe_markdown(turn.message.strip()))]
        yield TurnUpdate([*chat, *view.messages()], "", streaming=True)
        batches = self.turns.frames(
            entry, user, turn, interval=self.update_interval, may_wait=any_delta, clock=self.clock
        )
        try:
            async with aclosing(batches):
                async for batch in batches:  # one chat update per frame
                    changed = False
                    for now, event in batch:
                        if isinstance(event, Started):
                            model = event.model or model
                            if not turn.session_id:  # a new conversation joins the list now
                                yield TurnUpdate(session_id=event.session_id, **self._listed(
                                    event.session_id, turn.message, conversations
                                ))
                            continue
                        view.apply(event, now)
                        changed = True
                        if isinstance(event, TurnError):
                            warn(str(event.error))
                    if changed and not view.finished:
                        yield TurnUpdate([*chat, *view.messages()])
        except OllamaStackError as refused:  # raised, not streamed: nothing was stored
            entry.fail(refused)
            warn(str(refused))
            yield TurnUpdate(history, turn.message, streaming=False)
            return
        status = await status_line(service.engines, model, internals=internals)
        yield TurnUpdate([*chat, *view.messages()], status=status, streaming=False)

    @staticmethod
    def _listed(
        session_id: str, message: str, conversations: Conversations | None
    ) -> dict[str, Any]:
        """A new conversation first in the side list, titled by its first message."""
        if conversations is None:
            return {}
        mine = [{"id": session_id, "title": session_title(message)}, *conversations]
        return {"conversations": mine, "listing": conversation_list(mine, session_id)}

    async def _undo(self, service: ChatService, session_id: str, user: str) -> str:
        if not session_id:
            warn("There is nothing to undo or retry yet.")
            return ""
        with toast_errors():  # a conversation still answering: SessionBusy says so
            text = await service.undo_last_turn(session_id, user)
        if not text:
            warn("There is nothing to undo or retry yet.")
        return text
