"""The chat page (Gradio Blocks): layout and wiring; the handlers live in `page`, `chat`,
`conversations` and `models`.

Left, the conversations (closed by default on a phone); right, the open chat's settings;
between them the chat, the status line and one composer (Send, or Stop while answering; text
with files picked, dropped or pasted).
Every event here is private: the named API (`api.py`) owns the public endpoint names.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.web.edge import Edge
from ollamastack.web.ui.approvals import TOOLS_HEADERS, approval_component
from ollamastack.web.ui.chat import ChatHandlers
from ollamastack.web.ui.composer import FILE_TYPES, SEND, Composer
from ollamastack.web.ui.conversation_list import conversation_list_component
from ollamastack.web.ui.conversations import ConversationHandlers
from ollamastack.web.ui.models import ModelsHandlers, build_models_tab
from ollamastack.web.ui.page import PageHandlers
from ollamastack.web.ui.safe_markdown import LATEX_DELIMITERS
from ollamastack.web.ui.tokens import build_token_section
from ollamastack.web.ui.usage import build_usage_tab, usage_tab_visible
from ollamastack.web.ui.versions import VersionHandlers, versions_component

if TYPE_CHECKING:
    from ollamastack.storage.usage import UsageLog

STATUS_REFRESH_SECONDS = 30  # the status line follows Ollama (up, down, model unloaded)

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
# Focus in the message box; the event's inputs go on to the handler unchanged.
FOCUS_MESSAGE = "(...inputs) => { window.closeListOnPhone?.(); " \
    "document.querySelector('#message textarea')?.focus(); return inputs; }"


# In the browser only: the box names the files it holds (see theme.HEAD).
NAME_FILES = "(value) => { window.nameBoxFiles?.(value); }"


def _browser_key(settings: Settings) -> str:
    """Where this server keeps a browser's conversation list: stable across restarts."""
    return hashlib.sha256(settings.database_url.encode()).hexdigest()[:16]


