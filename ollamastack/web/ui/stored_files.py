"""A stored conversation drawn with its images: each image the chat service keeps is written
into Gradio's cache (the folder its file route serves, under a folder named by the hash of
the bytes and Gradio's random seed), never served from the data dir.

The pure drawing is `history_view.history_view`; this only fetches what it shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gradio import ChatMessage
from gradio.processing_utils import save_bytes_to_cache
from gradio.utils import get_upload_folder
from langchain_core.messages import AnyMessage, HumanMessage

from ollamastack.errors import OllamaStackError
from ollamastack.web.ui.history_view import history_view

if TYPE_CHECKING:
    from ollamastack.agent.service import ChatService

log = logging.getLogger(__name__)


async def shown_history(
    service: ChatService, session_id: str, user: str, messages: Sequence[AnyMessage], *,
    show_thinking: bool, redact: Callable[[str], str] = str,
) -> list[ChatMessage]:
    """`messages` of `user`'s conversation as the chat shows them, images included."""
    images = await cached_images(service, session_id, user, messages)
    return history_view(messages, show_thinking=show_thinking, redact=redact, images=images)


async def cached_images(
    service: ChatService, session_id: str, user: str, messages: Sequence[AnyMessage]
) -> dict[str, str]:
    """The images attached in `messages`, by file id: where Gradio serves each now. One the
    service no longer has (or refuses) is left out, and named instead of shown."""
    paths: dict[str, str] = {}
    for message in messages:
        if not isinstance(message, HumanMessage):
            continue
        for ref in message.additional_kwargs.get("attachments") or []:
            if not isinstance(ref, dict) or ref.get("kind") != "image":
                continue
            file_id = str(ref.get("id"))
            try:
                _, data = await service.image(session_id, file_id, user)
            except OllamaStackError as error:
                log.info("image %s of session %s not shown: %s", file_id, session_id, error)
                continue
            name = Path(str(ref.get("name") or "image")).name or "image"
            paths[file_id] = await asyncio.to_thread(
                save_bytes_to_cache, data, name, get_upload_folder())
    return paths
