"""The page's event handlers, called as Gradio calls them, over a real chat service and the
Ollama-protocol test server. Every streamed update is asserted, as a person would see it.

The composer's queue, Stop with messages waiting, Retry after a failure, the side list's
menu (rename, delete with undo, export) and per-chat settings: test_page_handlers.py."""

from __future__ import annotations

import asyncio
import gc
import html
import itertools
import json
import re
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest
from gradio import ChatMessage
from langchain_core.messages import AIMessage, HumanMessage

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import ModelNotFound, OllamaUnavailable
from ollamastack.settings import Settings
from ollamastack.web.ui.chat import ChatHandlers, TurnUpdate
from ollamastack.web.ui.composer import Composer, Draft
from ollamastack.web.ui.conversations import ConversationHandlers
from ollamastack.web.ui.page import PageHandlers
from ollamastack.web.ui.status import GREEN_DOT, RED_DOT
from tests.support.ollama_server import FakeOllama

SKIP = gr.skip()
MODEL = "llama3.2:latest"

# The composer (a multimodal box: {"text", "files"}) as the page shows it: emptied with Stop
# while answering, Send when idle.
EMPTY_BOX = {"text": "", "files": []}
BUSY = gr.update(value=EMPTY_BOX, submit_btn=False, stop_btn="Stop")
STILL_BUSY = gr.update(submit_btn=False, stop_btn="Stop")  # a queued message's turn
IDLE = gr.update(submit_btn="Send", stop_btn=False)
HIDDEN = gr.update(value="", visible=False)  # no notice, nothing queued
NO_OFFER = gr.update(visible=False)  # the status line offers no built-in model


def box(text: str, *files: str) -> dict:
    """What the box holds: text, and the paths of the files in it."""
    return {"text": text, "files": list(files)}


def refill(text: str, *files: str) -> dict:
    """The box idle again, holding `text` and `files` (a refused message, queued ones after
    Stop)."""
    return gr.update(value=box(text, *files), submit_btn="Send", stop_btn=False)


def notice(text: str) -> dict:
    """The one-line notice over the box (the page renders it: escaped)."""
    return gr.update(value=f"⚠ {html.escape(text)}", visible=True)


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def bot(text: str, **metadata: Any) -> ChatMessage:
    return ChatMessage(role="assistant", content=text, metadata=metadata)  # type: ignore[arg-type]


def failed(plain: str) -> ChatMessage:
    """A failed turn's one message, in plain words."""
    return bot(f"⚠ {plain} Press Retry to ask again.")


def details(text: str) -> ChatMessage:
    """The error's own text, folded under "Details"."""
    return bot(f"```text\n{text}\n```", title="Details", status="done")


def shown(*items: tuple[str, str], selected: str = "", undo: dict | None = None) -> dict:
    """The side list's update: (id, title) items, all under "Today" (the tests' conversations
    are all from now)."""
    groups = [{"label": "Today", "items": [
        {"id": i, "title": t, "selected": i == selected} for i, t in items
    ]}] if items else []
    return gr.update(value={"groups": groups, "undo": undo})


@contextmanager
def no_toasts() -> Iterator[None]:
    """Errors are said once, on the page: no toast (outside Gradio, a UserWarning) at all."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []


STATS_3 = "<sub>3 tokens · 100.0 tokens/s · first token T</sub>"
OLLAMA_DOWN = "Ollama is not answering, so this message got no reply."


def loading(model: str = MODEL) -> ChatMessage:
    return bot("", title=f"Loading model `{model}`…", status="pending")


def waiting(model: str = MODEL) -> ChatMessage:
    return bot("", title=f"Waiting for `{model}`…", status="pending")


def timeless(update: tuple) -> tuple:
    """An update with the stats line's wall-clock timings blanked (they vary run to run)."""
    chat, *rest = update
    if isinstance(chat, list):  # a TurnUpdate
        chat = [
            ChatMessage(
                role=m.role,
                content=re.sub(r"first token [\d.]+ s · [\d.]+ s in all", "first token T",
                               m.content) if isinstance(m.content, str) else m.content,
                metadata=m.metadata,
            )
            for m in chat
        ]
    return TurnUpdate(chat, *rest) if isinstance(update, TurnUpdate) else (chat, *rest)


