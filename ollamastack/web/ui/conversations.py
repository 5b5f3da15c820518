"""The side list's handlers: open, rename, export, delete (with undo) a conversation; a new chat.

Without login the list is this browser's (`gr.BrowserState`, [{"id", "title",
"updated_at"}]): the shared space must not show one visitor's conversations to another. With
login it is every conversation of the user, from the server, on any browser. Every read
passes the user, so nobody reaches another's conversation either way.

Leaving a conversation while it answers asks first (a bar over the box: stop it and leave,
or stay); the answer is never stopped by a stray click.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Container, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import gradio as gr

from ollamastack import validation
from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import InvalidInput, OllamaStackError, SessionNotFound
from ollamastack.web import transcript
from ollamastack.web.edge import Edge, caller_of, user_of
from ollamastack.web.ui.chat_settings import ChatSettings
from ollamastack.web.ui.composer import Composer, no_notice, notice
from ollamastack.web.ui.conversation_list import (
    UNDO_SECONDS,
    event_data,
    list_value,
    search_value,
)
from ollamastack.web.ui.history_view import history_view
from ollamastack.web.ui.status import SKIP, open_service, redactor, toast_errors
from ollamastack.web.ui.stored_files import shown_history

if TYPE_CHECKING:
    from ollamastack.agent.service import ChatService
    from ollamastack.storage.memory import SessionInfo

log = logging.getLogger(__name__)

Conversations = list[dict[str, Any]]
NO_TITLE = "New conversation"
MIME = {"md": "text/markdown", "json": "application/json"}


def listing(
    conversations: Conversations, selected: str = "", *, undo: dict[str, str] | None = None
) -> dict:
    """The side list's update: titles under date headings, the open conversation marked;
    `undo` ({"id", "title"}): a deleted conversation that can still be brought back."""
    return gr.update(value=list_value(conversations, selected, undo=undo))


async def known_conversations(
    service: ChatService, user: str, conversations: Sequence[Any]
) -> Conversations:
    """The conversations to list, newest first: with login all of `user`'s; without, the
    ones this browser knows that the server still has.

    Titles come from the server; ids a browser made up, or whose conversation was deleted
    elsewhere, are dropped.
    """
    with toast_errors():
        stored = await service.sessions(user)
    ids = {c.get("id") for c in conversations if isinstance(c, dict)}
    return [
        {"id": s.id, "title": s.title or NO_TITLE, "updated_at": s.updated_at}
        for s in stored if user or s.id in ids
    ]


async def session_info(service: ChatService, user: str, session_id: str) -> SessionInfo | None:
    """One of `user`'s conversations as the index holds it (None: not theirs, or deleted),
    read alone rather than listing them all."""
    return (await service.memory.sessions.found(user, [session_id])).get(session_id)


def leave_prompt(composer: Composer, target: str) -> tuple[dict, dict]:
    """The bar asking whether to stop the answer and leave (to `target`, "" for a new chat)."""
    composer.leave_to = target
    return (gr.update(visible=True),
            gr.update(value="This conversation is still answering. Stop it and leave?"))


class ConversationHandlers:
    """Opening, renaming, exporting and deleting conversations; `answering` holds sessions
    mid-turn (their deletion waits)."""

    def __init__(
        self, handle: ServiceHandle, *, answering: Container[str] = (), edge: Edge | None = None
    ) -> None:
        self.handle = handle
        self.settings = handle.settings
        self.answering = answering
        self.edge = edge or Edge(handle.settings)
        self._purges: set[asyncio.Task] = set()

    # -- moving between conversations ----------------------------------------------------

    def new_chat(
        self, conversations: Conversations, composer: Composer | None = None
    ) -> tuple[Any, ...]:
        """An empty chat; the next message starts a new conversation (its settings carry
        over from the chat on screen): (chat, session, list, leave bar, leave text)."""
        if composer is not None and composer.running:
            return (SKIP, SKIP, SKIP, *leave_prompt(composer, ""))
        if composer is not None:
            composer.viewing = ""
        return [], "", listing(conversations), gr.update(visible=False), SKIP

    async def open_conversation(
        self,
        event: gr.EventData,
        conversations: Conversations,
        composer: Composer | None = None,
        request: gr.Request | None = None,
    ) -> tuple[Any, ...]:
        """Open the conversation the list sent (see `open_session`); a search result opens
        at the message that matched."""
        data = event_data(event)
        index = data.get("index")
        return await self.open_session(
            str(data.get("id") or ""), conversations, composer, request,
            at=index if isinstance(index, int) and index >= 0 else None,
        )

    async def open_session(
        self,
        session_id: str,
        conversations: Conversations,
        composer: Composer | None = None,
        request: gr.Request | None = None,
        *,
        at: int | None = None,
    ) -> tuple[Any, ...]:
        """Reload a conversation and its settings from the server: (chat, session,
        conversations, list, model, temperature, system prompt, show thinking, leave bar,
        leave text). While this tab answers, it asks first. `at`: a stored message's index
        (a search result) to scroll to; the list keeps showing the results then."""
        skip = (SKIP,) * 8
        if not session_id:
            return (*skip, SKIP, SKIP)
        if composer is not None and composer.running:
            return (*skip, *leave_prompt(composer, session_id))
        caller = caller_of(request)
        service = await open_service(self.handle)
        with self.edge.audit("ui_open", caller, session_id=session_id) as entry:
            try:
                messages = await service.history(session_id, caller.user)
                info = await session_info(service, caller.user, session_id)
                if info is None:  # deleted meanwhile
                    raise SessionNotFound(session_id)
            except OllamaStackError as error:
                entry.fail(error)
                known = await known_conversations(service, caller.user, conversations)
                return (SKIP, SKIP, known, listing(known), SKIP, SKIP, SKIP, SKIP,
                        gr.update(visible=False), SKIP)
        chat_settings = ChatSettings.read(info.settings, self.settings)
        if composer is not None:
            composer.viewing = session_id
        view = await shown_history(
            service, session_id, caller.user, messages, show_thinking=chat_settings.show_thinking,
            redact=redactor(self.settings, service.engines, request))
        shown = listing(conversations, session_id)
        if at is not None:  # the chat's row of that message: the messages before it, drawn
            row = len(history_view(messages[:at], show_thinking=chat_settings.show_thinking))
            shown = gr.update(scroll_to={"row": row, "nonce": time.time()})
        return (view, session_id, conversations, shown,
                *chat_settings.as_outputs(), gr.update(visible=False), SKIP)

    async def search(
        self, query: str, conversations: Conversations, request: gr.Request | None = None
    ) -> tuple[Any, Any]:
        """The search box (Enter): the user's conversations holding its words, each with a
        snippet; an empty box shows the list again. Returns (list, notice)."""
        caller = caller_of(request)
        service = await open_service(self.handle)
        if validation.is_blank(query or ""):
            known = await known_conversations(service, caller.user, conversations)
            return listing(known), no_notice()
        with self.edge.audit("ui_search", caller):
            try:
                self.edge.count_message(caller)
                found = await service.search_conversations(query, caller.user)
            except OllamaStackError as error:
                return SKIP, notice(str(error))
        return gr.update(value=search_value(found, query)), no_notice()

    async def cleared(
        self, query: str, conversations: Conversations, request: gr.Request | None = None
    ) -> Any:
        """The search box emptied: the list as it was (no search is run while typing)."""
        if not validation.is_blank(query or ""):
            return SKIP
        service = await open_service(self.handle)
        return listing(await known_conversations(service, user_of(request), conversations))

    async def leave(
        self, conversations: Conversations, composer: Composer, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        """After Stop: go where the user wanted to go when the bar asked (see `open_session`)."""
        target, composer.leave_to = composer.leave_to or "", None
        composer.running = None  # the answer was stopped
        composer.viewing = target
        if not target:
            return ([], "", listing(conversations), SKIP, SKIP, SKIP, SKIP,
                    gr.update(visible=False), SKIP)
        opened = await self.open_session(target, conversations, composer, request)
        return (*opened[:2], *opened[3:])

    @staticmethod
    def remember(
        session_id: str, model: str, temperature: float, system_prompt: str, show_thinking: bool
    ) -> dict:
        """What this browser keeps for a reload: the open conversation, the settings on screen."""
        settings = ChatSettings(model, temperature, system_prompt, show_thinking)
        return {"session_id": session_id, "settings": settings.stored()}

    @staticmethod
    def stay(composer: Composer) -> dict:
        composer.leave_to = None
        return gr.update(visible=False)

    async def save_settings(
        self,
        session_id: str,
        model: str,
        temperature: float,
        system_prompt: str,
        show_thinking: bool,
        request: gr.Request | None = None,
    ) -> dict:
        """The user changed a setting: keep it with the open conversation, and in this
        browser for a reload (returns what the browser keeps)."""
        chat_settings = ChatSettings.read(
            ChatSettings(model, temperature, system_prompt, show_thinking).stored(),
            self.settings,
        )
        if session_id:
            service = await open_service(self.handle)
            try:
                await service.memory.sessions.save_settings(
                    session_id, user_of(request), chat_settings.stored())
            except OllamaStackError as error:
                log.info("settings of session %s not saved: %s", session_id, error)
        return {"session_id": session_id, "settings": chat_settings.stored()}

    async def show(
        self, session_id: str, show_thinking: bool, request: gr.Request | None = None
    ) -> Any:
        """The open conversation drawn again from memory (the thinking toggle changed)."""
        if not session_id or session_id in self.answering:
            return SKIP
        service = await open_service(self.handle)
        user = user_of(request)
        with toast_errors():
            messages = await service.history(session_id, user)
        return await shown_history(service, session_id, user, messages,
                                   show_thinking=show_thinking,
                                   redact=redactor(self.settings, service.engines, request))

    # -- the ⋯ menu ----------------------------------------------------------------------

    async def act(
        self,
        event: gr.EventData,
        session_id: str,
        conversations: Conversations,
        request: gr.Request | None = None,
    ) -> tuple[Any, Any, Any, Any, Any]:
        """One action of an item's menu: (list, chat, session, conversations, notice)."""
        data = event_data(event)
        action, target = str(data.get("action", "")), str(data.get("id", ""))
        if action in ("export-md", "export-json"):
            return await self.export(target, action.removeprefix("export-"), request), \
                SKIP, SKIP, SKIP, SKIP
        caller = caller_of(request)
        service = await open_service(self.handle)
        try:
            with self.edge.audit(f"ui_{action or 'unknown'}", caller, session_id=target):
                if action == "rename":
                    title = validation.title(data.get("title"))
                    await service.memory.sessions.rename(target, caller.user, title)
                elif action == "delete":
                    return await self._delete(service, target, session_id, conversations,
                                              caller.user)
                elif action == "undo":
                    await service.memory.sessions.restore(target, caller.user)
                    if all(c.get("id") != target for c in conversations):
                        conversations = [{"id": target, "title": ""}, *conversations]
                else:
                    raise InvalidInput(f"Unknown action {action!r}.")
        except OllamaStackError as error:
            known = await known_conversations(service, caller.user, conversations)
            return listing(known, session_id), SKIP, SKIP, known, notice(str(error))
        known = await known_conversations(service, caller.user, conversations)
        return listing(known, session_id), SKIP, SKIP, known, no_notice()

    async def _delete(
        self, service: ChatService, target: str, session_id: str, conversations: Conversations,
        user: str,
    ) -> tuple[Any, Any, Any, Any, Any]:
        """Hide the conversation now and delete it for good once its undo has expired."""
        if target in self.answering:
            known = await known_conversations(service, user, conversations)
            return (listing(known, session_id), SKIP, SKIP, known,
                    notice("This conversation is still answering: stop it before deleting it."))
        title = getattr(await session_info(service, user, target), "title", "")
        await service.memory.sessions.hide(target, user)
        self._later(lambda: self.purge(service, user, target), UNDO_SECONDS + 1)
        known = await known_conversations(service, user, conversations)
        opened = target == session_id
        return (listing(known, "" if opened else session_id,
                        undo={"id": target, "title": title or NO_TITLE}),
                [] if opened else SKIP, "" if opened else SKIP, known, no_notice())

    def _later(self, work: Callable[[], Awaitable[None]], delay: float) -> None:
        """`work()` after `delay` seconds, in the background (kept until it is done)."""
        async def run() -> None:
            await asyncio.sleep(delay)
            await work()

        task = asyncio.ensure_future(run())
        self._purges.add(task)
        task.add_done_callback(self._purges.discard)

    @staticmethod
    async def purge(service: ChatService, user: str, session_id: str = "") -> None:
        """Delete for good what was deleted more than `UNDO_SECONDS` ago (and not undone)."""
        expired = time.time() - UNDO_SECONDS
        for info in await service.memory.sessions.list(user, deleted=True):
            if (info.deleted_at or 0) <= expired and info.id == (session_id or info.id):
                try:
                    await service.memory.sessions.restore(info.id, user)
                    await service.delete_session(info.id, user)
                except OllamaStackError as error:
                    log.warning("could not delete session %s: %s", info.id, error)

    # -- export --------------------------------------------------------------------------

    async def export(self, session_id: str, kind: str, request: gr.Request | None = None) -> Any:
        """The conversation as a file the browser saves at once (the list's `saving`)."""
        caller = caller_of(request)
        if not session_id:
            return SKIP
        with self.edge.audit(f"ui_export_{kind}", caller, session_id=session_id):
            service = await open_service(self.handle)
            with toast_errors():
                messages = await service.history(session_id, caller.user)
                title = getattr(await session_info(service, caller.user, session_id), "title",
                                "")
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            if kind == "md":
                text = transcript.to_markdown(messages, title=title, exported_at=stamp)
            else:
                text = transcript.to_json(
                    messages, session_id=session_id, title=title, exported_at=stamp
                )
        name = f"{transcript.file_stem(title)}.{kind}"
        return gr.update(saving={"name": name, "text": text, "type": MIME[kind],
                                   "nonce": time.time()})

    async def export_markdown(self, session_id: str, request: gr.Request | None = None) -> Any:
        return await self.export(session_id, "md", request)

    async def export_json(self, session_id: str, request: gr.Request | None = None) -> Any:
        return await self.export(session_id, "json", request)
