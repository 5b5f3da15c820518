"""The Models tab's behaviour: what Ollama has installed (each row with "Use in chat" and
Delete), pulling a model with its progress, and stopping a pull; how it looks is `model_table`.

Each outcome is said once, where it happened, and never as a toast: above the table for the
list, "Use in chat" and Delete; on the pull's line for a pull. Operator detail (Ollama's
address, how to start it) sits behind "Details", and names Ollama's address only for those who
may see it (`sees_internals`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ollamastack import validation
from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import OllamaStackError, OllamaUnavailable
from ollamastack.web.edge import Edge, caller_of, models_refusal
from ollamastack.web.http import sees_internals, without_address
from ollamastack.web.ui.model_table import (
    CSS,
    ROW_ACTIONS,
    PullTracker,
    action_of,
    note,
    pull_problem,
    table_html,
)
from ollamastack.web.ui.picker import can_chat, installed
from ollamastack.web.ui.status import SKIP, open_service

PROGRESS_INTERVAL = 0.1  # pull progress is redrawn at most ten times a second


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

    def _shown(self, text: str, request: gr.Request | None) -> str:
        """`text` as this caller may read it: Ollama's address only for `sees_internals`."""
        caller = caller_of(request)
        if request is None or sees_internals(self.edge.settings, caller.user, caller.client):
            return text
        return without_address(text, *self.edge.settings.ollama_hosts)

    def _problem(self, doing: str, error: OllamaStackError, request: gr.Request | None) -> str:
        """A failure's note: plain words, and Ollama's own message behind "Details"."""
        if isinstance(error, OllamaUnavailable):
            words, detail = f"{doing}: Ollama is not reachable.", str(error)
        else:
            words, detail = f"{doing}: {error}", ""
        return note(self._shown(words, request), self._shown(detail, request), alert=True,
                    css="models-notice")

    async def table(
        self, request: gr.Request | None = None, *, confirming: str = "", focus: str = "",
        said: str = "",
    ) -> tuple[str, str]:
        """(the models table, the notice above it: why it is empty, or what was just done)."""
        service = await open_service(self.handle)
        listed = await installed(service.engines)
        running: set[str] = set()
        try:  # not asked while Ollama is down: each try may wait for its connect timeout
            if listed.reachable:
                running = {m.name for m in await service.engines.running_models()}
        except OllamaStackError:
            pass  # the table is still right without it
        may_manage = not models_refusal(self.edge.settings, caller_of(request).user)
        table = table_html(listed, running, may_manage=may_manage, confirming=confirming,
                           focus=focus)
        if listed.reachable:
            return table, said
        if any(m.embedded for m in listed.models):
            words = ("Ollama is not reachable, so its models are not listed; the embedded model "
                     "below still answers in the Chat tab.")
        else:
            words = ("Ollama is not reachable, so no models are listed. Start it, then press "
                     "Refresh list.")
        detail = self._shown(listed.problem, request)
        return table, note(words, detail, alert=True, css="models-notice")

    async def pull(
        self, name: str, request: gr.Request | None = None
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Pull `name`, streaming (progress, table, notice, Pull button, Cancel button); the
        table ends refreshed. Stopping the stream (Cancel) closes the request to Ollama."""
        idle, hidden = gr.update(interactive=True), gr.update(visible=False)
        caller = caller_of(request)
        with self.edge.audit("ui_pull", caller, model=str(name)) as entry:
            try:
                self.edge.check_models(caller)
                name = validation.model_name(name, registries=self.edge.settings.registries)
            except OllamaStackError as error:
                entry.fail(error)
                yield note(str(error), alert=True), SKIP, SKIP, SKIP, SKIP
                return
            service = await open_service(self.handle)
            tracker = PullTracker(name, clock=self.clock)
            yield tracker.html(), SKIP, SKIP, gr.update(interactive=False), gr.update(visible=True)
            last = self.clock()
            try:
                async with aclosing(service.pull_model(name, caller.user)) as steps:
                    async for step in steps:
                        changed = step.status != tracker.status and not step.digest
                        tracker.add(step)
                        now = self.clock()
                        if changed or now - last >= self.update_interval:
                            yield tracker.html(), SKIP, SKIP, SKIP, SKIP
                            last = now
            except OllamaStackError as error:
                entry.fail(error)
                words, detail = pull_problem(name, error)
                shown = note(self._shown(words, request), self._shown(detail, request),
                             alert=True)
                yield shown, SKIP, SKIP, idle, hidden
                return
            table, notice = await self.table(request)
            done = note(f"{name} is installed: press “Use in chat” in its row to chat with it.")
            yield done, table, notice, idle, hidden

    def cancel_pull(self, name: str) -> tuple[str, dict, dict]:
        """What Cancel leaves: (progress, Pull button, Cancel button). Ollama keeps what it
        downloaded (until it restarts), so pulling the same name again resumes."""
        name = str(name or "").strip() or "the model"
        words = (f"Stopped pulling {name}. Ollama keeps the parts already downloaded until it "
                 f"restarts: pull {name} again to resume.")
        return note(words), gr.update(interactive=True), gr.update(visible=False)

    async def row_action(
        self, event: gr.EventData, request: gr.Request | None = None
    ) -> tuple[str, str]:
        """A row's Delete (ask first) or Keep it: (table, notice)."""
        action, model = action_of(event)
        if action == "delete":
            if refusal := models_refusal(self.edge.settings, caller_of(request).user):
                return SKIP, note(refusal, alert=True, css="models-notice")
            return await self.table(request, confirming=model)
        return await self.table(request, focus=model)  # "Keep it"

    async def delete(
        self, event: gr.EventData, request: gr.Request | None = None
    ) -> tuple[str, str]:
        """A row's "Yes, delete": (table, notice)."""
        action, model = action_of(event)
        if action != "confirm":  # only that button deletes
            return SKIP, SKIP
        caller = caller_of(request)
        with self.edge.audit("ui_delete_model", caller, model=model) as entry:
            try:
                self.edge.check_models(caller)
                name = validation.model_name(model, registries=self.edge.settings.registries)
                service = await open_service(self.handle)
                await service.delete_model(name, caller.user)
            except OllamaStackError as error:
                entry.fail(error)
                table, _ = await self.table(request)
                return table, self._problem(f"Could not delete {model}", error, request)
            return await self.table(request, said=note(f"{name} was deleted.", css="models-notice"))

    async def use(
        self, event: gr.EventData, request: gr.Request | None = None
    ) -> tuple[str, str]:
        """A row's "Use in chat": (the chosen model, notice); a model that is gone or cannot
        chat is not chosen ("")."""
        _, model = action_of(event)
        service = await open_service(self.handle)
        listed = await installed(service.engines)
        found = next((m for m in listed.models if m.name == model), None)
        if found is None:
            words = f"{model or 'That model'} is not installed any more: press Refresh list."
            return "", note(words, alert=True, css="models-notice")
        if not can_chat(found):
            words = f"{found.name} only makes embeddings (vectors of text): it cannot chat."
            return "", note(words, alert=True, css="models-notice")
        return found.name, note(f"The chat now uses {found.name}.", css="models-notice")

    @staticmethod
    def chose(chosen: str) -> None:
        """Let the chain after "Use in chat" go on only when a model was chosen: an event
        that raises stops its `.success` listeners (the notice has said why; no toast)."""
        if not chosen:
            raise gr.Error("No model was chosen.", visible=False, print_exception=False)


@dataclass
class ModelsTab:
    """What the page wires to the rest: `listing` is what `ModelsHandlers.table` fills (on page
    load); `used` succeeds when "Use in chat" chose a model, which `chosen` then holds: chain
    `used.success(switch, chosen, ...)` (not `.then`, which also runs when nothing was chosen);
    `pulled` and `deleted` end with the installed models changed (refresh the picker then)."""

    table: gr.HTML
    notice: gr.HTML
    chosen: gr.State
    used: Any  # "Use in chat" chose `chosen`: chain `.success(..., inputs=chosen)`
    pulled: Any
    deleted: Any

    @property
    def listing(self) -> list[gr.HTML]:
        return [self.table, self.notice]


def build_models_tab(handlers: ModelsHandlers) -> ModelsTab:
    """Lay out the tab inside the open `gr.Tab` and wire its events."""
    private: dict[str, Any] = {"api_visibility": "private"}
    with gr.Row(equal_height=True):
        gr.Markdown("#### Installed models")
        refresh = gr.Button("↻ Refresh list", size="sm", scale=0, min_width=130,
                            elem_id="models-refresh")
    notice = gr.HTML(elem_id="models-notice", css_template=CSS)
    table = gr.HTML(elem_id="models-table", js_on_load=ROW_ACTIONS, css_template=CSS,
                    label="Installed models")
    chosen = gr.State("")
    gr.Markdown("#### Pull a model")
    with gr.Row(equal_height=True):
        pull_name = gr.Textbox(
            label="Model to pull", scale=4, elem_id="pull-name",
            placeholder="e.g. qwen3:8b", info="A name from ollama.com/library or hf.co/…",
        )
        pull_button = gr.Button("Pull", variant="primary", scale=1, min_width=100,
                                elem_id="pull")
        cancel_button = gr.Button("Cancel pull", scale=1, min_width=100, visible=False,
                                  elem_id="cancel-pull")
    progress = gr.HTML(elem_id="pull-progress", css_template=CSS)

    listing = [table, notice]
    refresh.click(handlers.table, None, listing, api_name="ui_models_table", **private)
    pulled = gr.on(
        [pull_button.click, pull_name.submit], handlers.pull, pull_name,
        [progress, table, notice, pull_button, cancel_button], api_name="ui_pull",
        show_progress="hidden", **private,
    )
    cancel_button.click(
        handlers.cancel_pull, pull_name, [progress, pull_button, cancel_button],
        cancels=[pulled], api_name="ui_cancel_pull", **private,
    )
    table.click(handlers.row_action, None, listing, api_name="ui_model_row", **private)
    deleted = table.select(handlers.delete, None, listing, api_name="ui_delete_model",
                           **private)
    pressed = table.submit(handlers.use, None, [chosen, notice], api_name="ui_use_model",
                           **private)
    used = pressed.success(handlers.chose, chosen, None, api_name="ui_chose_model",
                           **private)
    return ModelsTab(table=table, notice=notice, chosen=chosen, used=used, pulled=pulled,
                     deleted=deleted)