def ticks(step: float = 0.5):
    """A clock that advances `step` seconds each time it is read."""
    return itertools.count(start=100.0, step=step).__next__


async def collect(updates: AsyncIterator[tuple]) -> list[tuple]:
    return [timeless(update) async for update in updates]


def session_of(updates: list[TurnUpdate]) -> str:
    """The session a turn was answered in (a new one is announced once it is created)."""
    (session,) = {u.session_id for u in updates if isinstance(u.session_id, str)}
    return session


def chats(updates: list[TurnUpdate]) -> list[list]:
    """Each state of the chat the turn showed."""
    return [u.chat for u in updates if isinstance(u.chat, list)]


def up(server: FakeOllama, model: str = MODEL, loaded: bool = True) -> str:
    where = (
        "is loaded in memory" if loaded
        else "is not loaded yet: its first answer waits while it loads"
    )
    return f"{GREEN_DOT} Ollama 0.12.6 at `{server.url}` · model `{model}` {where}"


async def listed_by_server(handle: ServiceHandle, user: str = "") -> list[dict]:
    """The conversations as the server lists them (what the page keeps after a settle)."""
    return [{"id": s.id, "title": s.title, "updated_at": s.updated_at}
            for s in await (await handle.get()).sessions(user)]


def clicked(**data: str) -> gr.EventData:
    """The event the side list's script sends: select {"id"}, submit {"action", "id"...}."""
    return gr.EventData(None, data)


@pytest.fixture
def settings(ollama_server: FakeOllama, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None, ollama_host=ollama_server.url, data_dir=tmp_path, model="llama3.2",
        embedded=False,
    )  # type: ignore[call-arg]


@pytest.fixture
async def handle(settings: Settings) -> AsyncIterator[ServiceHandle]:
    handle = ServiceHandle(settings)
    yield handle
    await handle.close()


@pytest.fixture
def page(settings: Settings, handle: ServiceHandle) -> PageHandlers:
    return PageHandlers(settings, handle)


@pytest.fixture
def chat(settings: Settings, handle: ServiceHandle) -> ChatHandlers:
    """Handlers that send every update (no coalescing) and read a clock that ticks 0.5 s."""
    return ChatHandlers(settings, handle, update_interval=0, clock=ticks())


@pytest.fixture
async def saved(handle: ServiceHandle, chat: ChatHandlers) -> AsyncIterator[ConversationHandlers]:
    saved = ConversationHandlers(handle, answering=chat.answering)
    yield saved
    await drop_purges(saved)


async def drop_purges(saved: ConversationHandlers) -> None:
    """Deletions scheduled for after their undo's time, which no test here waits for: each
    is a `purge` coroutine made when the delete was, now never awaited."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "coroutine 'ConversationHandlers.purge' was never",
                                RuntimeWarning)
        cancelled = [task.cancel() for task in saved._purges]
        await asyncio.gather(*saved._purges, return_exceptions=True)
        await asyncio.sleep(0)  # the loop lets go of the last step of each
        gc.collect()
    assert all(cancelled) and not saved._purges


@pytest.fixture
def composer() -> Composer:
    """One browser tab's composer (the page keeps it in a gr.State)."""
    return Composer()


def send(chat: ChatHandlers, message: str, history: list | None = None, session_id: str = "",
         conversations: list | None = None, model: str = MODEL, show_thinking: bool = True,
         request: Any = None, composer: Composer | None = None, *, temperature: float = 0.7,
         system_prompt: str = ""):
    return chat.send(message, history or [], session_id, conversations or [], model,
                     temperature, system_prompt, show_thinking, request, composer)


