"""How the Models tab looks, kept apart from what it does (`models`): the table of installed
models with each row's buttons, the pull's progress line, and the notes that say an outcome.

Everything here is text in, HTML out (plus `PullTracker`, which turns Ollama's per-layer pull
steps into one progress line), so it is tested by doctests and by reading the HTML, without a
server or a Gradio event.
"""

from __future__ import annotations

import html
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ollamastack.engines.types import ModelInfo, PullProgress
from ollamastack.errors import OllamaStackError, OllamaUnavailable
from ollamastack.web.ui.picker import Installed, can_chat, human_size, tags

if TYPE_CHECKING:
    import gradio as gr

RATE_WINDOW = 5.0  # seconds of progress the speed is measured over
STEPS = {  # what Ollama's pull says between downloads, in words
    "pulling manifest": "asking the registry",
    "verifying sha256 digest": "checking the download",
    "writing manifest": "finishing",
    "removing any unused layers": "cleaning up",
    "removing unused layers": "cleaning up",
}
# Each button carries its action and model; the listener sits on the component, which keeps
# it across redraws. "Use in chat" is the component's `submit` event, "Yes, delete" its
# `select`, Delete and "Keep it" its `click`.
ROW_ACTIONS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button || !element.contains(button)) return;
  const {action, model} = button.dataset;
  const event_name = {use: 'submit', confirm: 'select'}[action] || 'click';
  trigger(event_name, {action, model});
});
watch('value', () => element.querySelector('[data-focus]')?.focus());
"""
CSS = """
.models-list { width: 100%; border-collapse: collapse; }
.models-list, .models-list tr { border: 0; }
.models-list caption { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip-path: inset(50%); white-space: nowrap; }  /* the heading above says it */
.models-list th, .models-list td { text-align: left; padding: 8px; vertical-align: middle;
  border: 0; border-bottom: 1px solid var(--border-color-primary); }
.models-list .tag { display: inline-block; margin: 2px 4px 2px 0; padding: 0 8px;
  border: 1px solid var(--border-color-primary); border-radius: 999px; font-size: 0.9em; }
.models-list button { margin: 2px 4px 2px 0; padding: 4px 12px; border-radius: 6px;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-primary);
  color: var(--body-text-color); cursor: pointer; min-height: 32px; }
