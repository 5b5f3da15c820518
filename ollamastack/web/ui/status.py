"""What the page says about Ollama (the status line), and what every page handler shares:
toasts, opening the chat service, `SKIP`, how an error reads to this viewer."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import gradio as gr

from ollamastack.engines.types import EMBEDDED
from ollamastack.errors import OllamaStackError
from ollamastack.web.edge import caller_of, user_errors
from ollamastack.web.http import sees_internals, without_address
from ollamastack.web.ui.picker import full_name

if TYPE_CHECKING:
    from ollamastack.agent.service import ChatService
    from ollamastack.agent.service_handle import ServiceHandle
    from ollamastack.engines.factory import Engines
    from ollamastack.settings import Settings

log = logging.getLogger(__name__)

SKIP = gr.skip()  # an output a handler leaves as it is

GREEN_DOT = '<span style="color: #16a34a">●</span>'
YELLOW_DOT = '<span style="color: #ca8a04">●</span>'
RED_DOT = '<span style="color: #dc2626">●</span>'


def warn(message: str) -> None:
    """A yellow toast; Gradio renders its text as HTML, so it is escaped."""
    gr.Warning(html.escape(message))


def toast_errors() -> AbstractContextManager[None]:
    """Our typed errors as a red toast (the handler stops; the page stays as it was)."""
    return user_errors(html=True)


async def open_service(handle: ServiceHandle) -> ChatService:
    """The chat service for a page handler; when it cannot be opened, a red toast says why."""
    with toast_errors():
        return await handle.get()


async def documents_note(service: ChatService, user: str, session_id: str) -> str:
    """What the status line says of the open conversation's documents: that they are
    searched by keyword, when no embedding model is there to search them by meaning."""
    store = service.memory.documents
    if not session_id or store is None:
        return ""
    try:
        files = await store.files(user, session_id)
        if not any(f.kind == "document" for f in files) or await service.engines.embedding_ready():
            return ""
    except OllamaStackError as error:  # the status line says what it can
        log.info("documents of session %s not checked: %s", session_id, error)
        return ""
    model = service.engines.settings.embed_model
    return f"documents: keyword search (pull `{model}` to search by meaning)"


async def status_line(engines: Engines, model: str, *, internals: bool = False) -> str:
    return (await status_of(engines, model, internals=internals))[0]


async def status_of(
    engines: Engines, model: str, *, internals: bool = False
) -> tuple[str, str | None]:
    """The status line: whether Ollama answers, and whether `model` is there and loaded; and
    the embedded model's name when Ollama is down and it could answer instead (else None).

    Said briefly and once: why a turn failed is the chat's to say. Where Ollama runs and its
    version only with `internals` (see `shows_internals`): the page may be public."""
    health = await engines.health()
    where = f" at `{health.url}`" if internals else ""
    head = f"Ollama {health.version}{where}" if internals else "Ollama is up"
    embedded = engines.embedded.name if engines.embedded is not None else None
    if engines.engine_of(model) == EMBEDDED:
        here = f"`{model}` is the small built-in model (runs inside the app, on the CPU)"
        if not health.reachable:
            return f"{YELLOW_DOT} Ollama{where} is not answering · {here}", None
        return f"{GREEN_DOT} {head} · {here}", None
    if not health.reachable:
        return f"{RED_DOT} Ollama{where} is not answering", embedded
    try:
        installed = {m.name for m in await engines.list_models()}
        running = {m.name for m in await engines.running_models()}
    except OllamaStackError:
        return f"{RED_DOT} {head}, but it could not list its models", embedded
    if full_name(model) not in installed:
        return (f"{RED_DOT} {head} · model `{model}` is not installed: pick another, or pull "
                "it in the Models tab"), None
    if full_name(model) in running:
        return f"{GREEN_DOT} {head} · model `{model}` is loaded in memory", None
    cold = "is not loaded yet: its first answer waits while it loads"
    return f"{GREEN_DOT} {head} · model `{model}` {cold}", None


def hidden(engines: Engines, text: str) -> str:
    """An error's message naming none of Ollama's addresses, for a page that may be public."""
    return without_address(text, *engines.settings.ollama_hosts)


def redactor(
    settings: Settings, engines: Engines, request: gr.Request | None
) -> Callable[[str], str]:
    """How this viewer may read an error's text: whole, or naming no Ollama address."""
    if shows_internals(settings, request):
        return str
    return lambda text: hidden(engines, text)


def shows_internals(settings: Settings, request: gr.Request | None) -> bool:
    """Whether the status line may say where Ollama runs (`sees_internals`); a handler
    called in-process, without a request, may."""
    if request is None:
        return True
    caller = caller_of(request)
    return sees_internals(settings, caller.user, caller.client)


async def waiting_title(engines: Engines, model: str) -> str:
    """What the chat shows before the first token: a cold model takes a while to load, and
    the embedded model answers one conversation at a time."""
    if engines.engine_of(model) == EMBEDDED and (ahead := engines.embedded_queue()):
        return f"Waiting for `{model}`: it is answering {ahead} other request(s) first…"
    try:
        running = {m.name for m in await engines.running_models()}
    except OllamaStackError:
        return f"Waiting for `{model}`…"
    if full_name(model) in running:
        return f"Waiting for `{model}`…"
    return f"Loading model `{model}`…"
