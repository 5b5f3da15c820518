"""The chat page (Gradio Blocks): layout and wiring; the handlers live in `ui_page`, `ui_chat`
and `ui_models`.

Every event here is private: the named API (`api.py`) owns the public endpoint names.
"""

from __future__ import annotations

import hashlib
from typing import Any

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.web.edge import Edge
from ollamastack.web.ui.chat import ChatHandlers
from ollamastack.web.ui.conversations import ConversationHandlers
from ollamastack.web.ui.models import ModelsHandlers, build_models_tab
from ollamastack.web.ui.page import PageHandlers
from ollamastack.web.ui.safe_markdown import LATEX_DELIMITERS
from ollamastack.web.ui.tokens import build_token_section

STATUS_REFRESH_SECONDS = 30  # the status line follows Ollama (up, down, model unloaded)

PRIVATE: dict[str, Any] = {"api_visibility": "private"}


def _browser_key(settings: Settings) -> str:
    """Where this server keeps a browser's conversation list: stable across restarts."""
    return hashlib.sha256(settings.database_url.encode()).hexdigest()[:16]


def build_ui(blocks: gr.Blocks, settings: Settings, handle: ServiceHandle, edge: Edge) -> None:
    """Lay out the page inside `blocks` (open) and wire its events."""
    page = PageHandlers(settings, handle)
    chat = ChatHandlers(settings, handle, edge=edge)
    sessions = ConversationHandlers(handle, answering=chat.answering, edge=edge)
    models = ModelsHandlers(handle, edge=edge)
    key = _browser_key(settings)
    conversations = gr.BrowserState(
        [], storage_key=f"ollamastack-conversations-{key}", secret=f"ollamastack-{key}"
    )
    session_id = gr.State("")
    streaming = gr.State(False)  # True from a turn's first update to its last

    with gr.Sidebar(label="Conversations", width=280):
        gr.Markdown("## OllamaStack\nA private assistant on your own Ollama models.")
        new_chat = gr.Button("+ New chat", variant="primary", elem_id="new-chat")
        conversation_list = gr.Radio(
            choices=[], label="Conversations", elem_id="conversations",
            info="Kept in this browser; click one to reopen it.",
        )
        delete_conversation = gr.Button(
            "Delete this conversation", size="sm", variant="stop", elem_id="delete-conversation"
        )

    with gr.Tabs():
        with gr.Tab("Chat", id="chat"):
            status = gr.Markdown("Connecting to Ollama…", elem_id="status")
            with gr.Row(equal_height=True):
                refresh = gr.Button("↻ Refresh", size="sm", render=False)
                model = gr.Dropdown(
                    choices=[(settings.model, settings.model)], value=settings.model,
                    label="Model", scale=4, elem_id="model", buttons=[refresh],
                    info="Marked: tools chosen by prompt (no native tool calling), thinking",
                )
                temperature = gr.Slider(
                    0, 2, value=settings.temperature, step=0.05, label="Temperature", scale=3
                )
                show_thinking = gr.Checkbox(
                    value=True, label="Show thinking", scale=1,
                    info="for models that think, e.g. qwen3",
                )
            chatbot = gr.Chatbot(
                label="OllamaStack", elem_id="chat", height="60vh", buttons=["copy", "copy_all"],
                placeholder="Ask anything. Your conversations stay on this machine.",
                # messages come through safe_markdown, which reads LaTeX as this Chatbot does;
                # the Chatbot's own HTML sanitizer stays on behind it
                latex_delimiters=LATEX_DELIMITERS, sanitize_html=True,
            )
            with gr.Row(equal_height=True):
                message = gr.Textbox(
                    show_label=False, placeholder="Message OllamaStack… (Enter to send)",
                    scale=8, autofocus=True, elem_id="message", max_lines=10, container=False,
                )
                send = gr.Button("Send", variant="primary", scale=1, min_width=90, elem_id="send")
                stop = gr.Button("Stop", variant="stop", scale=1, min_width=90, elem_id="stop")
            with gr.Row():
                retry = gr.Button("↻ Retry", size="sm", elem_id="retry")
                undo = gr.Button("↶ Undo", size="sm", elem_id="undo")
                export_md = gr.Button("Export Markdown", size="sm", elem_id="export-md")
                export_json = gr.Button("Export JSON", size="sm", elem_id="export-json")
            export_file = gr.File(label="Export", visible=False, elem_id="export-file")
            with gr.Accordion("Advanced", open=False):
                system_prompt = gr.Textbox(
                    value=settings.system_prompt, label="System prompt", lines=4,
                    info="Empty uses the server's default prompt.",
                )
        with gr.Tab("Models", id="models"):
            models_tab = build_models_tab(models)
        with gr.Tab("API tokens", id="api-tokens"):
            build_token_section(blocks, settings, handle, edge)

    # -- a turn: stream it, then settle it (also after Stop, which cancels the stream) --------
    options = [model, temperature, system_prompt, show_thinking]
    turn_outputs = [  # in the order of `TurnUpdate`
        chatbot, message, session_id, status, streaming, conversations, conversation_list
    ]
    settle = (
        chat.settle, [session_id, streaming, conversations, show_thinking],
        [chatbot, streaming, conversations, conversation_list],
    )
    sending = gr.on(
        [message.submit, send.click], chat.send,
        [message, chatbot, session_id, conversations, *options],
        turn_outputs, api_name="ui_send", show_progress="hidden", **PRIVATE,
    )
    retrying = [
        trigger(chat.retry, [session_id, *options], turn_outputs, api_name="ui_retry",
                show_progress="hidden", **PRIVATE)
        for trigger in (retry.click, chatbot.retry)
    ]
    for turn in (sending, *retrying):
        turn.then(*settle, api_name="ui_settle", show_progress="hidden", **PRIVATE)
    turns = [sending, *retrying]
    stop.click(None, cancels=turns, api_name="ui_stop", **PRIVATE)

    for trigger in (undo.click, chatbot.undo):
        trigger(chat.undo, [session_id, show_thinking], [chatbot, message], api_name="ui_undo",
                **PRIVATE)

    # -- conversations ---------------------------------------------------------------------
    # Leaving a conversation while it answers stops the answer (it is kept, marked stopped).
    for trigger in (new_chat.click, chatbot.clear):  # the chat's bin icon starts afresh too
        trigger(
            sessions.new_chat, None, [chatbot, session_id, conversation_list, message],
            cancels=turns, api_name="ui_new_chat", **PRIVATE,
        )
    conversation_list.input(
        sessions.open_conversation, [conversation_list, show_thinking, conversations],
        [chatbot, session_id, conversations, conversation_list], cancels=turns,
        api_name="ui_open", **PRIVATE,
    )
    delete_conversation.click(
        sessions.delete_conversation, [session_id, conversations],
        [chatbot, session_id, conversations, conversation_list],
        api_name="ui_delete_conversation", **PRIVATE,
    )
    show_thinking.input(
        sessions.show, [session_id, show_thinking], chatbot, api_name="ui_show", **PRIVATE
    )
    session_id.change(
        sessions.hide_export, None, export_file, api_name="ui_hide_export", **PRIVATE
    )
    export_md.click(sessions.export_markdown, session_id, export_file, api_name="ui_export_md",
                    **PRIVATE)
    export_json.click(sessions.export_json, session_id, export_file, api_name="ui_export_json",
                      **PRIVATE)

    # -- models and status -------------------------------------------------------------------
    blocks.load(
        page.load_page, [conversations, model],
        [model, status, conversations, conversation_list], api_name="ui_load", **PRIVATE,
    )
    blocks.load(models.table, None, [models_tab.table, models_tab.to_delete],
                api_name="ui_load_models", **PRIVATE)
    refresh_picker = (page.refresh_models, model, [model, status])
    refresh.click(*refresh_picker, api_name="ui_refresh_models", **PRIVATE)
    for changed in (models_tab.pulled, models_tab.deleted):
        changed.then(*refresh_picker, api_name="ui_refresh_models", **PRIVATE)
    model.input(page.status, model, status, api_name="ui_status", show_progress="hidden",
                **PRIVATE)
    gr.Timer(STATUS_REFRESH_SECONDS).tick(
        page.status, model, status, api_name="ui_status", show_progress="hidden", **PRIVATE
    )
