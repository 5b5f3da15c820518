"""The Gradio app: the page and the named API over one chat service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ollamastack.api import register_api
from ollamastack.core import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.ui import build_ui


@dataclass
class WebApp:
    blocks: gr.Blocks
    service: ServiceHandle


def build_app(settings: Settings) -> WebApp:
    """Build the page and the API; nothing connects until the first request."""
    service = ServiceHandle(settings)
    with gr.Blocks(title="OllamaStack") as blocks:
        build_ui(settings, service)
        register_api(settings, service)
    # Never Gradio's default of one generation at a time for the whole server.
    blocks.queue(default_concurrency_limit=settings.concurrency)
    return WebApp(blocks, service)


def launch(app: WebApp, settings: Settings, **options: Any) -> tuple[Any, str, str | None]:
    """Serve on the configured address; login, share link and MCP come from settings."""
    return app.blocks.launch(
        server_name=settings.server_name,
        server_port=settings.server_port,
        share=settings.share,
        auth=settings.logins or None,
        mcp_server=settings.mcp,
        **options,
    )
