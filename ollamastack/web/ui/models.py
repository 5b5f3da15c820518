"""The Models tab: what Ollama has installed, pulling a model with progress, deleting one."""

from __future__ import annotations

import html
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ollamastack import validation
from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.engines.types import ModelInfo, PullProgress
from ollamastack.errors import OllamaStackError
from ollamastack.web.edge import Edge, caller_of, models_refusal
from ollamastack.web.ui.status import SKIP, open_service, warn

HEADERS = ["Model", "Size", "Parameters", "Quantization", "Capabilities", "In memory"]
PROGRESS_INTERVAL = 0.1  # pull progress is redrawn at most ten times a second
PROGRESS_CSS = """
.pull-progress { display: flex; align-items: center; gap: 12px; }
.pull-progress progress { flex: 1; height: 14px; }
"""


def human_size(size: int) -> str:
    """
    >>> human_size(2_019_393_189), human_size(512), human_size(3_500_000)
    ('2.0 GB', '512 B', '3.5 MB')
    """
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def model_rows(models: list[ModelInfo], running: set[str]) -> list[list[str]]:
    return [
        [
            m.name,
            human_size(m.size),
            m.parameter_size,
            m.quantization,
            ", ".join(m.capabilities),
            "yes" if m.name in running else "",
        ]
        for m in models
    ]


@dataclass
class PullTracker:
    """Overall progress of a pull: Ollama reports bytes per layer, layer after layer."""

    totals: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    status: str = ""

    def add(self, step: PullProgress) -> None:
        self.status = step.status
        if step.digest and step.total:
            self.totals[step.digest] = step.total
            self.done[step.digest] = step.completed

    @property
    def fraction(self) -> float:
        total = sum(self.totals.values())
        return sum(self.done.values()) / total if total else 0.0

    def html(self, name: str) -> str:
        """A progress bar and a line of text.

        >>> tracker = PullTracker()
        >>> tracker.add(PullProgress("pulling 1a2b", completed=500, total=2000, digest="d1"))
        >>> print(tracker.html("qwen3").replace("> <", ">\\n<"))
        <div class="pull-progress"><progress value="0.250" max="1"></progress>
        <span>qwen3: pulling 1a2b · 25% of 2.0 kB</span></div>
        """
        total = sum(self.totals.values())
        size = f" · {self.fraction:.0%} of {human_size(total)}" if total else ""
        text = html.escape(f"{name}: {self.status}{size}")
        return (
            f'<div class="pull-progress"><progress value="{self.fraction:.3f}" max="1">'
            f"</progress> <span>{text}</span></div>"
        )


def note(text: str) -> str:
    return f'<div class="pull-progress"><span>{html.escape(text)}</span></div>'


