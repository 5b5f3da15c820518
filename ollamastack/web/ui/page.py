"""The page's own handlers: on load, the conversation this browser had open (with its
settings), the model picker, the status line and the conversation list; the picker refreshed
from Ollama; the status line for a chosen model (and how the open conversation's documents
are searched), and its offer of the built-in model while Ollama is down.

The status line names Ollama's address and version only for those who may see them
(`shows_internals`): through a share link the page is on the internet."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.web.edge import user_of
from ollamastack.web.ui.approvals import tools_status
from ollamastack.web.ui.chat_settings import ChatSettings
from ollamastack.web.ui.conversations import (
    ConversationHandlers,
    Conversations,
    known_conversations,
    listing,
)
from ollamastack.web.ui.picker import installed, model_picker
from ollamastack.web.ui.status import documents_note, open_service, shows_internals, status_of

if TYPE_CHECKING:
    from ollamastack.agent.service import ChatService


def use_embedded_button(name: str | None) -> dict:
    """The status line's offer to answer with the built-in model (hidden when there is none
    to offer)."""
    if name is None:
        return gr.update(visible=False)
    return gr.update(value=f"Use the built-in model ({name})", visible=True)


def with_tools_note(service: ChatService, status: str, *notes: str) -> str:
    """The status line, naming the MCP servers whose tools are left out (they are down),
    then `notes` (those that say something)."""
    toolbox = getattr(service, "toolbox", None)
    said = [tools_status(toolbox.unreachable()) if toolbox is not None else "", *notes]
    return " · ".join([status, *(note for note in said if note)])


class PageHandlers:
    """What the page shows around the chat, over one chat service."""

    def __init__(self, settings: Settings, handle: ServiceHandle) -> None:
        self.settings = settings
        self.handle = handle

    async def load_page(
        self,
        conversations: Conversations,
        last_open: Any,
        request: gr.Request | None = None,
    ) -> tuple[Any, ...]:
        """The page as this browser left it: (picker, status, offer, conversations, list,
        chat, session, temperature, system prompt, show thinking, who)."""
        service = await open_service(self.handle)
        user = user_of(request)
        await ConversationHandlers.purge(service, user)  # deletions whose undo expired
        known = await known_conversations(service, user, conversations)
        last = last_open if isinstance(last_open, dict) else {}
        chat_settings = ChatSettings.read(last.get("settings"), self.settings)
        chat: Any = []
        session_id = str(last.get("session_id") or "")
        if session_id and any(c["id"] == session_id for c in known):
            opened = await ConversationHandlers(self.handle).open_session(
                session_id, known, None, request)
            chat = opened[0]
            chat_settings = ChatSettings(*opened[4:8])
        else:
            session_id = ""
        picker, status, offer = await self.refresh_models(chat_settings.model, session_id,
                                                          request)
        who = f"Signed in as **{html.escape(user)}**" if user else ""
        return (picker, status, offer, known, listing(known, session_id), chat, session_id,
                chat_settings.temperature, chat_settings.system_prompt,
                chat_settings.show_thinking, who)

    async def refresh_models(
        self, model: str, session_id: str = "", request: gr.Request | None = None
    ) -> tuple[dict, str, dict]:
        """The picker filled from Ollama, and the status line for the model it keeps (and
        for the documents of `session_id`, the conversation on screen)."""
        service = await open_service(self.handle)
        listed = await installed(service.engines)  # Ollama down: the status line says so
        picker = model_picker(listed.models, model, await service.engines.default_model(),
                              reachable=listed.reachable, configured=self.settings.model)
        status, offer = await status_of(
            service.engines, picker["value"], internals=shows_internals(self.settings, request)
        )
        note = await documents_note(service, user_of(request), session_id)
        return picker, with_tools_note(service, status, note), use_embedded_button(offer)

    async def status(
        self, model: str, session_id: str = "", request: gr.Request | None = None
    ) -> tuple[str, dict]:
        """The status line for `model` (and for the documents of `session_id`)."""
        service = await open_service(self.handle)
        internals = shows_internals(self.settings, request)
        status, offer = await status_of(
            service.engines, model or self.settings.model, internals=internals)
        note = await documents_note(service, user_of(request), session_id)
        return with_tools_note(service, status, note), use_embedded_button(offer)

    async def use_embedded(
        self, session_id: str = "", request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        """Answer with the built-in model from now on: (picker, status, offer)."""
        service = await open_service(self.handle)
        if service.engines.embedded is None:
            return gr.skip(), gr.skip(), use_embedded_button(None)
        return await self.refresh_models(service.engines.embedded.name, session_id, request)
