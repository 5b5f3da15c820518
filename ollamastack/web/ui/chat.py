"""The chat tab's event handlers: send (queued while answering), Retry, Undo, and settling
a turn however it ended (Stop included). The turns themselves stream in `chat_turns`; the
page's load, model picker and status line are `page.py`'s.

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
from typing import Any

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.web.coalesce import FRAME_SECONDS
from ollamastack.web.edge import Edge, caller_of, user_of
from ollamastack.web.ui.chat_settings import ChatSettings
from ollamastack.web.ui.chat_turns import Chat, TurnStreams, TurnUpdate, undo_last
from ollamastack.web.ui.composer import (
    Composer,
    Draft,
    idle_box,
    joined,
    no_notice,
    notice,
    queue_note,
)
from ollamastack.web.ui.conversations import Conversations, known_conversations, listing
from ollamastack.web.ui.status import SKIP, open_service, redactor, toast_errors
from ollamastack.web.ui.stored_files import shown_history

__all__ = ["AnsweringSessions", "ChatHandlers", "TurnUpdate"]

UPDATE_INTERVAL = FRAME_SECONDS  # while tokens stream, the chat is resent ~20 times a second
SETTLE_TIMEOUT = 10.0  # how long to wait for a stopped turn to be stored


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
        self.streams = TurnStreams(handle, self.edge, update_interval=update_interval,
                                   clock=clock)

    @property
    def answering(self) -> Container[str]:
        """The sessions answering now, as the chat service knows them (for other handlers)."""
        return AnsweringSessions(self.handle)

    async def send(
        self,
        message: Any,
        history: Chat,
        session_id: str,
        conversations: Conversations,
        model: str,
        temperature: float,
        system_prompt: str,
        show_thinking: bool,
        request: gr.Request | None = None,
        composer: Composer | None = None,
    ) -> AsyncIterator[TurnUpdate]:
        """Stream the answer to `message` (the box's {"text", "files"}: files alone will do);
        a new conversation joins the side list at once.

        While this tab is answering, `message` is queued instead (a note says so) and sent
        when the answer ends, by the turn in progress."""
        composer = composer if composer is not None else Composer()
        draft = Draft.of(message)
        if draft.empty:
            yield TurnUpdate()
            return
        if composer.running:
            composer.queued.append(draft)
            composer.settles_to_skip += 1  # this event's own settle: the turn is not over
            yield TurnUpdate(box=gr.update(value=Draft().value()), queued=queue_note(composer))
            return
        chat_settings = ChatSettings(model, temperature, system_prompt, show_thinking)
        composer.viewing = session_id
        turns = self.streams.run(draft, list(history or []), session_id,
                                 list(conversations or []), chat_settings, request, composer)
        async with aclosing(turns):
            async for update in turns:
                yield update

    async def retry(
        self,
        session_id: str,
        model: str,
        temperature: float,
        system_prompt: str,
        show_thinking: bool,
        request: gr.Request | None = None,
        composer: Composer | None = None,
    ) -> AsyncIterator[TurnUpdate]:
        """Ask the last message again: its turn is forgotten and answered anew. A message
        whose turn failed before anything was stored is simply sent again."""
        composer = composer if composer is not None else Composer()
        if composer.running:
            composer.settles_to_skip += 1
            yield TurnUpdate(notice=notice("Wait for this answer to end (or press Stop) "
                                           "before asking again."))
            return
        chat_settings = ChatSettings(model, temperature, system_prompt, show_thinking)
        composer.viewing = session_id
        if failed := composer.failed:
            composer.failed = None
            service = await open_service(self.handle)
            history: Chat = []
            if session_id:
                user = user_of(request)
                with toast_errors():
                    messages = await service.history(session_id, user)
                history = await shown_history(service, session_id, user, messages,
                                              show_thinking=show_thinking)
            turns = self.streams.run(failed, history, session_id, None, chat_settings, request,
                                     composer)
        else:
            turns = self.streams.run(Draft(), [], session_id, None, chat_settings, request,
                                     composer, retry=True)
        async with aclosing(turns):
            async for update in turns:
                yield update

    async def edit(
        self,
        event: gr.EditData,
        session_id: str,
        history: Chat,
        model: str,
        temperature: float,
        system_prompt: str,
        show_thinking: bool,
        request: gr.Request | None = None,
        composer: Composer | None = None,
    ) -> AsyncIterator[TurnUpdate]:
        """A user message edited in the chat (its pencil): the new text answered as a new
        branch from just before that message; the earlier branch is kept."""
        composer = composer if composer is not None else Composer()
        if composer.running:
            composer.settles_to_skip += 1
            yield TurnUpdate(notice=notice("Wait for this answer to end (or press Stop) "
                                           "before editing a message."))
            return
        asked = sum(1 for shown in history[:event.index] if role_of(shown) == "user")
        chat_settings = ChatSettings(model, temperature, system_prompt, show_thinking)
        composer.viewing = session_id
        turns = self.streams.run(Draft(), [], session_id, None, chat_settings, request,
                                 composer, retry=True, edit=(asked, str(event.value)))
        async with aclosing(turns):
            async for update in turns:
                yield update

    async def decide(
        self,
        event: gr.EventData,
        session_id: str,
        history: Chat,
        model: str,
        temperature: float,
        system_prompt: str,
        show_thinking: bool,
        request: gr.Request | None = None,
        composer: Composer | None = None,
    ) -> AsyncIterator[TurnUpdate]:
        """Approve or Deny on the approval bar: the waiting tool call runs, or the model is
        told the user declined; either way the answer streams in."""
        composer = composer if composer is not None else Composer()
        approve = bool((getattr(event, "_data", None) or {}).get("approve"))
        if composer.running:
            composer.settles_to_skip += 1
            yield TurnUpdate()
            return
        chat_settings = ChatSettings(model, temperature, system_prompt, show_thinking)
        turns = self.streams.decided(approve, session_id, list(history or []), chat_settings,
                                     request, composer)
        async with aclosing(turns):
            async for update in turns:
                yield update

    async def undo(
        self, session_id: str, show_thinking: bool, request: gr.Request | None = None
    ) -> tuple[Any, Any, Any]:
        """Forget the last turn; its text goes back into the box to edit, and a note names
        its files, which went with it (attach them again): (chat, box, notice)."""
        caller = caller_of(request)
        with self.edge.audit("ui_undo", caller, session_id=session_id):
            service = await open_service(self.handle)
            undone, refused = await undo_last(service, session_id, caller.user)
            if undone is None:
                return SKIP, SKIP, notice(refused)
            with toast_errors():
                messages = await service.history(session_id, caller.user)
            view = await shown_history(
                service, session_id, caller.user, messages, show_thinking=show_thinking,
                redact=redactor(self.settings, service.engines, request))
            names = [str(ref.get("name")) for ref in
                     undone.additional_kwargs.get("attachments") or [] if isinstance(ref, dict)]
            said = notice(f"Removed with it: {', '.join(names)}. Attach again to send "
                          f"{'it' if len(names) == 1 else 'them'}.") if names else no_notice()
            return view, Draft(undone.text).value(), said

    async def settle(
        self,
        session_id: str,
        streaming: bool,
        conversations: Conversations,
        show_thinking: bool,
        request: gr.Request | None = None,
        composer: Composer | None = None,
    ) -> tuple[Any, Any, Any, Any, Any, Any]:
        """After a turn however it ended: list its conversation; after Stop, show what was kept.

        Returns (chat, streaming, conversations, side list, box, queued note). `streaming`
        still True means the turn never sent its last update (Stop cancelled it): the chat is
        reloaded from memory, where the partial answer is stored, marked as stopped, and
        messages queued behind it go back into the box. The settle of an event that only
        queued its message does nothing: the turn it waits for is still going.
        """
        composer = composer if composer is not None else Composer()
        if composer.settles_to_skip:
            composer.settles_to_skip -= 1
            return SKIP, SKIP, SKIP, SKIP, SKIP, SKIP
        user = user_of(request)
        service = await open_service(self.handle)
        chat: Any = SKIP
        box = idle_box()
        if streaming:  # stopped: the turn is over, whatever its generator still holds
            composer.running = None
            if composer.queued:
                box = idle_box(joined(composer.queued))
                composer.queued.clear()
        if session_id and streaming:
            if (stored := service.answering(session_id)) is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stored.wait(), SETTLE_TIMEOUT)
            if composer.viewing == session_id:  # else the user has left it meanwhile
                with toast_errors():
                    messages = await service.history(session_id, user)
                chat = await shown_history(
                    service, session_id, user, messages, show_thinking=show_thinking,
                    redact=redactor(self.settings, service.engines, request))
        ids = [c for c in conversations or [] if isinstance(c, dict)]
        if session_id and all(c.get("id") != session_id for c in ids):
            ids.insert(0, {"id": session_id, "title": ""})
        known = await known_conversations(service, user, ids)
        return (chat, False, known, listing(known, composer.viewing), box,
                queue_note(composer))

    @staticmethod
    def unqueue(box: Any, composer: Composer) -> tuple[Any, Any]:
        """The queued messages back into the box (before what it holds), to edit and send
        later: (box, note)."""
        waiting = joined([*composer.queued, Draft.of(box)])
        composer.queued.clear()
        return gr.update(value=waiting.value()), queue_note(composer)


def role_of(message: Any) -> str:
    """A chat message's role, as the Chatbot hands it back (a dict) or as drawn.

    >>> role_of({"role": "user", "content": "hi"}), role_of(gr.ChatMessage("a", role="assistant"))
    ('user', 'assistant')
    """
    return str(message.get("role") if isinstance(message, dict) else getattr(message, "role", ""))