.models-list button.danger { color: #b91c1c; border-color: #b91c1c; }
.models-list button.danger.confirm { background: #b91c1c; color: #fff; }
.models-list .question { display: block; margin-bottom: 4px; }
.pull-progress { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 12px; }
.pull-progress progress { flex: 1 1 200px; height: 14px;
  accent-color: var(--color-accent, #1d4ed8); }
.models-notice details { margin-top: 4px; }
[role="alert"].models-notice, [role="alert"].pull-progress { display: block; padding: 8px 12px;
  border-radius: 6px; border-left: 4px solid #b91c1c; background: #fef2f2; }
[role="alert"].models-notice, [role="alert"].models-notice *,
[role="alert"].pull-progress, [role="alert"].pull-progress * { color: #991b1b; }
@media (max-width: 640px) {
  .models-list thead { display: none; }
  .models-list tr { display: block; padding: 8px 0;
    border-bottom: 1px solid var(--border-color-primary); }
  .models-list th, .models-list td { display: block; border: 0; padding: 2px 0; }
}
"""


def eta(seconds: float) -> str:
    """
    >>> eta(4), eta(42), eta(61), eta(3 * 3600 + 20 * 60)
    ('a few seconds left', 'about 40 s left', 'about 1 min left', 'about 3 h 20 min left')
    """
    if seconds < 10:
        return "a few seconds left"
    if seconds < 60:
        return f"about {round(seconds / 5) * 5} s left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60} min left"


@dataclass
class PullTracker:
    """Overall progress of a pull, its speed and what is left: Ollama reports the bytes of one
    layer (a blob named by its sha256) at a time, which no one needs to read."""

    name: str
    clock: Callable[[], float] = time.monotonic
    totals: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    status: str = "starting"
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    downloading: bool = False  # the last step was a layer's bytes

    def add(self, step: PullProgress) -> None:
        self.status = step.status
        if step.digest and step.total:
            self.totals[step.digest] = step.total
            self.done[step.digest] = step.completed
            now, done = self.clock(), sum(self.done.values())
            self.samples.append((now, done))
            while len(self.samples) > 2 and self.samples[1][0] <= now - RATE_WINDOW:
                self.samples.popleft()
        self.downloading = bool(step.digest)

    def text(self) -> str:
        """
        >>> now = 0.0
        >>> tracker = PullTracker("qwen3:8b", clock=lambda: now)
        >>> tracker.text()
        'qwen3:8b: starting…'
        >>> tracker.add(PullProgress("pulling a8cc1361f314", 1_000_000_000, 4_700_000_000, "d1"))
        >>> tracker.text()
        'qwen3:8b: downloading 1.0 GB of 4.7 GB'
        >>> now = 2.0
        >>> tracker.add(PullProgress("pulling a8cc1361f314", 1_070_000_000, 4_700_000_000, "d1"))
        >>> tracker.text()
        'qwen3:8b: downloading 1.1 GB of 4.7 GB · 35.0 MB/s · about 2 min left'
        >>> tracker.add(PullProgress("verifying sha256 digest"))
        >>> tracker.text()
        'qwen3:8b: checking the download…'
        """
        if self.status == "success":
            return f"{self.name}: installed"
        if not self.downloading:
            words = STEPS.get(self.status) or re.sub(r"\b[0-9a-f]{12,}\b", "", self.status)
            return f"{self.name}: {words.strip() or 'pulling'}…"
        total, done = sum(self.totals.values()), sum(self.done.values())
        parts = [f"downloading {human_size(done)} of {human_size(total)}"]
        (then, before), (now, after) = self.samples[0], self.samples[-1]
        if now - then >= 1.0 and after > before and done < total:
            rate = (after - before) / (now - then)
            parts += [f"{human_size(round(rate))}/s", eta((total - done) / rate)]
        return f"{self.name}: {' · '.join(parts)}"

    def html(self) -> str:
        total = sum(self.totals.values())
        fraction = sum(self.done.values()) / total if total else 0.0
        return (
            f'<div class="pull-progress"><progress value="{fraction:.3f}" max="1" '
            f'aria-label="{html.escape(self.name)}: pulled so far"></progress>'
            f"<span>{html.escape(self.text())}</span></div>"
        )


def note(text: str, details: str = "", *, alert: bool = False, css: str = "pull-progress") -> str:
    """A line of text (an alert for a failure) with optional operator detail folded away.

    >>> note("Stopped <pulling>.")
    '<div class="pull-progress" role="status"><span>Stopped &lt;pulling&gt;.</span></div>'
    >>> failed = note("Not reachable.", "at http://ollama:11434", alert=True, css="models-notice")
    >>> print(failed.replace("><", ">\\n<"))
    <div class="models-notice" role="alert">
    <span>Not reachable.</span>
    <details>
    <summary>Details</summary>
    <p>at http://ollama:11434</p>
    </details>
    </div>
    """
    role = "alert" if alert else "status"
    more = (f"<details><summary>Details</summary><p>{html.escape(details)}</p></details>"
            if details else "")
    return f'<div class="{css}" role="{role}"><span>{html.escape(text)}</span>{more}</div>'


def pull_problem(name: str, error: OllamaStackError) -> tuple[str, str]:
    """What a failed pull says: (plain words, operator detail).

    >>> pull_problem("qwen9", OllamaStackError("Ollama reported an error: pull model "
    ...                                        "manifest: file does not exist"))[0]
    'No model named qwen9 in the registry — check the name on ollama.com/library.'
    """
    text = str(error)
    if "file does not exist" in text or "manifest unknown" in text:
        where = "ollama.com/library" if "." not in name.split("/")[0] else "its registry"
        return f"No model named {name} in the registry — check the name on {where}.", ""
    if isinstance(error, OllamaUnavailable):
        return f"Could not pull {name}: Ollama is not reachable.", text
    return f"Could not pull {name}: {text}", ""


def table_html(
    listed: Installed, running: set[str], *, may_manage: bool, confirming: str = "",
    focus: str = "",
) -> str:
    """The models as a table, each row with its buttons; the row being deleted asks first.
    The page moves focus to the button marked `data-focus`: "Yes, delete" while asking, the
    row's Delete again after "Keep it" (`focus`), so a keyboard user stays in place."""
    rows = []
    for model in listed.models:
        rows.append(_row(model, model.name in running, may_manage, model.name == confirming,
                         model.name == focus))
    if not rows:
        empty = ("No models are listed while Ollama is not reachable." if not listed.reachable
                 else "Ollama has no models yet: pull one below.")
        rows.append(f'<tr><td colspan="5">{empty}</td></tr>')
    head = "".join(f'<th scope="col">{h}</th>' for h in
                   ("Model", "Size", "Details", "Can do", "Actions"))
    return (f'<table class="models-list"><caption>Installed models</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _row(
    model: ModelInfo, loaded: bool, may_manage: bool, confirming: bool, focus: bool
) -> str:
    name = html.escape(model.name)
    found = [*tags(model), *(["in memory"] if loaded else [])]
    details = " · ".join(x for x in (model.parameter_size, model.quantization) if x)
    buttons = []
    if can_chat(model):
        buttons.append(f'<button type="button" data-action="use" data-model="{name}" '
                       f'aria-label="Use {name} in chat">Use in chat</button>')
    if confirming:
        buttons = [
            f'<span class="question">Really delete {name}? Its files are removed from '
            "Ollama; pull it to get it back.</span>",
            f'<button type="button" class="danger confirm" data-action="confirm" '
            f'data-model="{name}" data-focus>Yes, delete {name}</button>',
            f'<button type="button" data-action="keep" data-model="{name}">Keep it</button>',
        ]
    elif may_manage and not model.embedded:  # the embedded model comes with the app
        buttons.append(f'<button type="button" class="danger" data-action="delete" '
                       f'data-model="{name}" aria-label="Delete {name}"'
                       f'{" data-focus" if focus else ""}>Delete</button>')
    tag_html = "".join(f'<span class="tag">{t}</span>' for t in found)
    return (f'<tr><th scope="row">{name}</th><td>{human_size(model.size)}</td>'
            f"<td>{html.escape(details)}</td><td>{tag_html}</td>"
            f"<td>{''.join(buttons)}</td></tr>")


def action_of(event: gr.EventData) -> tuple[str, str]:
    """(action, model) a row's button sent; the page sends them, so they are checked.

    >>> from types import SimpleNamespace
    >>> action_of(SimpleNamespace(_data={"action": "use", "model": "qwen3:8b"}))
    ('use', 'qwen3:8b')
    >>> action_of(SimpleNamespace(_data=["not", "a", "dict"])), action_of(None)
    (('', ''), ('', ''))
    """
    data = getattr(event, "_data", None)
    data = data if isinstance(data, dict) else {}
    return str(data.get("action") or ""), str(data.get("model") or "")