class ModelsHandlers:
    """Everything the Models tab does; models belong to the Ollama server, not to a user, so
    pulling and deleting them can be kept to administrators (see `edge.models_refusal`)."""

    def __init__(
        self,
        handle: ServiceHandle,
        *,
        edge: Edge | None = None,
        update_interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handle = handle
        self.edge = edge or Edge(handle.settings)
        self.update_interval = update_interval
        self.clock = clock

    async def table(self) -> tuple[list[list[str]], dict]:
        """(rows of the models table, choices of the delete picker)."""
        service = await open_service(self.handle)
        try:
            models = await service.engines.list_models()
            running = {m.name for m in await service.engines.running_models()}
        except OllamaStackError as error:
            warn(str(error))
            return [], gr.update(choices=[], value=None)
        names = [m.name for m in models if not m.embedded]  # it comes with the app
        return model_rows(models, running), gr.update(choices=names, value=None)

    async def pull(
        self, name: str, request: gr.Request | None = None
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Pull `name`, streaming (progress, table, delete picker); the table ends refreshed."""
        caller = caller_of(request)
        with self.edge.audit("ui_pull", caller, model=str(name)) as entry:
            try:
                self.edge.check_models(caller)
                name = validation.model_name(name, registries=self.edge.settings.registries)
            except OllamaStackError as error:
                entry.fail(error)
                warn(str(error))
                yield note(str(error)), SKIP, SKIP
                return
            service = await open_service(self.handle)
            tracker = PullTracker(status="starting")
            yield tracker.html(name), SKIP, SKIP
            last = self.clock()
            try:
                async with aclosing(service.engines.pull(name)) as steps:
                    async for step in steps:
                        changed = step.status != tracker.status and not step.digest
                        tracker.add(step)
                        now = self.clock()
                        if changed or now - last >= self.update_interval:
                            yield tracker.html(name), SKIP, SKIP
                            last = now
            except OllamaStackError as error:
                entry.fail(error)
                warn(f"Could not pull {name}: {error}")
                yield note(f"Could not pull {name}: {error}"), SKIP, SKIP
                return
            rows, picker = await self.table()
            yield note(f"{name} is installed."), rows, picker

    def ask_delete(self, name: str | None, request: gr.Request | None = None) -> tuple[dict, str]:
        """Show the confirmation: (confirmation box, its text)."""
        if not name:
            warn("Choose a model to delete.")
            return gr.update(visible=False), ""
        if refusal := models_refusal(self.edge.settings, caller_of(request).user):
            warn(refusal)
            return gr.update(visible=False), ""
        question = f"Delete **{name}** from Ollama? Its files are removed; pull it to get it back."
        return gr.update(visible=True), question

    def cancel_delete(self) -> dict:
        return gr.update(visible=False)

    async def delete(
        self, name: str | None, request: gr.Request | None = None
    ) -> tuple[dict, Any, Any, str]:
        """Delete after confirmation: (confirmation box, table, delete picker, note)."""
        hidden = gr.update(visible=False)
        if not name:
            return hidden, SKIP, SKIP, ""
        caller = caller_of(request)
        with self.edge.audit("ui_delete_model", caller, model=str(name)) as entry:
            try:
                self.edge.check_models(caller)
                name = validation.model_name(name, registries=self.edge.settings.registries)
                service = await open_service(self.handle)
                await service.engines.delete(name)
            except OllamaStackError as error:
                entry.fail(error)
                warn(f"Could not delete {name}: {error}")
                return hidden, SKIP, SKIP, note(f"Could not delete {name}: {error}")
            rows, picker = await self.table()
            return hidden, rows, picker, note(f"{name} was deleted.")


@dataclass
class ModelsTab:
    """The tab's components that the page wires to the rest (e.g. the chat's model picker)."""

    table: gr.Dataframe
    to_delete: gr.Dropdown
    pulled: Any  # the pull's event, to chain a refresh of the chat's picker
    deleted: Any


def build_models_tab(handlers: ModelsHandlers) -> ModelsTab:
    """Lay out the tab inside the open `gr.Tab` and wire its events."""
    private: dict[str, Any] = {"api_visibility": "private"}
    table = gr.Dataframe(
        headers=HEADERS, datatype="str", interactive=False, label="Installed models",
        elem_id="models-table", wrap=True,
    )
    with gr.Row():
        refresh = gr.Button("↻ Refresh", size="sm", scale=0, min_width=120)
    gr.Markdown("#### Pull a model")
    with gr.Row(equal_height=True):
        pull_name = gr.Textbox(
            show_label=False, placeholder="A name from ollama.com/library: llama3.2, qwen3:8b…",
            scale=4, elem_id="pull-name", container=False,
        )
        pull_button = gr.Button("Pull", variant="primary", scale=1, min_width=120)
    progress = gr.HTML(elem_id="pull-progress", css_template=PROGRESS_CSS)
    gr.Markdown("#### Delete a model")
    with gr.Row(equal_height=True):
        to_delete = gr.Dropdown(
            show_label=False, choices=[], scale=4, container=False, elem_id="delete-name"
        )
        delete_button = gr.Button("Delete…", variant="stop", scale=1, min_width=120)
    with gr.Group(visible=False) as confirm:
        question = gr.Markdown()
        with gr.Row():
            confirm_button = gr.Button("Yes, delete it", variant="stop")
            cancel_button = gr.Button("Cancel")

    listing = [table, to_delete]
    refresh.click(handlers.table, None, listing, api_name="ui_models_table", **private)
    pulled = gr.on(
        [pull_button.click, pull_name.submit], handlers.pull, pull_name,
        [progress, table, to_delete], api_name="ui_pull", show_progress="hidden", **private,
    )
    delete_button.click(
        handlers.ask_delete, to_delete, [confirm, question], api_name="ui_ask_delete", **private
    )
    cancel_button.click(
        handlers.cancel_delete, None, confirm, api_name="ui_cancel_delete", **private
    )
    deleted = confirm_button.click(
        handlers.delete, to_delete, [confirm, table, to_delete, progress],
        api_name="ui_delete_model", **private,
    )
    return ModelsTab(table=table, to_delete=to_delete, pulled=pulled, deleted=deleted)
