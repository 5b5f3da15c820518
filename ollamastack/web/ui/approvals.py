"""The page's side of tool approval and of the tool list: plain async functions for the
Approve / Deny buttons and the "Refresh tools" button, which the layout wires.

A turn whose model called a tool of `OLLAMASTACK_CONFIRM_TOOLS` ends with an `ApprovalPending`
event (just before `Done`): the page shows the call with Approve and Deny (`approval_prompt`).
`decide` streams the rest of that turn as frames of events, exactly like a sent message's
(`Started`, the call's `ToolCall` again, its `ToolResult`, the answer, `Done`), to fold into
the chat the same way. Refusals raise typed errors before anything changes: nothing waiting
(`NothingToApprove`), another user's conversation (`SessionNotFound`, as for an unknown id),
the conversation still answering (`SessionBusy`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import gradio as gr

from ollamastack.events import ApprovalPending
from ollamastack.web.coalesce import FRAME_SECONDS, any_delta
from ollamastack.web.edge import Edge, caller_of, user_errors
from ollamastack.web.turns import Frame, TurnPipeline, TurnRequest
from ollamastack.web.ui.safe_markdown import safe_markdown

if TYPE_CHECKING:
    from ollamastack.agent.approval import Pending

TOOLS_HEADERS = ["Tool", "Server", "Reachable", "Description"]

# The bar over the box while a call waits: Handlebars escapes the tool's name and arguments
# (the model's words); its buttons send `click` with {"approve": true | false}.
APPROVAL_TEMPLATE = """
{{#if value}}
<div class="approval" role="alert">
  <p>The model wants to run <strong>{{value.name}}</strong> with:</p>
  <pre>{{value.args}}</pre>
  <p class="buttons">
    <button type="button" class="approve" data-approve="1">Approve</button>
    <button type="button" class="deny" data-approve="0">Deny</button>
  </p>
</div>
{{/if}}
"""
APPROVAL_CSS = """
.approval { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 12px;
  background: var(--background-fill-secondary); }
.approval p { margin: 4px 0; }
.approval pre { white-space: pre-wrap; word-break: break-word; margin: 4px 0; max-height: 12em;
  overflow: auto; color: var(--body-text-color); }
.approval .buttons { display: flex; gap: 8px; }
.approval button { padding: 4px 14px; border-radius: 6px; cursor: pointer; font: inherit;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-primary);
  color: var(--body-text-color); }
.approval .approve { background: #1d4ed8; border-color: #1d4ed8; color: white; }
"""
APPROVAL_SCRIPT = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-approve]');
  if (!button) return;
  element.querySelectorAll('button[data-approve]').forEach((b) => { b.disabled = true; });
  trigger('click', {approve: button.dataset.approve === '1'});
});
"""


def tool_rows(entries: Iterable[Any]) -> list[list]:
    return [[e.name, e.server or "built-in", "yes" if e.reachable else "no", e.description]
            for e in entries]


def approval_value(call: ApprovalPending | None) -> dict | None:
    """The approval bar's value: the waiting call's name and arguments, None for no bar.

    >>> approval_value(ApprovalPending("s", "c1", "send_mail", {"to": "a@b"}))
    {'name': 'send_mail', 'args': '{\\n  "to": "a@b"\\n}'}
    """
    if call is None:
        return None
    return {"name": call.name, "args": json.dumps(call.args, indent=2, ensure_ascii=False)}


def approval_component() -> gr.HTML:
    return gr.HTML(None, html_template=APPROVAL_TEMPLATE, css_template=APPROVAL_CSS,
                   js_on_load=APPROVAL_SCRIPT, elem_id="approval")


def approval_prompt(call: ApprovalPending | Pending) -> str:
    """What the page shows over Approve / Deny: the tool and its arguments, as safe Markdown
    (the arguments are the model's, so never rendered as markup).

    >>> print(approval_prompt(ApprovalPending("s", "c1", "send_mail", {"to": "<b>x</b>"})))
    The model wants to run **send_mail** with:
    <BLANKLINE>
    ```json
    {
      "to": "<b>x</b>"
    }
    ```
    <BLANKLINE>
    Run it?
    """
    args = json.dumps(call.args, indent=2, ensure_ascii=False).replace("```", "`\u200b``")
    text = f"The model wants to run **{call.name}** with:\n\n```json\n{args}\n```\n\nRun it?"
    return safe_markdown(text)


def tools_status(unreachable: dict[str, str]) -> str:
    """The status line's note on MCP servers that did not answer ("" when all did).

    >>> tools_status({"notes": "ConnectError: refused"})
    'MCP server notes is not reachable; its tools are left out.'
    >>> tools_status({"a": "x", "b": "y"})
    'MCP servers a, b are not reachable; their tools are left out.'
    """
    if not unreachable:
        return ""
    names = ", ".join(unreachable)
    if len(unreachable) == 1:
        return f"MCP server {names} is not reachable; its tools are left out."
    return f"MCP servers {names} are not reachable; their tools are left out."


class ApprovalHandlers:
    """The handlers; the user always comes from the request, as for every page event."""

    def __init__(self, turns: TurnPipeline, edge: Edge) -> None:
        self.turns, self.edge = turns, edge

    async def waiting(
        self, session_id: str, request: gr.Request | None = None
    ) -> ApprovalPending | None:
        """The call waiting in `session_id` (after a reload, or on switching to it), or None;
        None too for no conversation yet."""
        if not session_id:
            return None
        service = await self.turns.handle.get()
        call = await service.waiting_call(session_id, caller_of(request).user)
        return None if call is None else ApprovalPending(session_id, call.call_id, call.name,
                                                         call.args)

    async def decide(
        self, session_id: str, approve: bool, request: gr.Request | None = None,
        *, interval: float = FRAME_SECONDS,
    ) -> AsyncIterator[Frame]:
        """Approve (or deny) the waiting call and stream the rest of its turn, frame by frame,
        counted and recorded like a sent message (`ui_approve` / `ui_deny`)."""
        caller = caller_of(request)
        endpoint = "ui_approve" if approve else "ui_deny"
        with self.turns.admitted(endpoint, caller, TurnRequest("", session_id)) as entry:
            frames = self.turns.approval_frames(
                entry, caller.user, session_id, approve, interval=interval, may_wait=any_delta
            )
            async with aclosing(frames):
                async for frame in frames:
                    yield frame

    async def tools(self) -> list[list]:
        """The tools the agent has now, as rows for a Dataframe with `TOOLS_HEADERS`."""
        service = await self.turns.handle.get()
        return tool_rows(service.tool_entries())

    async def approval_for(self, session_id: str, request: gr.Request | None = None) -> Any:
        """The approval bar's value for the conversation on screen (see `approval_value`)."""
        with user_errors(html=True):
            return approval_value(await self.waiting(session_id, request))

    async def refresh_tools(self, request: gr.Request | None = None) -> tuple[list[list], str]:
        """"Refresh tools": ask the MCP servers again. Returns (rows for a Dataframe with
        `TOOLS_HEADERS`, the status line's note on servers that did not answer)."""
        caller = caller_of(request)
        with user_errors(html=True), self.edge.audit("ui_refresh_tools", caller):
            self.edge.count_message(caller)
            service = await self.turns.handle.get()
            rows = tool_rows(await service.refresh_tools())
            unreachable = service.toolbox.unreachable() if service.toolbox else {}
            return rows, tools_status(unreachable)
