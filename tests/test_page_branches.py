"""Editing a message on the page (the chat's pencil) and Retry, through the page's handlers
over a real chat service and the Ollama-protocol test server: each is answered as a new
branch from just before that message, and the earlier branch is kept. Fixtures and helpers
are test_ui.py's."""

from __future__ import annotations

import gradio as gr

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.web.ui.chat import ChatHandlers
from ollamastack.web.ui.composer import Composer
from ollamastack.web.ui.history_view import history_view
from tests import test_ui as ui
from tests.support.ollama_server import FakeOllama
from tests.test_ui import MODEL, collect, no_toasts, send, session_of

settings, handle, chat = ui.settings, ui.handle, ui.chat


def edited(index: int, value: str) -> gr.EditData:
    """The Chatbot's edit event: the message's place on screen and its new text."""
    return gr.EditData(None, {"index": index, "value": value, "previous_value": ""})


async def shown(handle: ServiceHandle, session: str) -> list:
    """The conversation as the Chatbot hands it back to a handler: role and content dicts."""
    messages = await (await handle.get()).history(session)
    return [{"role": m.role, "content": m.content}
            for m in history_view(messages, show_thinking=True)]


async def test_an_edited_message_is_answered_as_a_new_branch_and_the_old_one_is_kept(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama
) -> None:
    session = session_of(await collect(send(chat, "First.")))
    await collect(send(chat, "Second.", [], session))
    await collect(send(chat, "Third.", [], session))
    on_screen = await shown(handle, session)
    second = [i for i, m in enumerate(on_screen) if m["role"] == "user"][1]
    with no_toasts():
        updates = await collect(chat.edit(edited(second, "Second, edited."), session,
                                          on_screen, MODEL, 0.7, "", True, None, Composer()))
    core = await handle.get()
    history = [(m.type, m.text) for m in await core.history(session)]
    assert history == [("human", "First."), ("ai", "You said: First."),
                       ("human", "Second, edited."), ("ai", "You said: Second, edited.")]
    sent = [(m["role"], m["content"]) for m in ollama_server.chat_requests[-1]["messages"]]
    assert sent[1:] == [("user", "First."), ("assistant", "You said: First."),
                        ("user", "Second, edited.")]  # only the branch before the edit
    assert [(b.index, b.branch, b.branches) for b in await core.branches(session)] == [
        (0, 1, 1), (2, 2, 2)]
    assert [m.content for m in updates[-1].chat if m.role == "user"][-1] == "Second, edited."

    await core.switch_branch(session, 2, 1)  # the earlier branch is all there
    assert [m.text for m in await core.history(session)][2:] == [
        "Second.", "You said: Second.", "Third.", "You said: Third."]


async def test_an_edit_while_answering_or_of_nothing_is_refused_in_words(
    chat: ChatHandlers, handle: ServiceHandle
) -> None:
    busy = Composer()
    busy.running = object()
    with no_toasts():
        refused = await collect(chat.edit(edited(0, "x"), "", [], MODEL, 0.7, "", True, None,
                                          busy))
        nothing = await collect(chat.edit(edited(0, "x"), "", [], MODEL, 0.7, "", True, None,
                                          Composer()))
    assert "before editing a message" in str(refused[-1].notice)
    assert "nothing to undo or retry" in str(nothing[-1].notice).lower()
