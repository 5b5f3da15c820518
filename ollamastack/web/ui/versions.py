"""The versions strip under the chat: for each of your messages that was edited (or retried),
‹ 2 of 3 › to move between its versions, each the branch of the conversation that followed
it. Hidden while no message has a second version.

A `gr.HTML` drawn from its value by a Handlebars template (which escapes the messages' text:
the users' own words); its script sends `select` {"index", "branch"} for an arrow pressed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
from langchain_core.messages import AnyMessage

from ollamastack.errors import OllamaStackError
from ollamastack.web.edge import user_of
from ollamastack.web.ui.conversation_list import event_data
from ollamastack.web.ui.status import open_service, redactor, toast_errors
from ollamastack.web.ui.stored_files import shown_history

SHOWN_CHARS = 40  # of each message's text, to say which message the arrows move

TEMPLATE = """
{{#if value.items.length}}
<div class="versions" role="group" aria-label="Versions of your edited messages">
{{#each value.items}}
  <span class="version" data-index="{{this.index}}">
    <span class="said">“{{this.text}}”</span>
    <button type="button" class="arrow" data-branch="{{this.previous}}"
            aria-label="Earlier version of “{{this.text}}”"
            {{#unless this.previous}}disabled{{/unless}}>‹</button>
    <span class="count">{{this.branch}} of {{this.branches}}</span>
    <button type="button" class="arrow" data-branch="{{this.next}}"
            aria-label="Later version of “{{this.text}}”"
            {{#unless this.next}}disabled{{/unless}}>›</button>
  </span>
{{/each}}
</div>
{{/if}}
"""

CSS = """
.versions { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: var(--text-sm);
  color: var(--body-text-color-subdued); }
.versions .version { display: inline-flex; align-items: center; gap: 6px; }
.versions .said { max-width: 24ch; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; display: inline-block; vertical-align: bottom; }
.versions .arrow { width: 28px; height: 28px; padding: 0; border-radius: 6px;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-primary); }
.versions .arrow:disabled { opacity: 0.4; }
"""

SCRIPT = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button.arrow');
  if (!button || button.disabled) return;
  const version = button.closest('.version');
  trigger('select', {index: Number(version.dataset.index),
                     branch: Number(button.dataset.branch)});
});
"""


def versions_value(messages: Sequence[AnyMessage], infos: Sequence[Any]) -> dict[str, Any]:
    """What the strip draws: each user message with more than one version.

    >>> from types import SimpleNamespace as Info
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> messages = [HumanMessage("Hi"), AIMessage("Hello"), HumanMessage("What is 2+2?")]
    >>> versions_value(messages, [Info(index=0, branch=1, branches=1),
    ...                           Info(index=2, branch=2, branches=3)])
    {'items': [{'index': 2, 'text': 'What is 2+2?', 'branch': 2, 'branches': 3, 'previous': 1, \
'next': 3}]}
    """
    items = []
    for info in infos:
        if info.branches < 2 or not 0 <= info.index < len(messages):
            continue
        text = " ".join(messages[info.index].text.split())
        items.append({
            "index": info.index,
            "text": text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS - 1]}…",
            "branch": info.branch, "branches": info.branches,
            "previous": info.branch - 1 if info.branch > 1 else None,
            "next": info.branch + 1 if info.branch < info.branches else None,
        })
    return {"items": items}


def versions_component() -> gr.HTML:
    return gr.HTML(versions_value([], []), html_template=TEMPLATE, css_template=CSS,
                   js_on_load=SCRIPT, elem_id="versions", visible=False)


def strip(value: dict[str, Any]) -> Any:
    """The strip's update: shown only while some message has versions (a phone's screen
    has no room for an empty row)."""
    return gr.update(value=value, visible=bool(value["items"]))


class VersionHandlers:
    """The strip's events, over the chat service."""

    def __init__(self, handle: Any, settings: Any) -> None:
        self.handle, self.settings = handle, settings

    async def refresh(self, session_id: str, request: gr.Request | None = None) -> Any:
        """The strip for the conversation on screen (hidden without one)."""
        if not session_id:
            return strip(versions_value([], []))
        service = await open_service(self.handle)
        user = user_of(request)
        try:
            messages = await service.history(session_id, user)
            return strip(versions_value(messages, await service.branches(session_id, user)))
        except OllamaStackError:  # gone meanwhile (deleted in another tab): nothing to move
            return strip(versions_value([], []))

    async def switch(
        self, event: gr.EventData, session_id: str, show_thinking: bool,
        request: gr.Request | None = None,
    ) -> tuple[Any, Any]:
        """An arrow pressed: that version's branch shown, and the strip redrawn."""
        data = event_data(event)
        service = await open_service(self.handle)
        user = user_of(request)
        with toast_errors():  # answering now, or a version gone in another tab
            messages = await service.switch_branch(session_id, data.get("index"),
                                                   data.get("branch"), user)
            infos = await service.branches(session_id, user)
        chat = await shown_history(service, session_id, user, messages,
                                   show_thinking=show_thinking,
                                   redact=redactor(self.settings, service.engines, request))
        return chat, strip(versions_value(messages, infos))
