"""The side list of this browser's conversations: open, delete, export; and what it shows.

The list lives in the browser (`gr.BrowserState`) as [{"id", "title"}]; the server keeps the
messages. Every read passes the user, so with login a browser shared by two people still
shows each only their own conversations.

Exports are files only their owner can fetch (`web/exports.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Container, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import OllamaStackError
from ollamastack.web import transcript
from ollamastack.web.edge import Caller, Edge, caller_of, user_of
from ollamastack.web.exports import ExportFiles
from ollamastack.web.ui.chat_view import history_view
from ollamastack.web.ui.status import SKIP, open_service, toast_errors, warn

if TYPE_CHECKING:
    from ollamastack.agent.service import ChatService

Conversations = list[dict[str, str]]
NO_TITLE = "New conversation"


def conversation_list(conversations: Conversations, selected: str = "") -> dict:
    """The side list's update: titles, newest first, the open conversation selected."""
    choices = [(c["title"], c["id"]) for c in conversations]
    return gr.update(choices=choices, value=selected or None)


async def known_conversations(
    service: ChatService, user: str, conversations: Sequence[Any]
) -> Conversations:
    """The browser's conversations that the server still has for `user`, newest first.

    Titles come from the server (the first message); ids a browser made up, or whose
    conversation was deleted elsewhere, are dropped.
    """
    with toast_errors():
        stored = await service.sessions(user)
    ids = {c.get("id") for c in conversations if isinstance(c, dict)}
    return [{"id": s.id, "title": s.title or NO_TITLE} for s in stored if s.id in ids]


class ConversationHandlers:
    """Opening, deleting and exporting conversations; `answering` holds sessions mid-turn."""

    def __init__(
        self, handle: ServiceHandle, *, answering: Container[str] = (), edge: Edge | None = None
    ) -> None:
        self.handle = handle
        self.answering = answering
        self.edge = edge or Edge(handle.settings)
        self.exports = ExportFiles(handle.settings.upload_retention)

    def new_chat(self) -> tuple[list, str, dict, str]:
        """An empty chat; the next message starts a new conversation: (chat, session, list, box)."""
        return [], "", gr.update(value=None), ""

    async def open_conversation(
        self,
        session_id: str,
        show_thinking: bool,
        conversations: Conversations,
        request: gr.Request | None = None,
    ) -> tuple[Any, Any, Conversations, dict]:
        """Reload a conversation from the server's memory: (chat, session, conversations, list)."""
        caller = caller_of(request)
        service = await open_service(self.handle)
        if not session_id:
            return SKIP, SKIP, conversations, SKIP
        with self.edge.audit("ui_open", caller, session_id=str(session_id)) as entry:
            try:
                messages = await service.history(session_id, caller.user)
            except OllamaStackError as error:
                entry.fail(error)
                warn(str(error))
                known = await known_conversations(service, caller.user, conversations)
                return SKIP, SKIP, known, conversation_list(known)
        return history_view(messages, show_thinking=show_thinking), session_id, conversations, SKIP

    async def show(
        self, session_id: str, show_thinking: bool, request: gr.Request | None = None
    ) -> Any:
        """The open conversation drawn again from memory (the thinking toggle changed)."""
        if not session_id or session_id in self.answering:
            return SKIP
        service = await open_service(self.handle)
        with toast_errors():
            messages = await service.history(session_id, user_of(request))
        return history_view(messages, show_thinking=show_thinking)

    async def delete_conversation(
        self, session_id: str, conversations: Conversations, request: gr.Request | None = None
    ) -> tuple[Any, str, Conversations, dict]:
        """Delete the open conversation here and in memory: (chat, session, conversations, list)."""
        caller = caller_of(request)
        user = caller.user
        service = await open_service(self.handle)
        if not session_id:
            warn("Open a conversation to delete it.")
            return SKIP, "", conversations, SKIP
        if session_id in self.answering:
            warn("This conversation is still answering: press Stop first.")
            return SKIP, session_id, conversations, SKIP
        with self.edge.audit("ui_delete_conversation", caller, session_id=session_id):
            with toast_errors():
                await service.delete_session(session_id, user)
        await asyncio.to_thread(self.exports.remove, user, session_id)  # its downloads too
        kept = [c for c in conversations if c.get("id") != session_id]
        known = await known_conversations(service, user, kept)
        return [], "", known, conversation_list(known)

    def hide_export(self) -> dict:
        """An export belongs to the conversation it was made from."""
        return gr.update(value=None, visible=False)

    async def export_markdown(self, session_id: str, request: gr.Request | None = None) -> dict:
        return await self._export(session_id, "md", caller_of(request))

    async def export_json(self, session_id: str, request: gr.Request | None = None) -> dict:
        return await self._export(session_id, "json", caller_of(request))

    async def _export(self, session_id: str, kind: str, caller: Caller) -> dict:
        """Write the open conversation to a file and offer it for download."""
        if not session_id:
            warn("There is no conversation to export yet.")
            return gr.update(value=None, visible=False)
        with self.edge.audit(f"ui_export_{kind}", caller, session_id=session_id):
            return await self._write_export(session_id, kind, caller.user)

    async def _write_export(self, session_id: str, kind: str, user: str) -> dict:
        service = await open_service(self.handle)
        with toast_errors():
            messages = await service.history(session_id, user)
            title = next((s.title for s in await service.sessions(user) if s.id == session_id), "")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        if kind == "md":
            text = transcript.to_markdown(messages, title=title, exported_at=stamp)
        else:
            text = transcript.to_json(
                messages, session_id=session_id, title=title, exported_at=stamp
            )
        name = f"{transcript.file_stem(title)}.{kind}"
        path = await asyncio.to_thread(self.exports.write, user, session_id, name, text)
        asyncio.get_running_loop().call_later(self.exports.retention + 1, self.exports.expire)
        return gr.update(value=str(path), visible=True)
