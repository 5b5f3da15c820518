"""The message box and what it knows between events of one browser tab.

One composer: Send while idle, Stop while answering (Esc too); a message sent while an answer
streams waits in a visible queue and goes out when that answer ends. `Composer` lives in a
`gr.State`, whose value Gradio hands by reference to every event of the tab, so the turn in
progress sees what a later event queued.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

SEND = "Send"
STOP = "Stop"


@dataclass
class Composer:
    """One tab's composer. `running`: the token of this tab's turn streaming now (None when
    idle); `queued`: messages waiting for it; `settles_to_skip`: events that only queued a
    message, whose settle must leave the page to the turn; `failed`: a message whose turn
    failed before anything was stored (Retry sends it again); `leave_to`: the conversation
    to open once the user agrees to stop the answer; `viewing`: the conversation on screen
    (a stopped turn settling late must not draw over another)."""

    running: object | None = None
    queued: list[str] = field(default_factory=list)
    settles_to_skip: int = 0
    failed: str = ""
    leave_to: str | None = None
    viewing: str = ""


def busy_box(*, clear: bool) -> dict[str, Any]:
    """The box while answering: Stop in place of Send (`clear`: empty it, it was sent)."""
    update: dict[str, Any] = {"submit_btn": False, "stop_btn": STOP}
    return gr.update(value="", **update) if clear else gr.update(**update)


def idle_box(value: str | None = None) -> dict[str, Any]:
    """The box once idle: Send again; `value` refills it (refused or unqueued messages)."""
    if value is None:
        return gr.update(submit_btn=SEND, stop_btn=False)
    return gr.update(value=value, submit_btn=SEND, stop_btn=False)


def queue_note(composer: Composer) -> dict[str, Any]:
    """The note over the box naming what waits to be sent (hidden when nothing does).

    >>> queue_note(Composer(queued=["<b>hi</b>"]))["value"]
    'Queued: “&lt;b&gt;hi&lt;/b&gt;” will be sent when this answer ends.'
    """
    if not composer.queued:
        return gr.update(value="", visible=False)
    first = composer.queued[0]
    shown = first if len(first) <= 80 else f"{first[:80]}…"
    more = f" (and {len(composer.queued) - 1} more)" if len(composer.queued) > 1 else ""
    return gr.update(
        value=f"Queued: “{html.escape(shown)}”{more} will be sent when this answer ends.",
        visible=True,
    )


def notice(text: str) -> dict[str, Any]:
    """A one-line notice over the box (a refused message, a limit): said once, in place."""
    return gr.update(value=f"⚠ {html.escape(text)}", visible=True)


def no_notice() -> dict[str, Any]:
    return gr.update(value="", visible=False)
