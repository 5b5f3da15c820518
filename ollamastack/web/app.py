"""The Gradio app: the page and the named API over one chat service."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.bus import EventBus
from ollamastack.engines.types import Health
from ollamastack.errors import OllamaStackError, SettingsError
from ollamastack.settings import Settings
from ollamastack.web import gradio_patches
from ollamastack.web.api import NamedApi, register_api
from ollamastack.web.coalesce import FRAME_SECONDS
from ollamastack.web.edge import Edge
from ollamastack.web.http import HealthAndHeaders
from ollamastack.web.logins import LoginGuard, LoginLimiter
from ollamastack.web.metrics import MetricsEndpoint
from ollamastack.web.observers import Observers
from ollamastack.web.proxies import McpCallers, proxy_errors, uvicorn_trusting
from ollamastack.web.rest.door import rest_middleware
from ollamastack.web.rest.slots import TurnSlots
from ollamastack.web.ui import theme
from ollamastack.web.ui.layout import build_ui

log = logging.getLogger(__name__)

WARM_DELAY = 1.0  # seconds after start-up before the embedded model is warmed


@dataclass
class WebApp:
    blocks: gr.Blocks
    handle: ServiceHandle
    edge: Edge
    api: NamedApi
    observers: Observers  # the event bus, metrics, usage records, webhooks
    rest_turns: TurnSlots | None = None  # the REST turns' bound, made anew at each launch

    async def health(self) -> Health:
        """Ollama's health; first, a PostgreSQL that went down since the service opened
        raises `DatabaseUnavailable` (a SQLite file is part of this process)."""
        service = await self.handle.get()
        settings = self.handle.settings
        if settings.on_postgres:
            from ollamastack.storage.memory import check_postgres

            await check_postgres(settings.database_url)
        return await service.engines.health()

    async def warm(self, after: Awaitable[object]) -> None:
        """Open the chat service and warm the embedded model when it answers by default, once
        start-up has settled (`after`, then `WARM_DELAY`): the first page comes first."""
        try:
            await after
            await asyncio.sleep(WARM_DELAY)
            service = await self.handle.get()
            await service.warm()
        except Exception as error:  # the first turn loads it, and says what is wrong
            log.warning("could not warm the embedded model: %s", error)

    def app_kwargs(self) -> dict[str, Any]:
        """The health route, security headers, MCP calls counted as their callers', the login
        limit, forgetting one-off REST sessions, loading the chat service's modules once
        serving, and closing the service at shutdown."""

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[None]:
            loading = asyncio.get_running_loop().run_in_executor(None, preload_core)
            warming = (
                asyncio.ensure_future(self.warm(after=loading))
                if self.handle.settings.embedded else None
            )
            yield
            await loading
            if warming is not None:
                warming.cancel()
            await self.handle.close()
            await self.observers.aclose()

        settings = self.handle.settings
        self.rest_turns = TurnSlots(settings.concurrency)
        middleware = [
            Middleware(HealthAndHeaders, health=self.health),
            Middleware(MetricsEndpoint, metrics=self.observers.metrics, settings=settings,
                       handle=self.handle, health=self.health),  # /metrics, beside /healthz
        ]
        middleware += rest_middleware(  # /api/v1, /v1 (REST and OpenAI)
            settings, self.handle, self.edge, self.rest_turns)
        if settings.mcp:
            middleware.append(Middleware(McpCallers))
        if settings.logins:
            limiter = LoginLimiter(settings.login_attempts)
            logins = [user for user, _ in settings.logins]
            middleware.append(Middleware(
                LoginGuard, limiter=limiter, audit_log=self.edge.audit_log, logins=logins))
        middleware += [Middleware(m) for m in gradio_patches.rest_session_middleware()]
        return {"middleware": middleware, "lifespan": lifespan}


def preload_core() -> None:
    """Import the chat service's modules (LangChain, LangGraph: about half a second), in a
    thread while the page is already served, so that the first message does not wait for them.

    Then freeze what start-up made: Python's full garbage collections would otherwise rescan
    those 300,000 long-lived objects each time, stalling the event loop for about 170 ms,
    twice in four seconds at 32 streaming sessions (issue 8).
    """
    try:
        importlib.import_module("ollamastack.agent.service")
        importlib.import_module("ollamastack.engines.ollama.chat_model").check_chat_ollama()
    except OllamaStackError as error:  # every turn will say it too: see `open_engines`
        log.error("%s", error)
    except Exception:  # the first message imports it again, and reports what fails
        log.exception("could not load the chat service's modules")
    gc.freeze()


def build_app(settings: Settings, *, update_interval: float = FRAME_SECONDS) -> WebApp:
    """Build the page and the API; nothing connects until the first request.

    `update_interval`: how often /chat sends the answer so far while it streams (0: after
    every token, as tests that check each one want)."""
    handle = ServiceHandle(settings, bus := EventBus())
    observers = Observers.build(settings, handle, bus)
    edge = Edge(settings, bus=bus)  # one rate limit and audit log for the page and the API
    # Uploaded files leave Gradio's cache `upload_retention` seconds after they
    # were made (checked as often), and all of them when the app stops.
    retention = settings.upload_retention
    with gr.Blocks(title="OllamaStack", delete_cache=(retention, retention)) as blocks:
        build_ui(blocks, settings, handle, edge, usage=observers.usage)
        api = register_api(settings, handle, edge, update_interval=update_interval,
                           usage=observers.usage)
    # Never Gradio's default of one generation at a time for the whole server.
    blocks.queue(default_concurrency_limit=settings.concurrency)
    gradio_patches.apply(blocks)
    return WebApp(blocks, handle, edge, api, observers)


def private_paths(settings: Settings) -> list[str]:
    """What Gradio's file routes must never serve, even from a folder they otherwise may:
    the data directory (database, audit log) and the SQLite file wherever it lives."""
    paths = [settings.data_dir, *([settings.sqlite_path] if settings.sqlite_path else [])]
    return [str(Path(p).resolve()) for p in paths if str(p) != ":memory:"]


def startup_warnings(settings: Settings) -> list[str]:
    """What a person starting the app should know about who can reach it.

    >>> startup_warnings(Settings(_env_file=None, share=True))[0][:60]
    'OLLAMASTACK_SHARE is on without OLLAMASTACK_AUTH: anyone wit'
    >>> startup_warnings(Settings(_env_file=None, auth="ann:pw", admin_users="ann,bob"))
    ['OLLAMASTACK_ADMIN_USERS names bob (no login in OLLAMASTACK_AUTH).']
    """
    logins = {user for user, _ in settings.logins}
    warnings = []
    if settings.share and not logins:
        warnings.append(
            "OLLAMASTACK_SHARE is on without OLLAMASTACK_AUTH: anyone with the link can chat "
            "with your models and read every conversation of this app. Pulling and deleting "
            'models is off. Set OLLAMASTACK_AUTH="user:password,..." to require a login.'
        )
    if settings.admins and not logins:
        warnings.append(
            "OLLAMASTACK_ADMIN_USERS is set without OLLAMASTACK_AUTH: nobody logs in, so "
            "nobody may pull or delete models."
        )
    elif unknown := sorted(settings.admins - logins) if logins else []:
        warnings.append(
            f"OLLAMASTACK_ADMIN_USERS names {', '.join(unknown)} (no login in OLLAMASTACK_AUTH)."
        )
    return warnings


def startup_errors(settings: Settings) -> list[str]:
    """Settings that each make sense alone but that this app cannot serve: one line each.

    >>> startup_errors(Settings(_env_file=None, mcp=True, auth="ann:pw"))[0][:58]
    'OLLAMASTACK_MCP cannot be used with OLLAMASTACK_AUTH: Grad'
    >>> startup_errors(Settings(_env_file=None, trusted_proxies="10.0.0.5"))
    []
    """
    errors = proxy_errors(settings.proxies)
    if settings.mcp and settings.logins:
        errors.append(
            "OLLAMASTACK_MCP cannot be used with OLLAMASTACK_AUTH: Gradio's MCP server runs "
            "tools without the caller's login, so every tool call would be refused. Turn one "
            "of them off."
        )
    return errors


def launch(app: WebApp, settings: Settings, **options: Any) -> tuple[Any, str, str | None]:
    """Serve on the configured address; login, share link and MCP come from settings
    (`options` are passed on to Gradio and win over them). `SettingsError` for settings
    this app cannot serve (`startup_errors`)."""
    if errors := startup_errors(settings):
        raise SettingsError("\n".join(errors))
    for warning in startup_warnings(settings):
        log.warning(warning)
    arguments: dict[str, Any] = {
        "server_name": settings.server_name,
        "server_port": settings.server_port,
        "share": settings.share,
        "auth": settings.logins or None,
        "mcp_server": settings.mcp,
        "app_kwargs": app.app_kwargs(),
        "blocked_paths": private_paths(settings),
        "max_file_size": settings.upload_bytes,
        "theme": theme.page_theme(),
        "css": theme.CSS,
        "head": theme.HEAD,
    }
    with uvicorn_trusting(settings.proxies):
        return app.blocks.launch(**(arguments | options))
