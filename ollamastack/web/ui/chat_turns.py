"""A tab's turns as the page shows them: admitted by the turn pipeline (rate limit, turn
slots, audit), the box's files read from Gradio's uploads, streamed into the chat a frame at
a time, then the messages queued meanwhile.

`TurnUpdate` is what every step sends, in the order of the chat's outputs (see `layout.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import gradio as gr
from langchain_core.messages import HumanMessage

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import OllamaStackError, RateLimited, SessionBusy, TooManyTurns
from ollamastack.events import Sources, Started
from ollamastack.storage.memory import session_title
from ollamastack.web.audit import Entry
from ollamastack.web.coalesce import any_delta
from ollamastack.web.edge import Caller, Edge, caller_of
from ollamastack.web.turns import TurnPipeline, TurnRequest
from ollamastack.web.ui.approvals import ApprovalHandlers, approval_value
from ollamastack.web.ui.chat_settings import ChatSettings
from ollamastack.web.ui.chat_view import TurnView, plain_words
from ollamastack.web.ui.composer import (
    Composer,
    Draft,
    busy_box,
    idle_box,
    no_notice,
    notice,
    queue_note,
)
from ollamastack.web.ui.conversations import Conversations, listing
from ollamastack.web.ui.message_files import ShownFile, stored, uploaded, user_message
from ollamastack.web.ui.status import (
    SKIP,
    hidden,
    open_service,
    redactor,
    shows_internals,
    waiting_title,
)
from ollamastack.web.ui.stored_files import shown_history
from ollamastack.web.uploads import gradio_files

if TYPE_CHECKING:
    from ollamastack.agent.service import ChatService

log = logging.getLogger(__name__)

Chat = list[Any]  # gr.ChatMessage, or the dicts the Chatbot hands back
NOTHING_TO_UNDO = "There is nothing to undo or retry yet."


class TurnUpdate(NamedTuple):
    """What a turn's handler sends, in the order of its outputs; unset ones stay as they are."""

    chat: Any = SKIP
    box: Any = SKIP  # the composer: emptied and Stop when sent, Send and refilled if refused
    session_id: Any = SKIP
    status: Any = SKIP
    streaming: Any = SKIP  # True from the first update to the last (see `settle`)
    conversations: Any = SKIP
    listing: Any = SKIP
    notice: Any = SKIP  # a refused message or a limit, said once over the box
    queued: Any = SKIP  # the note naming messages that wait for this answer to end
    approval: Any = SKIP  # the bar asking to approve a tool call (see `approvals`)