async def test_an_answer_streams_word_by_word_then_shows_its_stats(
    chat: ChatHandlers, page: PageHandlers, handle: ServiceHandle, ollama_server: FakeOllama,
    composer: Composer,
):
    with no_toasts():
        updates = await collect(send(chat, "hello", composer=composer))
    session = session_of(updates)
    listed = [{"id": session, "title": "hello"}]
    assert updates == [
        # the question shown, the box emptied and turned into Stop, any old notice gone
        TurnUpdate([user("hello"), loading()], BUSY, streaming=True, notice=HIDDEN),
        TurnUpdate(  # the core took the turn: the new conversation is listed at once
            session_id=session, conversations=listed,
            listing=shown((session, "hello"), selected=session),
        ),
        TurnUpdate([user("hello"), bot("You")]),
        TurnUpdate([user("hello"), bot("You said:")]),
        TurnUpdate([user("hello"), bot("You said: hello")]),
        TurnUpdate([user("hello"), bot(f"You said: hello\n\n{STATS_3}")], streaming=False),
    ]
    core = await handle.get()
    assert [(type(m), m.text) for m in await core.history(session)] == [
        (HumanMessage, "hello"), (AIMessage, "You said: hello")
    ]
    # then the page settles the turn (Send again, the list from the server), and the
    # status line follows
    known = await listed_by_server(handle)
    assert [(c["id"], c["title"]) for c in known] == [(session, "hello")]
    assert await chat.settle(session, False, listed, True, None, composer) == (
        SKIP, False, known, shown((session, "hello"), selected=session), IDLE, HIDDEN
    )
    assert await page.status(MODEL) == (up(ollama_server), NO_OFFER)


async def test_each_tool_call_is_its_own_message_pending_then_done(
    chat: ChatHandlers, ollama_server: FakeOllama
):
    ollama_server.enqueue_tool_call("calculator", {"expression": "2+3"})
    ollama_server.enqueue_text("It is 5.")
    updates = await collect(send(chat, "What is 2+3?"))
    body = '**Arguments**\n```json\n{\n  "expression": "2+3"\n}\n```\n**Result**\n'
    title = "Used tool `calculator`"
    asked = [user("What is 2+3?")]
    running = bot(body + "*running…*", title=title, status="pending")
    used = bot(body + "```text\n5\n```", title=title, status="done", duration=0.5)
    assert chats(updates) == [
        [*asked, loading()],
        [*asked, running],
        [*asked, used],
        [*asked, used, bot("It")],
        [*asked, used, bot("It is")],
        [*asked, used, bot("It is 5.")],
        [*asked, used, bot("It is 5.\n\n<sub>4 tokens · 100.0 tokens/s · first token T</sub>")],
    ]


async def test_updates_are_coalesced_while_tokens_stream(
    settings: Settings, handle: ServiceHandle, ollama_server: FakeOllama
):
    """At most one update per interval; tool steps and the end are sent at once."""
    text = " ".join(f"w{i}" for i in range(20))
    ollama_server.enqueue_tool_call("calculator", {"expression": "1+1"})
    ollama_server.enqueue_text(text)
    # the clock advances 0.02 s per read: with a 0.05 s interval every third token is sent
    chat = ChatHandlers(settings, handle, update_interval=0.05, clock=ticks(0.02))
    updates = await collect(send(chat, "go"))
    answers = [u.chat[-1].content for u in updates[4:-1]]
    # start, session started, tool call, tool result; 6 of the 20 tokens; end
    assert len(updates) == 4 + 6 + 1
    assert answers == [" ".join(f"w{i}" for i in range(n)) for n in (3, 6, 9, 12, 15, 18)]
    # the tool call was a token too
    stats = "<sub>21 tokens · 100.0 tokens/s · first token T</sub>"
    assert updates[-1].chat[-1].content == f"{text}\n\n{stats}"


async def test_thinking_streams_apart_and_is_not_stored_as_the_answer(
    chat: ChatHandlers, saved: ConversationHandlers, handle: ServiceHandle,
    ollama_server: FakeOllama,
):
    ollama_server.add_model("qwen3", capabilities=("completion", "tools", "thinking"))
    ollama_server.enqueue_thinking_text(thinking="Two and two.", text="4")
    updates = await collect(send(chat, "2+2?", model="qwen3:latest"))
    asked = [user("2+2?")]
    assert chats(updates) == [
        [*asked, loading("qwen3:latest")],
        [*asked, bot("Two", title="Thinking", status="pending")],
        [*asked, bot("Two and", title="Thinking", status="pending")],
        [*asked, bot("Two and two.", title="Thinking", status="pending")],
        [*asked, bot("Two and two.", title="Thinking", status="done", duration=1.5), bot("4")],
        [*asked, bot("Two and two.", title="Thinking", status="done", duration=1.5),
         bot("4\n\n<sub>4 tokens · 100.0 tokens/s · first token T</sub>")],
    ]
    core = await handle.get()
    stored = (await core.history(session_of(updates)))[-1]
    assert (stored.text, stored.additional_kwargs["reasoning_content"]) == ("4", "Two and two.")
    # hidden thinking: the conversation drawn again without it
    assert await saved.show(session_of(updates), False) == [
        *asked, bot("4\n\n<sub>4 tokens · 100.0 tokens/s</sub>")
    ]


