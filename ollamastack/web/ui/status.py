"""What the page says about Ollama (the status line, the model picker's choices), and what
every page handler shares: toasts, opening the chat service, `SKIP`."""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import gradio as gr

from ollamastack.engines.types import EMBEDDED, ModelInfo
from ollamastack.errors import OllamaStackError
from ollamastack.web.edge import caller_of, user_errors
from ollamastack.web.http import OLLAMA_DOWN, sees_internals, without_address

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


def full_name(model: str) -> str:
    """The name Ollama lists a model under.

    >>> full_name("llama3.2"), full_name("qwen3:8b"), full_name("hf.co/a/b")
    ('llama3.2:latest', 'qwen3:8b', 'hf.co/a/b:latest')
    """
    if ":" in model.rsplit("/", 1)[-1]:
        return model
    return f"{model}:latest"


def model_label(model: ModelInfo) -> str:
    """The picker's label: the name, marked when the model cannot use tools or thinks.

    >>> model_label(ModelInfo("gemma3:latest", 1, "4B", "Q4_K_M", "gemma3", ("completion",)))
    'gemma3:latest (prompted tools)'
    >>> model_label(ModelInfo("qwen3:8b", 1, "8B", "Q4_K_M", "qwen3", ("tools", "thinking")))
    'qwen3:8b (thinking)'
    >>> model_label(ModelInfo("embedded/smollm2-135m", 1, "135M", "Q4_1", "", ("completion",),
    ...                       engine="embedded"))
    'embedded/smollm2-135m (in the app, prompted tools)'
    """
    marks = ["in the app"] if model.embedded else []
    marks += [] if model.supports_tools else ["prompted tools"]  # no native tool calling
    if "thinking" in model.capabilities:
        marks.append("thinking")
    return f"{model.name} ({', '.join(marks)})" if marks else model.name


def pick_model(names: Sequence[str], current: str | None, default: str) -> str:
    """Keep the current choice if still installed, else the configured default, else the first.

    >>> pick_model(["a:latest", "llama3.2:latest"], None, "llama3.2")
    'llama3.2:latest'
    >>> pick_model(["a:latest", "b:latest"], "b:latest", "llama3.2")
    'b:latest'
    >>> pick_model([], None, "llama3.2")
    'llama3.2'
    """
    for wanted in (current, default):
        if wanted in names:  # e.g. the embedded model, which has no tags
            return wanted
        if wanted and full_name(wanted) in names:
            return full_name(wanted)
    return names[0] if names else default


def model_picker(models: Sequence[ModelInfo] | None, current: str | None, default: str) -> dict:
    """The picker's update; with Ollama unreachable it offers the default alone."""
    if not models:
        keep = current or default
        return gr.update(choices=[(keep, keep)], value=keep)
    names = [m.name for m in models]
    return gr.update(
        choices=[(model_label(m), m.name) for m in models],
        value=pick_model(names, current, default),
    )


async def status_line(engines: Engines, model: str, *, internals: bool = False) -> str:
    """Whether Ollama answers, and whether `model` is there and loaded; for the embedded
    model, that it answers from inside the app and how to connect Ollama. Where Ollama runs
    and its version only with `internals` (see `shows_internals`): the page may be public."""
    health = await engines.health()
    problem = ""
    if not health.reachable and internals:
        problem = health.error if health.url in health.error else f"{health.url}: {health.error}"
    elif not health.reachable:
        problem = hidden(engines, health.error or OLLAMA_DOWN)
    head = f"Ollama {health.version} at `{health.url}`" if internals else "Ollama is up"
    if engines.engine_of(model) == EMBEDDED:
        here = f"model `{model}` is the small model that runs inside the app (llama.cpp, CPU)"
        if problem:
            return (f"{YELLOW_DOT} {problem} · {here}: to chat with your own models, start "
                    "Ollama or point `OLLAMA_HOST` at it, then pick one here")
        return f"{GREEN_DOT} {head} · {here}"
    if problem:
        return f"{RED_DOT} {problem}"
    try:
        installed = {m.name for m in await engines.list_models()}
        running = {m.name for m in await engines.running_models()}
    except OllamaStackError as error:
        shown = str(error) if internals else hidden(engines, str(error))
        return f"{RED_DOT} {head}: {shown}"
    if full_name(model) not in installed:
        return f"{RED_DOT} {head} · model `{model}` is not installed: pull it in the Models tab"
    if full_name(model) in running:
        return f"{GREEN_DOT} {head} · model `{model}` is loaded in memory"
    cold = "is not loaded yet: its first answer waits while it loads"
    return f"{GREEN_DOT} {head} · model `{model}` {cold}"


def hidden(engines: Engines, text: str) -> str:
    """An error's message naming none of Ollama's addresses, for a page that may be public."""
    return without_address(text, *engines.settings.ollama_hosts)


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
