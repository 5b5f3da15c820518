"""The side list of conversations: one line each, grouped by date, a ⋯ menu per item
(rename, export, delete with undo).

A `gr.HTML` component drawn from its value by a Handlebars template (which escapes every
title: they are the users' own words). Its script turns clicks into events with data:
`select` {"id"} opens a conversation, `submit` {"action", "id", "title"?} acts on one.
Downloads (export) arrive as its `saving` prop and are saved by the browser from a Blob,
so an export is one click and no file is kept on the server.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import gradio as gr

UNDO_SECONDS = 10  # how long a deleted conversation can be brought back
ACTIONS = ("rename", "export-md", "export-json", "delete", "undo")

TEMPLATE = """
<nav class="conv-list" aria-label="Conversations">
{{#if value.undo}}
  <div class="undo" role="status">
    Deleted “<span class="undo-title">{{value.undo.title}}</span>”.
    <button type="button" class="undo-button" data-action="undo"
            data-id="{{value.undo.id}}">Undo</button>
  </div>
{{/if}}
{{#each value.groups}}
  <h2 class="group">{{this.label}}</h2>
  <ul>
  {{#each this.items}}
    <li class="item{{#if this.selected}} selected{{/if}}" data-id="{{this.id}}">
      <button type="button" class="open" title="{{this.title}}" data-index="{{this.index}}"
        {{#if this.selected}}aria-current="true"{{/if}}>{{this.title}}{{#if this.snippet}}
        <span class="snippet">{{this.snippet}}</span>{{/if}}</button>
      <button type="button" class="more" aria-haspopup="menu" aria-expanded="false"
              aria-label="Actions for {{this.title}}">⋯</button>
      <div class="menu" role="menu" hidden>
        <button type="button" role="menuitem" data-action="rename">Rename</button>
        <button type="button" role="menuitem" data-action="export-md">Export Markdown</button>
        <button type="button" role="menuitem" data-action="export-json">Export JSON</button>
        <button type="button" role="menuitem" data-action="delete" class="danger">Delete</button>
      </div>
    </li>
  {{/each}}
  </ul>
{{/each}}
{{#unless value.groups.length}}
  <p class="empty">{{#if value.searched}}Nothing found.{{else}}No conversations yet.{{/if}}</p>
{{/unless}}
</nav>
"""

CSS = """
.conv-list { display: flex; flex-direction: column; gap: 2px; }
.conv-list .group { font-size: var(--text-xs); font-weight: 600;
  color: var(--body-text-color-subdued); margin: 10px 4px 2px;
  text-transform: uppercase; letter-spacing: .04em; }
.conv-list ul { list-style: none; margin: 0; padding: 0; }
.conv-list .item { display: flex; flex-wrap: wrap; align-items: center; border-radius: 6px; }
.conv-list .item:hover, .conv-list .item.selected {
  background: var(--background-fill-secondary); }
.conv-list .item.selected .open { font-weight: 600; }
.conv-list .open { flex: 1; min-width: 0; text-align: left; padding: 6px 8px; background: none;
  border: 0; color: var(--body-text-color); white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; cursor: pointer; font: inherit; }
.conv-list .more { background: none; border: 0; padding: 4px 8px; cursor: pointer;
  color: var(--body-text-color); border-radius: 4px; font-size: 1.1em; }
.conv-list .more:hover, .conv-list .more:focus-visible {
  background: var(--background-fill-primary); }
/* the menu opens in the list's flow: nothing around it can clip it */
.conv-list .menu { flex-basis: 100%; display: flex; margin: 2px 0 6px;
  flex-direction: column; background: var(--background-fill-primary);
  border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 4px;
  box-shadow: 0 4px 12px rgb(0 0 0 / 15%); }
.conv-list .menu[hidden] { display: none; }
.conv-list .menu button { text-align: left; background: none; border: 0; padding: 6px 8px;
  color: var(--body-text-color); cursor: pointer; border-radius: 4px; font: inherit; }
.conv-list .menu button:hover, .conv-list .menu button:focus-visible {
  background: var(--background-fill-secondary); }
.conv-list .menu .danger { color: #b91c1c; }
.conv-list .rename { flex: 1; min-width: 0; font: inherit; padding: 4px 6px; }
.conv-list .undo { display: flex; align-items: center; justify-content: space-between; gap: 6px;
  padding: 6px 8px; border-radius: 6px; background: var(--background-fill-secondary);
  font-size: var(--text-sm); }
.conv-list .undo-title { display: inline-block; max-width: 120px; overflow: hidden;
  white-space: nowrap; text-overflow: ellipsis; vertical-align: bottom; }
.conv-list .undo-button { background: none; border: 1px solid var(--border-color-primary);
  border-radius: 4px; padding: 2px 8px; color: #1d4ed8; cursor: pointer; font: inherit; }
.conv-list .snippet { display: block; white-space: normal; font-size: var(--text-sm);
  color: var(--body-text-color-subdued); font-weight: normal; }
.conv-list .empty { color: var(--body-text-color-subdued); font-size: var(--text-sm);
  margin: 8px 4px; }
"""

SCRIPT = """
const closeMenus = (except) => element.querySelectorAll('.menu').forEach((menu) => {
  if (menu === except) return;
  menu.hidden = true;
  menu.previousElementSibling?.setAttribute('aria-expanded', 'false');
});
const rename = (item) => {
  const open = item.querySelector('.open');
  const input = Object.assign(document.createElement('input'), {
    className: 'rename', value: open.title, maxLength: 200,
  });
  input.setAttribute('aria-label', 'New title');
  open.replaceWith(input);
  input.focus();
  input.select();
  let done = false;
  const finish = (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    input.replaceWith(open);
    if (save && title && title !== open.title) {
      open.textContent = title;
      trigger('submit', {action: 'rename', id: item.dataset.id, title});
    }
  };
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') { event.preventDefault(); finish(true); }
    if (event.key === 'Escape') { event.preventDefault(); event.stopPropagation(); finish(false); }
  });
  input.addEventListener('blur', () => finish(true));
};
element.addEventListener('click', (event) => {
  const button = event.target.closest('button');
  if (!button) { closeMenus(); return; }
  const item = button.closest('li');
  if (button.classList.contains('open')) {
    closeMenus();
    const index = button.dataset.index;
    const found = index === '' || index === undefined ? {} : {index: Number(index)};
    trigger('select', {id: item.dataset.id, ...found});
    window.closeListOnPhone?.();
  } else if (button.classList.contains('more')) {
    const menu = button.nextElementSibling;
    const opening = menu.hidden;
    closeMenus(menu);
    menu.hidden = !opening;
    button.setAttribute('aria-expanded', String(opening));
    if (opening) menu.querySelector('button')?.focus();
  } else if (button.dataset.action) {
    closeMenus();
    if (button.dataset.action === 'rename') rename(item);
    else trigger('submit', {action: button.dataset.action,
                            id: item?.dataset.id || button.dataset.id});
  }
});
element.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && element.querySelector('.menu:not([hidden])')) {
    event.stopPropagation();
    const open = element.querySelector('.menu:not([hidden])');
    closeMenus();
    open.previousElementSibling?.focus();
  }
});
document.addEventListener('click', (event) => {
  if (!element.contains(event.target)) closeMenus();
});
let undoTimer = null;
const hideUndoLater = () => {
  clearTimeout(undoTimer);
  if (props.value && props.value.undo) {
    undoTimer = setTimeout(() => {
      element.querySelector('.undo')?.remove();
    }, UNDO_MS);
  }
};
hideUndoLater();
watch('value', hideUndoLater);
// After opening a search result: the chat scrolls to the message that matched.
watch('scroll_to', () => {
  const row = props.scroll_to && props.scroll_to.row;
  if (row === undefined) return;
  // again for a second: the chat scrolls itself to its end once it has drawn the messages
  const started = Date.now();
  const scroll = () => {
    const rows = document.querySelectorAll(
      '#chat [data-testid="user"], #chat [data-testid="bot"]');
    if (rows[row]) rows[row].scrollIntoView({block: 'center'});
    if (Date.now() - started < (rows[row] ? 1200 : 3000)) setTimeout(scroll, 150);
  };
  scroll();
});
watch('saving', () => {
  const file = props.saving;
  if (!file || !file.name) return;
  const url = URL.createObjectURL(new Blob([file.text], {type: file.type}));
  const link = Object.assign(document.createElement('a'), {href: url, download: file.name});
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
});
""".replace("UNDO_MS", str(UNDO_SECONDS * 1000))


def day_group(updated_at: float, now: float) -> str:
    """Which heading a conversation last used at `updated_at` falls under (local time).

    >>> now = datetime(2026, 12, 4, 15, 0).timestamp()
    >>> day_group(datetime(2026, 12, 4, 0, 1).timestamp(), now)
    'Today'
    >>> day_group(datetime(2026, 12, 3, 23, 59).timestamp(), now)
    'Yesterday'
    >>> day_group(datetime(2026, 11, 20).timestamp(), now)
    'Earlier'
    """
    today = datetime.fromtimestamp(now).date()
    day = datetime.fromtimestamp(updated_at).date()
    if day >= today:
        return "Today"
    return "Yesterday" if day == today - timedelta(days=1) else "Earlier"


def list_value(
    conversations: Sequence[dict[str, Any]],
    selected: str = "",
    *,
    undo: dict[str, str] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The list's value: [{"id", "title", "updated_at"}] (newest first) under date headings.

    >>> value = list_value([{"id": "a", "title": "Hi", "updated_at": 0}], "a", now=86400 * 400)
    >>> value["groups"]
    [{'label': 'Earlier', 'items': [{'id': 'a', 'title': 'Hi', 'selected': True}]}]
    """
    now = time.time() if now is None else now
    groups: list[dict[str, Any]] = []
    for conversation in conversations:
        updated = conversation.get("updated_at")  # none yet: a conversation just started
        label = day_group(now if updated is None else float(updated), now)
        if not groups or groups[-1]["label"] != label:
            groups.append({"label": label, "items": []})
        groups[-1]["items"].append({
            "id": conversation["id"],
            "title": conversation["title"],
            "selected": conversation["id"] == selected,
        })
    return {"groups": groups, "undo": undo}


def search_value(found: Sequence[Any], query: str) -> dict[str, Any]:
    """The list's value for search results (`Found`s of the chat service): each with its
    snippet, opening at the message that matched.

    >>> from types import SimpleNamespace as F
    >>> search_value([F(session_id="a", title="Trip", snippet="…the hills…",
    ...                 message_index=2)], "hills")["groups"][0]["items"]
    [{'id': 'a', 'title': 'Trip', 'snippet': '…the hills…', 'index': 2}]
    """
    items = [{"id": f.session_id, "title": f.title or "New conversation", "snippet": f.snippet,
              "index": f.message_index} for f in found]
    label = f"Found for “{query.strip()}”"
    return {"groups": [{"label": label, "items": items}] if items else [], "undo": None,
            "searched": True}


def conversation_list_component() -> gr.HTML:
    return gr.HTML(
        list_value([]),
        html_template=TEMPLATE,
        css_template=CSS,
        js_on_load=SCRIPT,
        elem_id="conversations",
        # {"name", "text", "type", "nonce"}: saved by the browser when set (not `download`:
        # that is the name of one of gr.HTML's events)
        saving=None,
        scroll_to=None,  # {"row", "nonce"}: the chat message to show (a search result)
    )


def event_data(event: gr.EventData) -> dict[str, Any]:
    """What the list's script sent with an event (an empty dict when nothing usable)."""
    data = getattr(event, "_data", None)
    return data if isinstance(data, dict) else {}