async def test_ollama_down_is_said_once_in_the_chat_and_the_page_works_again_when_it_is_back(
    chat: ChatHandlers, page: PageHandlers, handle: ServiceHandle, ollama_server: FakeOllama,
    composer: Composer,
):
    ollama_server.stop()
    with no_toasts():  # said once: in the chat, not in a toast too
        updates = await collect(send(chat, "hello", composer=composer))
    assert updates == [
        TurnUpdate([user("hello"), waiting()], BUSY, streaming=True, notice=HIDDEN),
        TurnUpdate(  # plain words and Retry; the operator's text behind "Details"
            [user("hello"), failed(OLLAMA_DOWN),
             details(str(OllamaUnavailable(ollama_server.url)))],
            streaming=False,
        ),
    ]
    assert composer.failed == Draft("hello")  # Retry sends it again: nothing was stored
    core = await handle.get()
    assert await core.sessions() == []  # nothing was said: no conversation was started
    # the status line, briefly, without operator instructions (no built-in model here)
    assert await page.status(MODEL) == (
        f"{RED_DOT} Ollama at `{ollama_server.url}` is not answering", NO_OFFER
    )

    ollama_server.start()  # Ollama is back: the next message works, nothing restarted
    updates = await collect(send(chat, "hello again"))
    assert updates[-1].chat[-1].content.startswith("You said: hello again\n\n<sub>")
    assert await page.status(MODEL) == (up(ollama_server), NO_OFFER)


async def test_a_missing_model_is_one_message_in_plain_words_and_the_status_line_says_so(
    chat: ChatHandlers, page: PageHandlers, ollama_server: FakeOllama
):
    with no_toasts():
        updates = await collect(send(chat, "hello", model="gone:latest"))
    assert updates[-1] == TurnUpdate([
        user("hello"),
        failed("The model gone:latest is not installed. Pick another in Chat settings, or pull "
               "it in the Models tab."),
        details(str(ModelNotFound("gone:latest"))),
    ], streaming=False)
    assert await page.status("gone:latest") == (
        f"{RED_DOT} Ollama 0.12.6 at `{ollama_server.url}` · model `gone:latest` is not "
        "installed: pick another, or pull it in the Models tab", NO_OFFER
    )


async def test_refused_input_goes_back_to_the_box_with_a_notice(
    chat: ChatHandlers, handle: ServiceHandle
):
    assert await collect(send(chat, "   ")) == [TurnUpdate()]
    history = [user("earlier")]
    with no_toasts():
        updates = await collect(send(chat, "x" * 4001, history))
    assert updates == [
        TurnUpdate([*history, user("x" * 4001), loading()], BUSY, streaming=True, notice=HIDDEN),
        TurnUpdate(history, refill("x" * 4001), streaming=False, notice=notice(
            "The message is 4001 characters long; the limit is 4000."
        )),
    ]
    assert await (await handle.get()).sessions() == []


async def test_a_message_from_another_tab_while_answering_is_refused_and_goes_back_to_its_box(
    chat: ChatHandlers, saved: ConversationHandlers, ollama_server: FakeOllama
):
    """Another tab (its own composer) on the same conversation: the service refuses, the
    message stays in that tab's box with a notice. (This tab's own queue:
    test_page_handlers.py.)"""
    session = session_of(await collect(send(chat, "first")))
    history = [user("first"), ChatMessage(role="assistant", content="You said: first")]
    ollama_server.token_rate = 10
    ollama_server.enqueue_text("one two three four five six")
    answering = send(chat, "second", history, session, composer=Composer())
    await anext(answering)  # the first update: the question shown, the answer on its way
    await anext(answering)  # the turn started: the conversation is answering now
    assert session in saved.answering
    other_tab = Composer()
    with no_toasts():
        refused = await collect(send(chat, "third", history, session, composer=other_tab))
    assert refused[-1] == TurnUpdate(history, refill("third"), streaming=False, notice=notice(
        "This conversation is still answering: wait for it, or press Stop."
    ))
    assert (other_tab.queued, other_tab.failed, other_tab.running) == ([], None, None)
    rest = await collect(answering)
    assert rest[-1].chat[-1].content.startswith("one two three four five six\n")
    assert session not in saved.answering


