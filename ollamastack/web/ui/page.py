"""The page's own handlers: on load, the model picker, the status line and the conversations
this browser remembers; the picker refreshed from Ollama; the status line for a chosen model.

The status line names Ollama's address and version only for those who may see them
(`shows_internals`): through a share link the page is on the internet."""

from __future__ import annotations

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import OllamaStackError
from ollamastack.settings import Settings
from ollamastack.web.edge import user_of
from ollamastack.web.ui.conversations import Conversations, conversation_list, known_conversations
from ollamastack.web.ui.status import (
    hidden,
    model_picker,
    open_service,
    shows_internals,
    status_line,
    warn,
)


class PageHandlers:
    """What the page shows around the chat, over one chat service."""

    def __init__(self, settings: Settings, handle: ServiceHandle) -> None:
        self.settings = settings
        self.handle = handle

    async def load_page(
        self, conversations: Conversations, model: str, request: gr.Request | None = None
    ) -> tuple[dict, str, Conversations, dict]:
        """Fill the model picker and status line; keep this browser's conversations that exist."""
        service = await open_service(self.handle)
        picker, status = await self.refresh_models(model, request)
        known = await known_conversations(service, user_of(request), conversations)
        return picker, status, known, conversation_list(known)

    async def refresh_models(
        self, model: str, request: gr.Request | None = None
    ) -> tuple[dict, str]:
        """The picker filled from Ollama, and the status line for the model it keeps."""
        service = await open_service(self.handle)
        internals = shows_internals(self.settings, request)
        try:
            models = await service.engines.list_models()
        except OllamaStackError as error:
            warn(str(error) if internals else hidden(service.engines, str(error)))
            models = None
        picker = model_picker(models, model, await service.engines.default_model())
        return picker, await status_line(service.engines, picker["value"], internals=internals)

    async def status(self, model: str, request: gr.Request | None = None) -> str:
        service = await open_service(self.handle)
        internals = shows_internals(self.settings, request)
        return await status_line(service.engines, model or self.settings.model, internals=internals)
