"""The Gradio app: the page and the named API over one chat service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from ollamastack.api import register_api
from ollamastack.core import ServiceHandle
from ollamastack.http import EdgeMiddleware
from ollamastack.ollama_client import Health
from ollamastack.settings import Settings
from ollamastack.ui import build_ui


@dataclass
class WebApp:
    blocks: gr.Blocks
    service: ServiceHandle

    async def health(self) -> Health:
        return await (await self.service.get()).ollama.health()

    def app_kwargs(self) -> dict[str, Any]:
        """The health route, security headers, and closing the service at shutdown."""

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[None]:
            yield
            await self.service.close()

        edge = Middleware(EdgeMiddleware, health=self.health)
        return {"middleware": [edge], "lifespan": lifespan}


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
        app_kwargs=app.app_kwargs(),
        **options,
    )