async def test_stop_keeps_what_streamed_in_the_chat_and_in_memory(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, composer: Composer
):
    ollama_server.token_rate = 50
    ollama_server.enqueue_text("one two three four five six seven eight nine ten " * 5)
    updates: list[tuple] = []
    three_words = asyncio.Event()

    async def consume() -> None:
        async for update in send(chat, "count", composer=composer):
            updates.append(update)
            if len(updates) == 5:  # the start, the session, and three words
                three_words.set()

    task = asyncio.create_task(consume())
    await three_words.wait()
    task.cancel()  # what Gradio does to a running event when Stop cancels it
    with pytest.raises(asyncio.CancelledError):
        await task
    session, streaming = session_of(updates), True  # the last update never came
    shown_chat, done, conversations, listing, box, queued = await chat.settle(
        session, streaming, [], True, None, composer)
    assert shown_chat[:1] == [user("count")]
    assert len(shown_chat) == 2 and shown_chat[1].content.endswith("\n\n■ *Stopped.*")
    partial = shown_chat[1].content.removesuffix("\n\n■ *Stopped.*")
    assert partial.startswith("one two three") and len(partial) < 250
    assert (done, conversations, listing, box, queued) == (
        False, await listed_by_server(handle), shown((session, "count"), selected=session),
        IDLE, HIDDEN,
    )
    assert composer.running is None  # Send again
    stored = (await (await handle.get()).history(session))[-1]
    assert (stored.text, stored.response_metadata["interrupted"]) == (
        partial, "stopped by the user"
    )
    ollama_server.token_rate = None  # the next turn works
    after = await collect(send(chat, "go on", shown_chat, session, composer=composer))
    assert after[-1].chat[-1].content.startswith("You said: go on\n\n<sub>")