def build_ui(
    blocks: gr.Blocks, settings: Settings, handle: ServiceHandle, edge: Edge,
    *, usage: UsageLog | None = None,
) -> None:
    """Lay out the page inside `blocks` (open) and wire its events; `usage`: the turn records
    the Usage tab (administrators) reads."""
    page = PageHandlers(settings, handle)
    chat = ChatHandlers(settings, handle, edge=edge)
    approvals = chat.streams.approvals
    sessions = ConversationHandlers(handle, answering=chat.answering, edge=edge)
    models = ModelsHandlers(handle, edge=edge)
    branches = VersionHandlers(handle, settings)
    key = _browser_key(settings)
    conversations = gr.BrowserState(
        [], storage_key=f"ollamastack-conversations-{key}", secret=f"ollamastack-{key}"
    )
    # the conversation open when the page was left, and the settings for a new chat
    last_open = gr.BrowserState(
        {}, storage_key=f"ollamastack-open-{key}", secret=f"ollamastack-{key}"
    )
    session_id = gr.State("")
    streaming = gr.State(False)  # True from a turn's first update to its last
    composer = gr.State(Composer())

    with gr.Sidebar(label="Conversations", width=280, elem_id="sidebar"):
        gr.Markdown("# OllamaStack\nA private assistant on your own models.",
                    elem_id="app-name")
        new_chat = gr.Button("+ New chat", variant="primary", elem_id="new-chat")
        search_box = gr.Textbox(
            show_label=False, label="Search conversations", elem_id="search",
            placeholder="Search conversations (Enter)", max_lines=1, container=False,
        )
        conversation_list = conversation_list_component()
        with gr.Row(elem_id="account", visible=bool(settings.logins)):
            who = gr.Markdown("", elem_id="who")
            gr.Button("Log out", link="/logout", size="sm", elem_id="logout", scale=0,
                      min_width=90)

    with gr.Sidebar(label="Chat settings", position="right", open=False, width=320,
                    elem_id="chat-settings"):
        gr.Markdown("### Chat settings\nSaved with this conversation.")
        refresh = gr.Button("↻ Refresh", size="sm", render=False)
        model = gr.Dropdown(
            choices=[(settings.model, settings.model)], value=settings.model,
            label="Model", elem_id="model", buttons=[refresh],
        )
        temperature = gr.Slider(0, 2, value=settings.temperature, step=0.05,
                                label="Temperature", elem_id="temperature")
        show_thinking = gr.Checkbox(value=True, label="Show thinking", elem_id="show-thinking",
                                    info="for models that think, e.g. qwen3")
        system_prompt = gr.Textbox(
            value=settings.system_prompt, label="System prompt", lines=5, max_lines=12,
            elem_id="system-prompt", info="Empty uses the server's default prompt.",
        )
        with gr.Accordion("Tools", open=False, elem_id="tools"):
            tools = gr.Dataframe(headers=TOOLS_HEADERS, label="The agent's tools",
                                 interactive=False, wrap=True, elem_id="tools-table")
            refresh_tools = gr.Button("↻ Refresh tools", size="sm", elem_id="refresh-tools")
            tools_note = gr.Markdown("", elem_id="tools-note")

    with gr.Tabs(selected="chat") as tabs:
        with gr.Tab("Chat", id="chat"):
            with gr.Row(elem_id="top-bar"):
                status = gr.Markdown("Connecting to Ollama…", elem_id="status")
                use_embedded = gr.Button("Use the built-in model", size="sm", visible=False,
                                         scale=0, min_width=200, elem_id="use-embedded")
            chatbot = gr.Chatbot(
                label="Chat", elem_id="chat", height="64vh", buttons=["copy", "copy_all"],
                placeholder="Ask anything. Your conversations stay on this machine.",
                # messages come through safe_markdown, which reads LaTeX as this Chatbot does;
                # the Chatbot's own HTML sanitizer stays on behind it
                latex_delimiters=LATEX_DELIMITERS, sanitize_html=True,
                editable="user",  # an edit is answered as a new branch (`chat.edit`)
            )
            versions = versions_component()  # ‹ 2 of 3 › for each edited message
            with gr.Column(elem_id="composer"):
                notice = gr.Markdown("", visible=False, elem_id="notice",
                                     elem_classes="note-bar")
                with gr.Row(visible=False, elem_id="queued-bar", elem_classes="note-bar",
                            equal_height=True) as queued_bar:
                    queued = gr.Markdown("", elem_id="queued")
                    unqueue = gr.Button("Edit instead", size="sm", scale=0, min_width=110,
                                        elem_id="unqueue")
                approval = approval_component()
                with gr.Row(visible=False, elem_id="leave-bar", elem_classes="note-bar",
                            equal_height=True) as leave_bar:
                    leave_text = gr.Markdown("", elem_id="leave-text")
                    leave = gr.Button("Stop and leave", size="sm", variant="stop", scale=0,
                                      min_width=130, elem_id="leave")
                    stay = gr.Button("Stay", size="sm", scale=0, min_width=80, elem_id="stay")
                # longer text pasted into the box becomes an attached .txt document
                message = gr.MultimodalTextbox(
                    show_label=False, label="Message",
                    placeholder="Message OllamaStack… (Enter sends, Esc stops)",
                    autofocus=True, elem_id="message", max_lines=10, container=False,
                    submit_btn=SEND, stop_btn=False, sources=["upload"],
                    file_types=FILE_TYPES, file_count="multiple",
                    max_plain_text_length=settings.max_message_chars,
                )
                with gr.Row(elem_id="actions"):
                    retry = gr.Button("↻ Retry", size="sm", elem_id="retry", scale=0)
                    undo = gr.Button("↶ Undo", size="sm", elem_id="undo", scale=0)
                    export_md = gr.Button("⤓ .md", size="sm", elem_id="export-md", scale=0)
                    export_json = gr.Button("⤓ .json", size="sm", elem_id="export-json",
                                            scale=0)
                    settings_button = gr.Button("⚙ Settings", size="sm", scale=0,
                                                elem_id="open-settings")
        with gr.Tab("Models", id="models"):
            models_tab = build_models_tab(models)
        with gr.Tab("API tokens", id="api-tokens"):
            build_token_section(blocks, settings, handle, edge)
        if usage is not None:
            with gr.Tab("Usage", id="usage", visible=usage_tab_visible(settings)):
                build_usage_tab(blocks, settings, usage, edge)

    # -- a turn: stream it, then settle it (also after Stop, which cancels the stream) --------
    options = [model, temperature, system_prompt, show_thinking]
    turn_outputs = [  # in the order of `TurnUpdate`
        chatbot, message, session_id, status, streaming, conversations, conversation_list,
        notice, queued, approval,
    ]
    status_outputs = [status, use_embedded]
    settle = (
        chat.settle, [session_id, streaming, conversations, show_thinking, composer],
        [chatbot, streaming, conversations, conversation_list, message, queued],
    )
    sending = gr.on(
        [message.submit], chat.send,
        [message, chatbot, session_id, conversations, *options, composer],
        turn_outputs, api_name="ui_send", show_progress="hidden", trigger_mode="multiple",
        **PRIVATE,
    )
    retrying = [
        trigger(chat.retry, [session_id, *options, composer], turn_outputs, api_name="ui_retry",
                show_progress="hidden", trigger_mode="multiple", **PRIVATE)
        for trigger in (retry.click, chatbot.retry)
    ]
    deciding = approval.click(
        chat.decide, [session_id, chatbot, *options, composer], turn_outputs,
        api_name="ui_decide", show_progress="hidden", **PRIVATE,
    )
    editing = chatbot.edit(
        chat.edit, [session_id, chatbot, *options, composer], turn_outputs,
        api_name="ui_edit", show_progress="hidden", trigger_mode="multiple", **PRIVATE,
    )
    turns = [sending, *retrying, deciding, editing]
    refresh_versions = (branches.refresh, session_id, versions)
    for turn in turns:
        turn.then(*settle, api_name="ui_settle", show_progress="hidden", **PRIVATE).then(
            *refresh_versions, api_name="ui_versions", show_progress="hidden", **PRIVATE).then(
            page.status, [model, session_id], status_outputs, api_name="ui_status",
            show_progress="hidden", **PRIVATE,
        ).then(sessions.remember, [session_id, *options], last_open, api_name="ui_remember",
               **PRIVATE)
    message.stop(None, cancels=turns, api_name="ui_stop", **PRIVATE)
    message.change(None, message, None, js=NAME_FILES, api_name="ui_name_files", queue=False,
                   **PRIVATE)
    queued.change(lambda text: gr.update(visible=bool(text)), queued, queued_bar,
                  api_name="ui_queued_bar", queue=False, **PRIVATE)
    unqueue.click(chat.unqueue, [message, composer], [message, queued], api_name="ui_unqueue",
                  **PRIVATE)

    for trigger in (undo.click, chatbot.undo):
        trigger(chat.undo, [session_id, show_thinking], [chatbot, message, notice],
                api_name="ui_undo", **PRIVATE).then(*refresh_versions, api_name="ui_versions",
                                                      show_progress="hidden", **PRIVATE)
    versions.select(branches.switch, [session_id, show_thinking], [chatbot, versions],
                    api_name="ui_switch_branch", **PRIVATE)

    # -- conversations ---------------------------------------------------------------------
    # Leaving a conversation while it answers asks first (the leave bar).
    opened = [chatbot, session_id, conversations, conversation_list, *options, leave_bar,
              leave_text]
    show_approval = (approvals.approval_for, session_id, approval)

    def shown(event: Any) -> None:
        """Another chat on screen: kept for a reload, a call waiting in it asked about, and
        the status line says how its documents are searched."""
        event.then(sessions.remember, [session_id, *options], last_open, api_name="ui_remember",
                   **PRIVATE).then(*show_approval, api_name="ui_approval", **PRIVATE).then(
            branches.refresh, session_id, versions, api_name="ui_versions",
            show_progress="hidden", **PRIVATE).then(
            page.status, [model, session_id], [status, use_embedded], api_name="ui_status",
            show_progress="hidden", **PRIVATE)

    for trigger in (new_chat.click, chatbot.clear):  # the chat's bin icon starts afresh too
        shown(trigger(
            sessions.new_chat, [conversations, composer],
            [chatbot, session_id, conversation_list, leave_bar, leave_text],
            api_name="ui_new_chat", js=FOCUS_MESSAGE, **PRIVATE,
        ))
    shown(conversation_list.select(
        sessions.open_conversation, [conversations, composer], opened, api_name="ui_open",
        **PRIVATE,
    ))
    shown(leave.click(None, cancels=turns, api_name="ui_stop", **PRIVATE).then(
        sessions.leave, [conversations, composer],
        [chatbot, session_id, conversation_list, *options, leave_bar, leave_text],
        api_name="ui_leave", **PRIVATE,
    ))
    stay.click(sessions.stay, composer, leave_bar, api_name="ui_stay", **PRIVATE)
    conversation_list.submit(
        sessions.act, [session_id, conversations],
        [conversation_list, chatbot, session_id, conversations, notice],
        api_name="ui_conversation_action", **PRIVATE,
    )
    search_box.submit(sessions.search, [search_box, conversations],
                      [conversation_list, notice], api_name="ui_search", **PRIVATE)
    search_box.change(sessions.cleared, [search_box, conversations], conversation_list,
                     api_name="ui_search_cleared", trigger_mode="always_last",
                     show_progress="hidden", **PRIVATE)
    export_md.click(sessions.export_markdown, session_id, conversation_list,
                    api_name="ui_export_md", **PRIVATE)
    export_json.click(sessions.export_json, session_id, conversation_list,
                      api_name="ui_export_json", **PRIVATE)
    settings_button.click(None, js=OPEN_SETTINGS, api_name="ui_open_settings", **PRIVATE)

    # -- the open chat's settings ------------------------------------------------------------
    for control in options:
        control.input(sessions.save_settings, [session_id, *options], last_open,
                      api_name="ui_save_settings", trigger_mode="always_last", **PRIVATE)
    show_thinking.input(
        sessions.show, [session_id, show_thinking], chatbot, api_name="ui_show", **PRIVATE
    )

    # -- models and status -------------------------------------------------------------------
    blocks.load(
        page.load_page, [conversations, last_open],
        [model, status, use_embedded, conversations, conversation_list, chatbot, session_id,
         temperature, system_prompt, show_thinking, who],
        api_name="ui_load", **PRIVATE,
    ).then(*show_approval, api_name="ui_approval", **PRIVATE).then(
        *refresh_versions, api_name="ui_versions", show_progress="hidden", **PRIVATE)
    blocks.load(approvals.tools, None, tools, api_name="ui_tools", **PRIVATE)
    refresh_tools.click(approvals.refresh_tools, None, [tools, tools_note],
                        api_name="ui_refresh_tools", **PRIVATE)
    blocks.load(models.table, None, models_tab.listing, api_name="ui_load_models", **PRIVATE)
    refresh_picker = (page.refresh_models, [model, session_id], [model, *status_outputs])
    refresh.click(*refresh_picker, api_name="ui_refresh_models", **PRIVATE)
    for changed in (models_tab.pulled, models_tab.deleted):
        changed.then(*refresh_picker, api_name="ui_refresh_models", **PRIVATE)
    models_tab.used.success(  # only when a model was chosen (see `ModelsTab`)
        page.refresh_models, [models_tab.chosen, session_id], [model, *status_outputs],
        api_name="ui_use_model", **PRIVATE,
    ).then(lambda: gr.Tabs(selected="chat"), None, tabs, api_name="ui_to_chat",
           **PRIVATE).then(sessions.save_settings, [session_id, *options], last_open,
                           api_name="ui_save_settings", **PRIVATE)
    use_embedded.click(page.use_embedded, session_id, [model, *status_outputs],
                       api_name="ui_use_embedded", **PRIVATE).then(
        sessions.save_settings, [session_id, *options], last_open, api_name="ui_save_settings",
        **PRIVATE)
    model.input(page.status, [model, session_id], status_outputs, api_name="ui_status",
                show_progress="hidden", **PRIVATE)
    gr.Timer(STATUS_REFRESH_SECONDS).tick(
        page.status, [model, session_id], status_outputs, api_name="ui_status",
        show_progress="hidden", **PRIVATE,
    )


# Opens the right-hand settings panel (Gradio's own toggle) and puts the focus in it.
OPEN_SETTINGS = """() => {
  const sidebar = document.querySelector('.sidebar.right');
  if (sidebar && !sidebar.classList.contains('open')) {
    sidebar.querySelector('.toggle-button')?.click();
  }
  setTimeout(() => document.querySelector('#model input')?.focus(), 300);
}"""
