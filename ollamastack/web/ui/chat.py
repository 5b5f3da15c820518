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
from collections.abc import AsyncIterator, Callable, KeysView
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, NamedTuple

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import OllamaStackError, RateLimited
from ollamastack.events import Started, TurnError
from ollamastack.settings import Settings
from ollamastack.storage.memory import TITLE_CHARS
from ollamastack.web.coalesce import FRAME_SECONDS, any_delta, frames
from ollamastack.web.edge import Caller, Edge, Entry, caller_of, user_of
from ollamastack.web.ui.chat_view import TurnView, history_view
from ollamastack.web.ui.conversations import Conversations, conversation_list, known_conversations
from ollamastack.web.ui.status import open_service, status_line, toast_errors, waiting_title, warn

if TYPE_CHECKING:
    from ollamastack.agent.service import ChatService

UPDATE_INTERVAL = FRAME_SECONDS  # while tokens stream, the chat is resent ~20 times a second
SETTLE_TIMEOUT = 10.0  # how long to wait for a stopped turn to be stored

Chat = list[Any]  # gr.ChatMessage, or the dicts the Chatbot hands back
SKIP = gr.skip()
BUSY = "This conversation is still answering: wait for it, or press Stop."


class TurnUpdate(NamedTuple):
    """What a turn's handler sends, in the order of its outputs; unset ones stay as they are."""

    chat: Any = SKIP
    box: Any = SKIP  # the message box: emptied when sent, refilled when refused
    session_id: Any = SKIP
    status: Any = SKIP
    streaming: Any = SKIP  # True from the first update to the last (see `settle`)
    conversations: Any = SKIP
    listing: Any = SKIP


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
        self._turns: dict[str, asyncio.Event] = {}  # sessions answering now; set once stored

    @property
    def answering(self) -> KeysView[str]:
        """The sessions answering now (a live view, for the other handlers to check)."""
        return self._turns.keys()

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
        model = model or self.settings.model
        audited = self.edge.audit(
            "ui_send", caller, session_id=session_id or "", model=model, message=message
        )
        with audited as entry:
            if not self._counted(entry, caller):
                yield TurnUpdate()  # the message stays in the box, to send a little later
                return
            options = (model, temperature, system_prompt, show_thinking)
            turn = self._turn(
                message, list(history or []), session_id, list(conversations or []), *options,
                caller.user, entry,
            )
            async with aclosing(turn) as updates:
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
        model = model or self.settings.model
        with self.edge.audit("ui_retry", caller, session_id=session_id, model=model) as entry:
            if not self._counted(entry, caller):  # before the undo: the turn stays
                yield TurnUpdate()
                return
            service = await open_service(self.handle)
            try:  # what the turn checks first: if it would fail, keep the turn there is
                await service.engines.capabilities(model)
            except OllamaStackError as error:
                entry.fail(error)
                warn(str(error))
                yield TurnUpdate(status=await status_line(service.engines, model))
                return
            text = await self._undo(service, session_id, caller.user)
            if not text:
                yield TurnUpdate()
                return
            entry.message = text
            with toast_errors():
                messages = await service.history(session_id, caller.user)
            history = history_view(messages, show_thinking=show_thinking)
            options = (model, temperature, system_prompt, show_thinking)
            turn = self._turn(text, history, session_id, None, *options, caller.user, entry)
            async with aclosing(turn) as updates:
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
            if (running := self._turns.get(session_id)) is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(running.wait(), SETTLE_TIMEOUT)
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
        message: str,
        history: Chat,
        session_id: str,
        conversations: Conversations | None,
        model: str,
        temperature: float,
        system_prompt: str,
        show_thinking: bool,
        user: str,
        entry: Entry,
    ) -> AsyncIterator[TurnUpdate]:
        service = await open_service(self.handle)
        if session_id in self._turns:
            entry.outcome, entry.error = "refused", BUSY
            warn(BUSY)
            yield TurnUpdate()
            return
        stored = asyncio.Event()  # set once the turn is over and stored, however it ended
        key = session_id
        if key:
            self._turns[key] = stored
        try:
            view = TurnView(
                show_thinking=show_thinking, waiting=await waiting_title(service.engines, model)
            )
            chat = [*history, gr.ChatMessage(role="user", content=message.strip())]
            yield TurnUpdate([*chat, *view.messages()], "", streaming=True)
            events = service.stream_turn(
                message,
                session_id=session_id,
                user=user,
                model=model,
                temperature=temperature,
                system_prompt=system_prompt,
            )
            failure: OllamaStackError | None = None
            updates = frames(events, self.update_interval, may_wait=any_delta, clock=self.clock)
            try:
                async with aclosing(updates) as batches:
                    async for batch in batches:  # one chat update per frame
                        changed = False
                        for now, event in batch:
                            if isinstance(event, Started):
                                entry.session_id = event.session_id
                                if not key:  # a new conversation: it joins the side list now
                                    key = event.session_id
                                    self._turns[key] = stored
                                    yield TurnUpdate(session_id=key, **self._listed(
                                        key, message, conversations
                                    ))
                                continue
                            view.apply(event, now)
                            changed = True
                            if isinstance(event, TurnError):
                                failure = event.error
                        if changed and not view.finished:
                            yield TurnUpdate([*chat, *view.messages()])
            except OllamaStackError as refused:  # raised, not streamed: nothing was stored
                entry.fail(refused)
                warn(str(refused))
                yield TurnUpdate(history, message, streaming=False)
                return
            if failure is not None:
                entry.fail(failure)
                warn(str(failure))
            status = await status_line(service.engines, model)
            yield TurnUpdate([*chat, *view.messages()], status=status, streaming=False)
        finally:
            stored.set()
            if key and self._turns.get(key) is stored:
                del self._turns[key]

    def _counted(self, entry: Entry, caller: Caller) -> bool:
        """Count one message against the rate limit; False (with a toast) when over it."""
        try:
            self.edge.count_message(caller)
        except RateLimited as error:
            entry.fail(error)
            warn(str(error))
            return False
        return True

    @staticmethod
    def _listed(
        session_id: str, message: str, conversations: Conversations | None
    ) -> dict[str, Any]:
        """A new conversation first in the side list, titled by its first message."""
        if conversations is None:
            return {}
        title = " ".join(message.split())[:TITLE_CHARS]
        mine = [{"id": session_id, "title": title}, *conversations]
        return {"conversations": mine, "listing": conversation_list(mine, session_id)}

    async def _undo(self, service: ChatService, session_id: str, user: str) -> str:
        if not session_id:
            warn("There is nothing to undo or retry yet.")
            return ""
        if session_id in self._turns:
            warn(BUSY)
            return ""
        with toast_errors():
            text = await service.undo_last_turn(session_id, user)
        if not text:
            warn("There is nothing to undo or retry yet.")
        return text