class TurnStreams:
    """The turns of the page's tabs, over one chat service and the edge shared with the API."""

    def __init__(
        self,
        handle: ServiceHandle,
        edge: Edge,
        *,
        update_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handle = handle
        self.settings = handle.settings
        self.edge = edge
        self.pipeline = TurnPipeline(handle, edge)
        self.approvals = ApprovalHandlers(self.pipeline, edge)
        self.update_interval = update_interval
        self.clock = clock

    async def run(
        self,
        draft: Draft,
        history: Chat,
        session_id: str,
        conversations: Conversations | None,
        chat_settings: ChatSettings,
        request: gr.Request | None,
        composer: Composer,
        *,
        retry: bool = False,
        edit: tuple[int, str] | None = None,
    ) -> AsyncIterator[TurnUpdate]:
        """`draft`'s turn (`retry`: the last stored turn's, asked again; with `edit` (the
        number of the user message, its new text), that message edited), then each message
        queued meanwhile, in this tab's composer."""
        caller = caller_of(request)
        internals = shows_internals(self.settings, request)
        mine = composer.running = object()  # this event's: a cancelled one may finish late
        endpoint = "ui_edit" if edit else "ui_retry" if retry else "ui_send"
        try:
            chat, first = history, True
            while True:
                turn = TurnRequest(draft.text, session_id, chat_settings.model,
                                   chat_settings.temperature, chat_settings.system_prompt)
                if retry:
                    def make(entry: Entry, t: TurnRequest = turn) -> AsyncIterator[TurnUpdate]:
                        return self._retried(t, chat_settings, caller.user, entry, internals,
                                             composer, request, edit)
                else:
                    def make(entry: Entry, t: TurnRequest = turn, d: Draft = draft,
                             c: Chat = chat, f: bool = first, listed: Any = conversations,
                             ) -> AsyncIterator[TurnUpdate]:
                        return self._turn(t, d, c, listed, chat_settings, caller.user, entry,
                                          internals, composer, clear_box=f)
                updates = self._admitted(endpoint, caller, turn, draft, make)
                async with aclosing(updates):
                    async for update in updates:
                        chat = chat if update.chat is SKIP else update.chat
                        if update.session_id is not SKIP:
                            session_id = update.session_id
                        if update.conversations is not SKIP:
                            conversations = update.conversations
                        yield update
                if not composer.queued:
                    break
                draft, first, endpoint, retry = composer.queued.pop(0), False, "ui_send", False
                yield TurnUpdate(queued=queue_note(composer))
        finally:
            if composer.running is mine:
                composer.running = None

    async def _admitted(
        self, endpoint: str, caller: Caller, turn: TurnRequest, draft: Draft,
        updates: Callable[[Entry], AsyncIterator[TurnUpdate]],
    ) -> AsyncIterator[TurnUpdate]:
        """`updates(entry)` once the turn pipeline admits the caller; over the rate limit or
        their turns in flight, a notice over the box (recorded), and the message stays."""
        try:
            with self.pipeline.admitted(endpoint, caller, turn) as entry:
                async with aclosing(updates(entry)) as admitted:
                    async for update in admitted:
                        yield update
        except (RateLimited, TooManyTurns) as refused:
            yield TurnUpdate(box=idle_box(None if draft.empty else draft),
                             notice=notice(str(refused)))

    async def _retried(
        self, turn: TurnRequest, chat_settings: ChatSettings, user: str, entry: Entry,
        internals: bool, composer: Composer, request: gr.Request | None,
        edit: tuple[int, str] | None = None,
    ) -> AsyncIterator[TurnUpdate]:
        """Retry, once admitted: the last message answered anew as a sibling branch (the
        earlier answer is kept, `/switch_branch`), with its files; if the model cannot
        answer now, the turn there is stays. `edit`: the user message with that number
        (from 0) answered with new text instead, the same way."""
        service = await open_service(self.handle)
        model = chat_settings.model or await service.engines.default_model()
        try:
            await service.engines.capabilities(model)
        except OllamaStackError as error:
            entry.fail(error)
            yield TurnUpdate(notice=notice(plain_words(error)))
            return
        if not turn.session_id:
            yield TurnUpdate(notice=notice(NOTHING_TO_UNDO))
            return
        if service.answering(turn.session_id) is not None:
            yield TurnUpdate(notice=notice(str(SessionBusy())))
            return
        try:
            messages = await service.history(turn.session_id, user)
        except OllamaStackError as error:  # not this user's conversation: said over the box
            yield TurnUpdate(notice=notice(str(error)))
            return
        asked = [i for i, message in enumerate(messages) if isinstance(message, HumanMessage)]
        if not asked or (edit is not None and not 0 <= edit[0] < len(asked)):
            yield TurnUpdate(notice=notice(NOTHING_TO_UNDO))
            return
        index = asked[-1] if edit is None else asked[edit[0]]
        entry.message = text = messages[index].text if edit is None else edit[1]
        refs = messages[index].additional_kwargs.get("attachments") or []  # sent again
        history = await shown_history(
            service, turn.session_id, user, messages[:index],
            show_thinking=chat_settings.show_thinking,
            redact=redactor(self.settings, service.engines, request))
        updates = self._turn(replace(turn, message=text, edit_index=index), Draft(text),
                             history, None, chat_settings, user, entry, internals, composer,
                             shown=stored(refs, {}))
        async with aclosing(updates):
            async for update in updates:
                yield update

    async def _turn(
        self,
        turn: TurnRequest,
        draft: Draft,
        history: Chat,
        conversations: Conversations | None,
        chat_settings: ChatSettings,
        user: str,
        entry: Entry,
        internals: bool,
        composer: Composer,
        *,
        clear_box: bool = True,
        shown: Sequence[ShownFile] = (),
    ) -> AsyncIterator[TurnUpdate]:
        """One turn on the page, `draft` its message as the box held it (its files are read
        here, so a refusal among them is said like any other; `shown`: files the message
        carries again, on Retry); `internals`: errors may name where Ollama runs."""
        service = await open_service(self.handle)
        model = turn.model or await service.engines.default_model()
        view = TurnView(
            show_thinking=chat_settings.show_thinking,
            waiting=await waiting_title(service.engines, model),
            redact=str if internals else lambda text: hidden(service.engines, text),
        )
        chat = [*history, user_message(turn.message.strip(),
                                       uploaded(draft.files) or list(shown))]
        yield TurnUpdate([*chat, *view.messages()], busy_box(clear=clear_box), streaming=True,
                         notice=no_notice())
        started = False  # once the core has stored the message, Retry undoes the turn
        try:
            if draft.files:
                turn = replace(turn, files=await gradio_files(
                    list(draft.files), limit=self.settings.upload_bytes))
            batches = self.pipeline.frames(entry, user, turn, interval=self.update_interval,
                                           may_wait=any_delta, clock=self.clock)
            async with aclosing(batches):
                async for batch in batches:  # one chat update per frame
                    changed = False
                    for now, event in batch:
                        if isinstance(event, Started):
                            started = True
                            if not turn.session_id:  # a new conversation joins the list now
                                if composer.viewing == turn.session_id:
                                    composer.viewing = event.session_id
                                await self._save_settings(service, event.session_id, user,
                                                          chat_settings)
                                yield TurnUpdate(session_id=event.session_id, **self._listed(
                                    event.session_id, turn.message or draft.names[0],
                                    conversations,
                                ))
                            continue
                        view.apply(event, now)
                        changed = True
                    if changed and not view.finished:
                        yield TurnUpdate([*chat, *view.messages()])
        except OllamaStackError as refused:  # raised, not streamed: nothing was stored
            entry.fail(refused)
            yield TurnUpdate(history, idle_box(draft), streaming=False,
                             notice=notice(str(refused)))
            return
        composer.failed = draft if view.failed and not started else None
        yield TurnUpdate([*chat, *view.messages()], streaming=False,  # the status line: next
                         approval=SKIP if view.pending is None else approval_value(view.pending))

    async def decided(
        self,
        approve: bool,
        session_id: str,
        history: Chat,
        chat_settings: ChatSettings,
        request: gr.Request | None,
        composer: Composer,
    ) -> AsyncIterator[TurnUpdate]:
        """The user approved (or denied) the waiting tool call: the rest of its turn, streamed
        like any answer; the waiting call's message is replaced by the call as it ran."""
        mine = composer.running = object()
        try:
            service = await open_service(self.handle)
            view = TurnView(
                show_thinking=chat_settings.show_thinking, waiting="Running the tool…",
                redact=redactor(self.settings, service.engines, request),
            )
            chat = [m for m in history if not waits_for_approval(m)]
            yield TurnUpdate([*chat, *view.messages()], busy_box(clear=False), streaming=True,
                             notice=no_notice(), approval=None)
            try:
                frames = self.approvals.decide(session_id, approve, request,
                                               interval=self.update_interval)
                async with aclosing(frames):
                    async for batch in frames:
                        changed = False
                        for now, event in batch:  # its Sources are shown above already
                            if not isinstance(event, Started | Sources):
                                view.apply(event, now)
                                changed = True
                        if changed and not view.finished:
                            yield TurnUpdate([*chat, *view.messages()])
            except OllamaStackError as refused:  # raised before anything changed
                yield TurnUpdate(history, idle_box(), streaming=False,
                                 notice=notice(str(refused)))
                return
            yield TurnUpdate([*chat, *view.messages()], streaming=False,
                             approval=approval_value(view.pending))
        finally:
            if composer.running is mine:
                composer.running = None

    @staticmethod
    async def _save_settings(
        service: ChatService, session_id: str, user: str, chat_settings: ChatSettings
    ) -> None:
        """A new conversation keeps the settings it was started with (see `chat_settings`)."""
        try:
            await service.memory.sessions.save_settings(session_id, user, chat_settings.stored())
        except OllamaStackError as error:  # the answer matters more than its settings
            log.warning("could not save the settings of session %s: %s", session_id, error)

    @staticmethod
    def _listed(
        session_id: str, message: str, conversations: Conversations | None
    ) -> dict[str, Any]:
        """A new conversation first in the side list, titled by its first message."""
        if conversations is None:
            return {}
        mine = [{"id": session_id, "title": session_title(message)}, *conversations]
        return {"conversations": mine, "listing": listing(mine, session_id)}


def waits_for_approval(message: Any) -> bool:
    """Whether a chat message (a gr.ChatMessage, or the dict the Chatbot sends back) is a
    tool call shown as waiting for the user's approval."""
    metadata = message.get("metadata") if isinstance(message, dict) else getattr(
        message, "metadata", None)
    return "waits for your approval" in str((metadata or {}).get("title", ""))


async def undo_last(
    service: ChatService, session_id: str, user: str
) -> tuple[HumanMessage | None, str]:
    """Forget the last turn: its message (a message may be files alone), or None and why
    nothing was undone."""
    if not session_id:
        return None, NOTHING_TO_UNDO
    try:
        messages = await service.history(session_id, user)
        asked = [m for m in messages if isinstance(m, HumanMessage)]
        if not asked:
            return None, NOTHING_TO_UNDO
        await service.undo_last_turn(session_id, user)
    except OllamaStackError as error:  # a conversation still answering: SessionBusy
        return None, str(error)
    return asked[-1], ""
