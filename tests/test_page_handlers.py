"""The page's newer handlers (issue 16), called as Gradio calls them over a real chat service
and the Ollama-protocol test server: one composer (a message queued while answering, Stop
with messages waiting, Retry after a failure), the side list's menu (rename, delete with undo,
purge), and per-chat settings saved with each conversation and restored.

Fixtures and helpers are test_ui.py's (the same page over the same server)."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pytest

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import OllamaUnavailable, SessionNotFound
from ollamastack.settings import Settings
from ollamastack.web.ui import conversations as conversations_module
from ollamastack.web.ui.chat import ChatHandlers, TurnUpdate
from ollamastack.web.ui.composer import Composer
from ollamastack.web.ui.conversations import ConversationHandlers
from ollamastack.web.ui.page import PageHandlers
from tests import test_ui as ui
from tests.support.ollama_server import FakeOllama
from tests.test_ui import (
    BUSY,
    EMPTY_BOX,
    HIDDEN,
    IDLE,
    MODEL,
    OLLAMA_DOWN,
    SKIP,
    STILL_BUSY,
    bot,
    box,
    clicked,
    collect,
    details,
    failed,
    listed_by_server,
    no_toasts,
    notice,
    refill,
    send,
    session_of,
    shown,
    timeless,
    user,
    waiting,
)

# the same fixtures as test_ui.py (pytest registers them by their own names)
settings, handle, page, chat, saved, composer = (
    ui.settings, ui.handle, ui.page, ui.chat, ui.saved, ui.composer
)


def queued_note(text: str) -> dict:
    return gr.update(value=text, visible=True)


def answer(text: str, tokens: int) -> Any:
    """A finished answer with its stats line (timings blanked by `timeless`)."""
    return bot(f"{text}\n\n<sub>{tokens} tokens · 100.0 tokens/s · first token T</sub>")


async def started(chat: ChatHandlers, message: str, composer: Composer) -> tuple[Any, str]:
    """A turn taken by the core and paused there (nobody reads on): (its updates, session)."""
    turn = send(chat, message, composer=composer)
    await anext(turn)  # the question shown
    return turn, (await anext(turn)).session_id  # the conversation is created


# -- one composer -------------------------------------------------------------------------


async def test_messages_sent_while_answering_wait_and_go_out_in_order_after_the_answer(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, composer: Composer
):
    ollama_server.enqueue_text("one two three")
    turn, session = await started(chat, "first", composer)

    with no_toasts():
        second = await collect(send(chat, "second", composer=composer))
        third = await collect(send(chat, "third", composer=composer))
    # the box empties and says what waits; nothing is sent yet
    assert second == [TurnUpdate(box=gr.update(value=EMPTY_BOX), queued=queued_note(
        "Queued: “second” will be sent when this answer ends."))]
    assert third == [TurnUpdate(box=gr.update(value=EMPTY_BOX), queued=queued_note(
        "Queued: “second” (and 1 more) will be sent when this answer ends."))]
    assert len(ollama_server.chat_requests) == 0
    # the settle chained to each queuing event leaves the page to the turn in progress
    for _ in range(2):
        assert await chat.settle("", False, [], True, None, composer) == (SKIP,) * 6

    rest = await collect(turn)
    after_first = [user("first"), answer("one two three", 3)]
    after_second = [*after_first, user("second"), answer("You said: second", 3)]
    assert rest == [
        TurnUpdate([user("first"), bot("one")]),
        TurnUpdate([user("first"), bot("one two")]),
        TurnUpdate([user("first"), bot("one two three")]),
        TurnUpdate(after_first, streaming=False),
        # the first in the queue goes out: the note names what still waits; the box (maybe
        # holding a new draft) is not emptied, only kept as Stop
        TurnUpdate(queued=queued_note("Queued: “third” will be sent when this answer ends.")),
        TurnUpdate([*after_first, user("second"), waiting()], STILL_BUSY, streaming=True,
                   notice=HIDDEN),
        TurnUpdate([*after_first, user("second"), bot("You")]),
        TurnUpdate([*after_first, user("second"), bot("You said:")]),
        TurnUpdate([*after_first, user("second"), bot("You said: second")]),
        TurnUpdate(after_second, streaming=False),
        TurnUpdate(queued=HIDDEN),
        TurnUpdate([*after_second, user("third"), waiting()], STILL_BUSY, streaming=True,
                   notice=HIDDEN),
        TurnUpdate([*after_second, user("third"), bot("You")]),
        TurnUpdate([*after_second, user("third"), bot("You said:")]),
        TurnUpdate([*after_second, user("third"), bot("You said: third")]),
        TurnUpdate([*after_second, user("third"), answer("You said: third", 3)],
                   streaming=False),
    ]
    assert [r["messages"][-1]["content"] for r in ollama_server.chat_requests] == [
        "first", "second", "third"
    ]
    core = await handle.get()
    assert [m.text for m in await core.history(session)] == [
        "first", "one two three", "second", "You said: second", "third", "You said: third"
    ]
    assert (composer.running, composer.queued, composer.settles_to_skip) == (None, [], 0)
    # the turn's own settle: Send again, nothing queued
    assert (await chat.settle(session, False, [], True, None, composer))[1:] == (
        False, await listed_by_server(handle), shown((session, "first"), selected=session),
        IDLE, HIDDEN,
    )


async def test_stop_puts_the_queued_messages_back_into_the_box(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, composer: Composer
):
    ollama_server.token_rate = 20
    ollama_server.enqueue_text("one two three four five six seven eight nine ten " * 5)
    turn, session = await started(chat, "count", composer)
    first_words = timeless(await anext(turn))
    for message in ("later one", "later two"):
        await collect(send(chat, message, composer=composer))
        assert await chat.settle("", False, [], True, None, composer) == (SKIP,) * 6

    await turn.aclose()  # Stop: Gradio cancels the event; its generator is closed mid-stream
    settled = await chat.settle(session, True, [], True, None, composer)
    stopped = settled[0][1].content
    assert settled == (
        [user("count"), bot(stopped)], False, await listed_by_server(handle),
        shown((session, "count"), selected=session),
        refill("later one\n\nlater two"),  # back to edit, not sent, nothing waits
        HIDDEN,
    )
    assert first_words.chat == [user("count"), bot("one")]
    assert stopped.startswith("one") and stopped.endswith("\n\n■ *Stopped.*")
    assert (composer.running, composer.queued) == (None, [])
    assert [r["messages"][-1]["content"] for r in ollama_server.chat_requests] == ["count"]
    stored = await (await handle.get()).history(session)
    assert [m.text for m in stored] == ["count", stopped.removesuffix("\n\n■ *Stopped.*")]


async def test_edit_instead_takes_the_queued_messages_back_before_they_are_sent(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, composer: Composer
):
    turn, session = await started(chat, "first", composer)
    await collect(send(chat, "queued", composer=composer))
    assert ChatHandlers.unqueue(box("a draft"), composer) == (
        gr.update(value=box("queued\n\na draft")), HIDDEN
    )
    rest = await collect(turn)
    assert rest[-1] == TurnUpdate([user("first"), answer("You said: first", 3)],
                                  streaming=False)  # and nothing after it
    assert [m.text for m in await (await handle.get()).history(session)] == [
        "first", "You said: first"
    ]


async def test_retry_while_answering_says_to_wait_and_changes_nothing(
    chat: ChatHandlers, handle: ServiceHandle, composer: Composer
):
    turn, session = await started(chat, "first", composer)
    with no_toasts():
        retried = await collect(chat.retry(session, MODEL, 0.7, "", True, None, composer))
    assert retried == [TurnUpdate(notice=notice(
        "Wait for this answer to end (or press Stop) before asking again."))]
    assert await chat.settle(session, False, [], True, None, composer) == (SKIP,) * 6
    assert (await collect(turn))[-1].chat == [user("first"), answer("You said: first", 3)]
    assert [m.text for m in await (await handle.get()).history(session)] == [
        "first", "You said: first"
    ]


async def test_retry_after_ollama_was_down_sends_the_first_message_again(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, composer: Composer
):
    ollama_server.stop()
    failed_turn = await collect(send(chat, "hello", composer=composer))
    assert failed_turn[-1].chat == [
        user("hello"), failed(OLLAMA_DOWN), details(str(OllamaUnavailable(ollama_server.url)))
    ]
    ollama_server.start()
    retried = await collect(chat.retry("", MODEL, 0.7, "", True, None, composer))
    session = session_of(retried)
    assert retried[0] == TurnUpdate([user("hello"), ui.loading()], BUSY, streaming=True,
                                    notice=HIDDEN)
    assert retried[-1] == TurnUpdate([user("hello"), answer("You said: hello", 3)],
                                     streaming=False)
    assert [m.text for m in await (await handle.get()).history(session)] == [
        "hello", "You said: hello"
    ]


async def test_retry_after_ollama_dropped_mid_conversation_keeps_the_turn_before(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, composer: Composer
):
    """The model was known: the core stored "two" and its (empty) answer, cut short; Retry
    asks "two" again in its place."""
    one = await collect(send(chat, "one", composer=composer))
    session = session_of(one)
    ollama_server.stop()
    failed_turn = await collect(send(chat, "two", one[-1].chat, session, composer=composer))
    assert failed_turn[-1].chat == [
        *one[-1].chat, user("two"), failed(OLLAMA_DOWN),
        details(str(OllamaUnavailable(ollama_server.url))),
    ]
    ollama_server.start()
    retried = await collect(chat.retry(session, MODEL, 0.7, "", True, None, composer))
    assert [m.text for m in await (await handle.get()).history(session)] == [
        "one", "You said: one", "two", "You said: two"
    ]
    assert retried[-1].chat[-2:] == [user("two"), answer("You said: two", 3)]
    assert [r["messages"][-1]["content"] for r in ollama_server.chat_requests] == [
        "one", "two"
    ]


async def test_retry_after_picking_another_model_sends_the_failed_message_not_the_one_before(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, composer: Composer
):
    one = await collect(send(chat, "one", composer=composer))
    session = session_of(one)
    failed_turn = await collect(send(chat, "two", one[-1].chat, session, model="gone:latest",
                                     composer=composer))
    assert failed_turn[-1].chat[-3:-1] == [user("two"), failed(
        "The model gone:latest is not installed. Pick another in Chat settings, or pull it in "
        "the Models tab.")]
    core = await handle.get()
    assert [m.text for m in await core.history(session)] == ["one", "You said: one"]
    # as the message says: another model picked, then Retry
    retried = await collect(chat.retry(session, MODEL, 0.7, "", True, None, composer))
    assert [m.text for m in await core.history(session)] == [
        "one", "You said: one", "two", "You said: two"
    ]
    assert retried[-1].chat[-2:] == [user("two"), answer("You said: two", 3)]


# -- the side list's menu ----------------------------------------------------------------


async def test_rename_takes_one_clean_line_and_refuses_the_rest_with_a_notice(
    chat: ChatHandlers, saved: ConversationHandlers, handle: ServiceHandle
):
    session = session_of(await collect(send(chat, "Trip")))
    listed = [{"id": session, "title": "Trip"}]
    renamed = await saved.act(clicked(action="rename", id=session, title="  Trip plans "),
                              session, listed)
    known = await listed_by_server(handle)
    assert renamed == (shown((session, "Trip plans"), selected=session), SKIP, SKIP, known,
                       HIDDEN)
    for title, why in [
        ("Trip\nplans", "The title may not contain line breaks or control characters."),
        ("Trip\x07", "The title may not contain line breaks or control characters."),
        ("\u200b ", "The title is empty."),
        ("", "The title is empty."),
        ("x" * 201, "The title is 201 characters long; the limit is 200."),
        (None, "The title must be text."),
    ]:
        data = {"action": "rename", "id": session, "title": title}
        with no_toasts():
            refused = await saved.act(gr.EventData(None, data), session, listed)
        assert refused == (shown((session, "Trip plans"), selected=session), SKIP, SKIP, known,
                           notice(why)), title
    assert [s.title for s in await (await handle.get()).sessions()] == ["Trip plans"]


async def test_delete_hides_at_once_undo_brings_it_back_and_a_reload_purges_it_for_good(
    chat: ChatHandlers, page: PageHandlers, saved: ConversationHandlers, handle: ServiceHandle,
    monkeypatch: pytest.MonkeyPatch,
):
    a = session_of(await collect(send(chat, "keep me")))
    b = session_of(await collect(send(chat, "delete me")))
    listed = [{"id": b, "title": "delete me"}, {"id": a, "title": "keep me"}]
    core = await handle.get()
    kept = await core.history(b)
    deleted = await saved.act(clicked(action="delete", id=b), a, listed)
    left = await listed_by_server(handle)
    assert [c["id"] for c in left] == [a]
    assert deleted == (
        shown((a, "keep me"), selected=a, undo={"id": b, "title": "delete me"}),
        SKIP, SKIP, left, HIDDEN,  # another was open: it stays
    )
    with pytest.raises(SessionNotFound):  # hidden from every reader
        await core.history(b)
    # within the undo's time, a purge (each page load runs one) leaves it
    await ConversationHandlers.purge(core, "")
    restored = await saved.act(clicked(action="undo", id=b), a, left)
    known = await listed_by_server(handle)
    assert [c["id"] for c in known] == [b, a]
    assert restored == (shown((b, "delete me"), (a, "keep me"), selected=a), SKIP, SKIP,
                        known, HIDDEN)
    assert await core.history(b) == kept

    await saved.act(clicked(action="delete", id=b), b, known)
    monkeypatch.setattr(conversations_module, "UNDO_SECONDS", 0)  # its undo has expired
    loaded = await page.load_page(known, {"session_id": b})
    assert loaded[3:7] == (left, shown((a, "keep me")), [], "")
    with pytest.raises(SessionNotFound):
        await core.history(b)
    assert await core.memory.sessions.list("", deleted=True) == []
    checkpoint = await core.memory.checkpointer.aget_tuple({"configurable": {"thread_id": b}})
    assert checkpoint is None  # the checkpoints are gone, not only the listing
    with no_toasts():  # too late to undo: said once, in place
        late = await saved.act(clicked(action="undo", id=b), a, left)
    assert late[-1] == notice(f"No conversation with id {b} was found.")
    assert [m.text for m in await core.history(a)] == ["keep me", "You said: keep me"]


async def test_a_conversation_still_answering_is_not_deleted(
    chat: ChatHandlers, saved: ConversationHandlers, handle: ServiceHandle, composer: Composer
):
    turn, session = await started(chat, "busy", composer)
    listed = [{"id": session, "title": "busy"}]
    refused = await saved.act(clicked(action="delete", id=session), session, listed)
    assert refused[1:] == (SKIP, SKIP, await listed_by_server(handle), notice(
        "This conversation is still answering: stop it before deleting it."))
    await collect(turn)
    assert [s.id for s in await (await handle.get()).sessions()] == [session]


async def test_leaving_a_conversation_mid_answer_asks_first(
    chat: ChatHandlers, saved: ConversationHandlers, composer: Composer
):
    other = session_of(await collect(send(chat, "other", composer=composer)))
    turn, session = await started(chat, "busy", composer)
    ask = (gr.update(visible=True),
           gr.update(value="This conversation is still answering. Stop it and leave?"))
    assert await saved.open_session(other, [], composer) == (*(SKIP,) * 8, *ask)
    assert composer.leave_to == other
    assert saved.new_chat([], composer) == (SKIP, SKIP, SKIP, *ask)
    assert composer.leave_to == ""
    assert ConversationHandlers.stay(composer) == gr.update(visible=False)
    assert composer.viewing == session  # still on screen
    assert (await collect(turn))[-1].streaming is False  # the answer was not stopped


# -- per-chat settings ---------------------------------------------------------------------


async def test_each_chat_keeps_its_settings_restored_on_open_and_after_a_reload(
    chat: ChatHandlers, page: PageHandlers, saved: ConversationHandlers, handle: ServiceHandle,
    ollama_server: FakeOllama, settings: Settings,
):
    ollama_server.add_model("qwen3", capabilities=("completion", "tools", "thinking"))
    french = session_of(await collect(send(
        chat, "Bonjour", model="qwen3:latest", show_thinking=False, temperature=0.2,
        system_prompt="Answer in French.")))
    plain = session_of(await collect(send(chat, "Hello")))
    asked = ollama_server.chat_requests[0]
    assert (asked["options"]["temperature"], asked["messages"][0]) == (
        0.2, {"role": "system", "content": "Answer in French."})
    core = await handle.get()
    # saved with the conversation at its first turn
    assert {s.id: s.settings for s in await core.sessions()} == {
        french: {"model": "qwen3:latest", "temperature": 0.2,
                 "system_prompt": "Answer in French.", "show_thinking": False},
        plain: {"model": MODEL, "temperature": 0.7, "system_prompt": "", "show_thinking": True},
    }
    listed = await listed_by_server(handle)
    opened = await saved.open_session(french, listed)
    assert (opened[1], opened[4:8]) == (
        french, ("qwen3:latest", 0.2, "Answer in French.", False))
    assert (await saved.open_session(plain, listed))[4:8] == (MODEL, 0.7, "", True)

    # changed on screen: kept with the open chat, and what the browser keeps for a reload
    kept = await saved.save_settings(plain, MODEL, 1.1, "Be brief.", True)
    assert kept == {"session_id": plain, "settings": {
        "model": MODEL, "temperature": 1.1, "system_prompt": "Be brief.", "show_thinking": True}}
    assert (await saved.open_session(plain, listed))[4:8] == (MODEL, 1.1, "Be brief.", True)
    assert ConversationHandlers.remember(french, "qwen3:latest", 0.2, "Answer in French.",
                                         False) == {"session_id": french, "settings": {
        "model": "qwen3:latest", "temperature": 0.2, "system_prompt": "Answer in French.",
        "show_thinking": False}}

    # a reload opens the conversation the browser had open, with that chat's own settings
    loaded = await page.load_page(listed, {"session_id": french, "settings": kept["settings"]})
    picker, chat_view, session = loaded[0], loaded[5], loaded[6]
    assert (picker["value"], session, loaded[7:10]) == (
        "qwen3:latest", french, (0.2, "Answer in French.", False))
    assert chat_view == [user("Bonjour"), bot("You said: Bonjour\n\n<sub>3 tokens · 100.0 "
                                               "tokens/s</sub>")]  # thinking hidden
    # no conversation open: a new chat starts from the settings the browser kept
    loaded = await page.load_page(listed, {"session_id": "", "settings": kept["settings"]})
    assert (loaded[0]["value"], loaded[5:10]) == (MODEL, ([], "", 1.1, "Be brief.", True))


BAD_SETTINGS = {"model": "http://169.254.169.254/latest", "temperature": 9,
                "system_prompt": "a\x00b", "show_thinking": "yes"}


async def test_settings_no_longer_valid_fall_back_to_the_servers_defaults(
    chat: ChatHandlers, page: PageHandlers, saved: ConversationHandlers, handle: ServiceHandle,
    settings: Settings,
):
    session = session_of(await collect(send(chat, "Hello", temperature=0.3)))
    listed = await listed_by_server(handle)
    core = await handle.get()
    defaults = (MODEL, settings.temperature, settings.system_prompt, True)  # as the picker lists it

    # stored by an older version, or edited in the database
    await core.memory.sessions.save_settings(session, "", BAD_SETTINGS)
    assert (await saved.open_session(session, listed))[4:8] == defaults
    loaded = await page.load_page(listed, {"session_id": session})
    assert (loaded[0]["value"], loaded[7:10]) == (MODEL, defaults[1:])
    # sent by a crafted request: checked before they are kept
    kept = await saved.save_settings(session, *BAD_SETTINGS.values())
    assert kept["settings"] == dict(zip(
        ("model", "temperature", "system_prompt", "show_thinking"), defaults, strict=True))
    assert (await core.sessions())[0].settings == kept["settings"]
    # a browser's kept value that is no dict, or names no conversation of the server
    for junk in ("junk", {"session_id": "../x", "settings": BAD_SETTINGS}):
        loaded = await page.load_page(listed, junk)
        assert (loaded[0]["value"], loaded[5:10]) == (MODEL, ([], "", *defaults[1:]))