async def test_undo_forgets_the_last_turn_and_retry_asks_it_again(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    first = await collect(send(chat, "one"))
    session = session_of(first)
    second = await collect(send(chat, "two", first[-1].chat, session))
    assert [m.content for m in second[-1].chat][2] == "two"

    ollama_server.enqueue_text("Another answer.")
    retried = await collect(chat.retry(session, MODEL, 0.7, "", True, None, Composer()))
    one = bot("You said: one\n\n<sub>3 tokens · 100.0 tokens/s</sub>")  # as memory has it
    assert retried[0] == TurnUpdate(  # loaded by now: waiting, not loading
        [user("one"), one, user("two"), waiting()], BUSY, streaming=True, notice=HIDDEN
    )
    assert retried[-1] == TurnUpdate([
        user("one"), one,
        user("two"), bot("Another answer.\n\n<sub>2 tokens · 100.0 tokens/s · first token T</sub>"),
    ], streaming=False)
    assert ollama_server.chat_requests[-1]["messages"][-1] == {"role": "user", "content": "two"}
    core = await handle.get()
    assert [m.text for m in await core.history(session)] == [
        "one", "You said: one", "two", "Another answer."
    ]

    # (chat, box, notice): the message back in the box to edit
    assert await chat.undo(session, True) == ([user("one"), one], box("two"), HIDDEN)
    assert [m.text for m in await core.history(session)] == ["one", "You said: one"]
    assert await chat.undo(session, True) == ([], box("one"), HIDDEN)
    with no_toasts():
        assert await chat.undo(session, True) == (
            SKIP, SKIP, notice("There is nothing to undo or retry yet.")
        )


async def test_retry_keeps_the_turn_when_it_cannot_be_answered_now(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    session = session_of(await collect(send(chat, "one")))
    ollama_server.stop()
    with no_toasts():
        retried = await collect(chat.retry(session, "llama3.2:8b", 0.7, "", True))
    assert retried == [TurnUpdate(notice=notice(OLLAMA_DOWN))]  # the status line: chained
    ollama_server.start()
    with no_toasts():
        retried = await collect(chat.retry(session, "llama3.2:8b", 0.7, "", True))
    assert retried == [TurnUpdate(
        notice=notice("The model llama3.2:8b is not installed. Pick another in Chat settings, "
                      "or pull it in the Models tab."),
    )]
    core = await handle.get()
    assert [m.text for m in await core.history(session)] == ["one", "You said: one"]


async def test_conversations_are_listed_reopened_and_deleted(
    chat: ChatHandlers, page: PageHandlers, saved: ConversationHandlers, handle: ServiceHandle,
    composer: Composer, settings: Settings,
):
    first = await collect(send(chat, "first question", composer=composer))
    second = await collect(send(chat, "second question", composer=composer))
    a, b = session_of(first), session_of(second)
    _, _, listed, _, _, _ = await chat.settle(a, False, [], True, None, composer)
    _, _, listed, listing, _, _ = await chat.settle(b, False, listed, True, None, composer)
    assert listed == await listed_by_server(handle)
    assert [(c["id"], c["title"]) for c in listed] == [
        (b, "second question"), (a, "first question")
    ]
    assert listing == shown((b, "second question"), (a, "first question"), selected=b)

    # a click in the list: the chat, and the settings it was started with
    assert await saved.open_conversation(clicked(id=a), listed, composer) == (
        [user("first question"),
         bot("You said: first question\n\n<sub>4 tokens · 100.0 tokens/s</sub>")],
        a, listed, shown((b, "second question"), (a, "first question"), selected=a),
        MODEL, 0.7, "", True, gr.update(visible=False), SKIP,
    )
    assert composer.viewing == a
    # a page load keeps the conversations the server has, and drops made-up or deleted ones
    stranger = {"id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427", "title": "?"}
    loaded = await page.load_page([stranger, *listed, "junk"], {})
    assert loaded[3:] == (
        listed, shown((b, "second question"), (a, "first question")), [], "",
        0.7, settings.system_prompt, True, "",  # a new chat, with the server's settings
    )

    # the item's menu: Delete hides it at once, with an undo offered
    assert await saved.act(clicked(action="delete", id=a), a, listed) == (
        shown((b, "second question"), undo={"id": a, "title": "first question"}),
        [], "", listed[:1], HIDDEN,  # it was open: the chat empties
    )
    assert [s.id for s in await (await handle.get()).sessions()] == [b]


async def test_with_login_each_user_reaches_only_their_conversations(
    chat: ChatHandlers, page: PageHandlers, saved: ConversationHandlers, handle: ServiceHandle,
    ollama_server: FakeOllama,
):
    """Bob tries every handler that takes a session id with Alice's (the page keeps the id
    in server-side state, but a shared browser or a crafted request could carry it): each
    answers as for a conversation that does not exist."""
    alice, bob = SimpleNamespace(username="alice"), SimpleNamespace(username="bob")
    updates = await collect(send(chat, "my secret", request=alice, system_prompt="Be terse."))
    session = session_of(updates)
    core = await handle.get()
    kept, chats = await core.history(session, "alice"), len(ollama_server.chat_requests)
    settings_kept = (await core.sessions("alice"))[0].settings
    listed = [{"id": session, "title": "my secret"}]
    unknown = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"

    async def answers(target: str) -> list:
        gone = f"No conversation with id {target} was found."
        bobs_tab = Composer()
        with no_toasts():
            refused = await collect(send(chat, "tell me", [], target, request=bob,
                                         composer=bobs_tab))
        assert refused[-1] == TurnUpdate([], refill("tell me"), streaming=False,
                                         notice=notice(gone))
        seen = [
            await collect(chat.retry(target, MODEL, 0.7, "", True, bob, Composer())),
            await chat.undo(target, True, bob),
            await saved.open_conversation(clicked(id=target), listed, Composer(), bob),
            await saved.save_settings(target, MODEL, 1.5, "Be loud.", False, bob),
        ]
        for action in ("rename", "delete", "undo"):
            event = clicked(action=action, id=target, title="Mine now")
            seen.append(await saved.act(event, "", listed, bob))
        for attempt in (
            lambda: chat.settle(target, True, listed, True, bob, bobs_tab),
            lambda: saved.show(target, True, bob),
            lambda: saved.act(clicked(action="export-md", id=target), "", listed, bob),
            lambda: saved.export_markdown(target, bob),
            lambda: saved.export_json(target, bob),
        ):
            with pytest.raises(gr.Error) as error:
                await attempt()
            seen.append(error.value.message)
        return [repr(answer).replace(target, "<id>") for answer in seen]

    assert await answers(session) == await answers(unknown)
    # a browser that lists Alice's conversation shows Bob nothing of it
    assert (await chat.settle(session, False, listed, True, bob))[2:4] == ([], shown())
    assert (await page.load_page(listed, {"session_id": session}, bob))[3:7] == (
        [], shown(), [], ""
    )
    assert await core.sessions("bob") == []

    assert await core.history(session, "alice") == kept
    assert (await core.sessions("alice"))[0].settings == settings_kept
    assert (await core.sessions("alice"))[0].title == "my secret"
    assert len(ollama_server.chat_requests) == chats
    assert (await saved.open_conversation(clicked(id=session), [], None, alice))[1:2] == (
        session,
    )


async def test_page_load_fills_the_model_picker_and_status(
    page: PageHandlers, ollama_server: FakeOllama, settings: Settings
):
    ollama_server.add_model("gemma3", capabilities=("completion",))
    ollama_server.add_model("qwen3", capabilities=("completion", "tools", "thinking"))
    with no_toasts():
        loaded = await page.load_page([], None)
    picker = gr.update(
        choices=[("qwen3:latest · 2.0 GB · tools · thinking", "qwen3:latest"),
                 ("gemma3:latest · 2.0 GB · prompted tools", "gemma3:latest"),
                 ("llama3.2:latest · 2.0 GB · tools", "llama3.2:latest")],
        value="llama3.2:latest",  # the configured default
    )
    assert loaded == (
        picker, up(ollama_server, loaded=False), NO_OFFER, [], shown(), [], "",
        settings.temperature, settings.system_prompt, True, "",
    )

    ollama_server.stop()
    with no_toasts():  # the status line says it, once
        refreshed = await page.refresh_models("qwen3:latest")
    assert refreshed == (
        gr.update(choices=[("llama3.2 · Ollama not reachable", "llama3.2"),
                           ("qwen3:latest · Ollama not reachable", "qwen3:latest")],
                  value="qwen3:latest"),  # the choice stays, marked
        f"{RED_DOT} Ollama at `{ollama_server.url}` is not answering", NO_OFFER,
    )


async def test_export_is_a_direct_download_as_markdown_or_json(
    chat: ChatHandlers, saved: ConversationHandlers, ollama_server: FakeOllama
):
    ollama_server.enqueue_tool_call("calculator", {"expression": "2+3"})
    ollama_server.enqueue_text("It is 5.")
    session = session_of(await collect(send(chat, "What is 2+3?")))
    listed = [{"id": session, "title": "What is 2+3?"}]

    # from the item's menu: the file arrives in the list's `download` prop, nothing else moves
    download, *rest = await saved.act(clicked(action="export-md", id=session), "", listed)
    assert rest == [SKIP] * 4
    file = download.pop("saving")
    assert download == gr.update()  # the list itself is left as it is
    assert isinstance(file.pop("nonce"), float)  # each export a new value, saved again
    text = file.pop("text")
    assert file == {"name": "what-is-2-3.md", "type": "text/markdown"}
    assert text.startswith("# What is 2+3?\n\n*Exported from OllamaStack, ")
    assert text.split("*\n", 1)[1] == (
        "\n## You\n\nWhat is 2+3?\n\n## Assistant\n\n"
        '> Used tool `calculator` with `{"expression": "2+3"}`\n>\n> ```\n> 5\n> ```\n\n'
        "It is 5.\n"
    )
    # the chat's own buttons export the open conversation
    file = (await saved.export_json(session))["saving"]
    assert (file["name"], file["type"]) == ("what-is-2-3.json", "application/json")
    exported = json.loads(file["text"])
    assert exported["session_id"] == session and exported["title"] == "What is 2+3?"
    assert [(m["role"], m["content"]) for m in exported["messages"]] == [
        ("user", "What is 2+3?"), ("assistant", ""), ("tool", "5"), ("assistant", "It is 5.")
    ]
    assert exported["messages"][1]["tool_calls"][0]["args"] == {"expression": "2+3"}
    with no_toasts():  # a new chat: nothing to export, nothing happens
        assert await saved.export_json("") == SKIP
