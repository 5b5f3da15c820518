"""The message box and what it knows between events of one browser tab.

One composer (Gradio's multimodal textbox: text, and files picked, dropped or pasted): Send
while idle, Stop while answering (Esc too); a message sent while an answer streams waits in a
visible queue and goes out when that answer ends. `Composer` lives in a `gr.State`, whose
value Gradio hands by reference to every event of the tab, so the turn in progress sees what
a later event queued.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

SEND = "Send"
STOP = "Stop"
# What the box's file picker offers: what the chat service accepts (it checks the bytes).
FILE_TYPES = [".png", ".jpg", ".jpeg", ".webp", ".gif",
              ".txt", ".md", ".markdown", ".csv", ".pdf", ".docx", ".html", ".htm"]


@dataclass(frozen=True)
class Draft:
    """A message as the box holds it: its text and its files (paths Gradio uploaded them to,
    each named as the sender's file was)."""

    text: str = ""
    files: tuple[str, ...] = ()

    @classmethod
    def of(cls, value: object) -> Draft:
        """The box's value: {"text", "files"} (or plain text, as older callers send it).

        >>> Draft.of({"text": "hi", "files": ["/tmp/gradio/ab/notes.md"]})
        Draft(text='hi', files=('/tmp/gradio/ab/notes.md',))
        >>> Draft.of("hi"), Draft.of(None)
        (Draft(text='hi', files=()), Draft(text='', files=()))
        """
        if isinstance(value, dict):
            files = value.get("files") or []
            paths = [f.get("path") if isinstance(f, dict) else f for f in files]
            return cls(str(value.get("text") or ""), tuple(str(p) for p in paths if p))
        return cls(value if isinstance(value, str) else "")

    @property
    def empty(self) -> bool:
        return not self.text.strip() and not self.files

    @property
    def names(self) -> list[str]:
        return [Path(path).name for path in self.files]

    def value(self) -> dict[str, Any]:
        """What the box shows for this draft."""
        return {"text": self.text, "files": list(self.files)}

    def __add__(self, other: Draft) -> Draft:
        """Two drafts as one (queued messages back in the box): texts apart by a blank line.

        >>> (Draft("a", ("x",)) + Draft("", ("y",)) + Draft("b")).value()
        {'text': 'a\\n\\nb', 'files': ['x', 'y']}
        """
        text = "\n\n".join(t for t in (self.text, other.text) if t.strip())
        return Draft(text, self.files + other.files)


def joined(drafts: list[Draft]) -> Draft:
    together = Draft()
    for draft in drafts:
        together += draft
    return together


@dataclass
class Composer:
    """One tab's composer. `running`: the token of this tab's turn streaming now (None when
    idle); `queued`: messages waiting for it; `settles_to_skip`: events that only queued a
    message, whose settle must leave the page to the turn; `failed`: a message whose turn
    failed before anything was stored (Retry sends it again); `leave_to`: the conversation
    to open once the user agrees to stop the answer; `viewing`: the conversation on screen
    (a stopped turn settling late must not draw over another)."""

    running: object | None = None
    queued: list[Draft] = field(default_factory=list)
    settles_to_skip: int = 0
    failed: Draft | None = None
    leave_to: str | None = None
    viewing: str = ""


EMPTY = Draft().value()


def busy_box(*, clear: bool) -> dict[str, Any]:
    """The box while answering: Stop in place of Send (`clear`: empty it, it was sent)."""
    update: dict[str, Any] = {"submit_btn": False, "stop_btn": STOP}
    return gr.update(value=EMPTY, **update) if clear else gr.update(**update)


def idle_box(draft: Draft | None = None) -> dict[str, Any]:
    """The box once idle: Send again; `draft` refills it (refused or unqueued messages)."""
    if draft is None:
        return gr.update(submit_btn=SEND, stop_btn=False)
    return gr.update(value=draft.value(), submit_btn=SEND, stop_btn=False)


def queue_note(composer: Composer) -> dict[str, Any]:
    """The note over the box naming what waits to be sent (hidden when nothing does).

    >>> queue_note(Composer(queued=[Draft("<b>hi</b>")]))["value"]
    'Queued: “&lt;b&gt;hi&lt;/b&gt;” will be sent when this answer ends.'
    >>> queue_note(Composer(queued=[Draft("", ("/u/1/a.png", "/u/2/b.md"))]))["value"]
    'Queued: a.png, b.md will be sent when this answer ends.'
    """
    if not composer.queued:
        return gr.update(value="", visible=False)
    first = composer.queued[0]
    shown = first.text if len(first.text) <= 80 else f"{first.text[:80]}…"
    files = ", ".join(first.names)
    said = f"“{shown}”" + (f" with {files}" if files else "") if first.text.strip() else files
    more = f" (and {len(composer.queued) - 1} more)" if len(composer.queued) > 1 else ""
    return gr.update(
        value=f"Queued: {html.escape(said)}{more} will be sent when this answer ends.",
        visible=True,
    )


def notice(text: str) -> dict[str, Any]:
    """A one-line notice over the box (a refused message, a limit): said once, in place."""
    return gr.update(value=f"⚠ {html.escape(text)}", visible=True)


def no_notice() -> dict[str, Any]:
    return gr.update(value="", visible=False)
