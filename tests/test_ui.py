"""The page's event handlers, called as Gradio calls them, over a real chat service and the
Ollama-protocol test server. Every streamed update is asserted, as a person would see it."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest
from gradio import ChatMessage
from langchain_core.messages import AIMessage, HumanMessage

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.web.ui.chat import ChatHandlers, TurnUpdate
from ollamastack.web.ui.conversations import ConversationHandlers
from ollamastack.web.ui.models import ModelsHandlers
from ollamastack.web.ui.page import PageHandlers
from ollamastack.web.ui.status import GREEN_DOT, RED_DOT
from tests.support.ollama_server import FakeOllama

SKIP = gr.skip()
MODEL = "llama3.2:latest"


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def bot(text: str, **metadata: Any) -> ChatMessage:
    return ChatMessage(role="assistant", content=text, metadata=metadata)  # type: ignore[arg-type]


STATS_3 = "<sub>3 tokens · 100.0 tokens/s · first token T</sub>"


def loading(model: str = MODEL) -> ChatMessage:
    return bot("", title=f"Loading model `{model}`…", status="pending")


def timeless(update: tuple) -> tuple:
    """An update with the stats line's wall-clock timings blanked (they vary run to run)."""
    chat, *rest = update
    if isinstance(chat, list):  # a TurnUpdate
        chat = [
            ChatMessage(
                role=m.role,
                content=re.sub(r"first token [\d.]+ s · [\d.]+ s in all", "first token T",
                               m.content),
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
def saved(handle: ServiceHandle, chat: ChatHandlers) -> ConversationHandlers:
    return ConversationHandlers(handle, answering=chat.answering)


def send(chat: ChatHandlers, message: str, history: list | None = None, session_id: str = "",
         conversations: list | None = None, model: str = MODEL, show_thinking: bool = True,
         request: Any = None):
    return chat.send(message, history or [], session_id, conversations or [], model, 0.7, "",
                     show_thinking, request)


async def test_an_answer_streams_word_by_word_then_shows_its_stats(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    updates = await collect(send(chat, "hello"))
    session = session_of(updates)
    listed = [{"id": session, "title": "hello"}]
    assert updates == [
        TurnUpdate([user("hello"), loading()], "", streaming=True),
        TurnUpdate(  # the core took the turn: the new conversation is listed at once
            session_id=session, conversations=listed,
            listing=gr.update(choices=[("hello", session)], value=session),
        ),
        TurnUpdate([user("hello"), bot("You")]),
        TurnUpdate([user("hello"), bot("You said:")]),
        TurnUpdate([user("hello"), bot("You said: hello")]),
        TurnUpdate(
            [user("hello"), bot(f"You said: hello\n\n{STATS_3}")],
            status=up(ollama_server), streaming=False,
        ),
    ]
    core = await handle.get()
    assert [(type(m), m.text) for m in await core.history(session)] == [
        (HumanMessage, "hello"), (AIMessage, "You said: hello")
    ]


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


async def test_ollama_down_shows_a_toast_and_the_page_works_again_when_it_is_back(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    ollama_server.stop()
    down = f"Ollama is not reachable at {ollama_server.url}."
    with pytest.warns(UserWarning, match=re.escape(down)):
        updates = await collect(send(chat, "hello"))
    message = updates[-1].chat[-1].content
    assert message.startswith(f"⚠ {down}")
    waiting = bot("", title=f"Waiting for `{MODEL}`…", status="pending")  # no news of it
    assert updates == [
        TurnUpdate([user("hello"), waiting], "", streaming=True),
        TurnUpdate(
            [user("hello"), bot(message)],
            status=f"{RED_DOT} {message.removeprefix('⚠ ')}", streaming=False,
        ),
    ]
    core = await handle.get()
    assert await core.sessions() == []  # nothing was said: no conversation was started

    ollama_server.start()  # Ollama is back: the next message works, nothing restarted
    updates = await collect(send(chat, "hello again"))
    assert updates[-1].chat[-1].content.startswith("You said: hello again\n\n<sub>")
    assert updates[-1].status == up(ollama_server)


async def test_a_missing_model_is_a_toast_and_a_message(
    chat: ChatHandlers, ollama_server: FakeOllama
):
    with pytest.warns(UserWarning, match="Model &#x27;gone:latest&#x27; is not installed"):
        updates = await collect(send(chat, "hello", model="gone:latest"))
    assert updates[-1].chat == [
        user("hello"),
        bot("⚠ Model 'gone:latest' is not installed in Ollama. Pull it with "
            "`ollama pull gone:latest` or from the Models tab."),
    ]
    assert updates[-1].status == (
        f"{RED_DOT} Ollama 0.12.6 at `{ollama_server.url}` · model `gone:latest` is not "
        "installed: pull it in the Models tab"
    )


async def test_refused_input_goes_back_to_the_box(chat: ChatHandlers, handle: ServiceHandle):
    assert await collect(send(chat, "   ")) == [TurnUpdate()]
    history = [user("earlier")]
    with pytest.warns(UserWarning, match="4001 characters long; the limit is 4000"):
        updates = await collect(send(chat, "x" * 4001, history))
    assert updates == [
        TurnUpdate([*history, user("x" * 4001), loading()], "", streaming=True),
        TurnUpdate(history, "x" * 4001, streaming=False),
    ]
    assert await (await handle.get()).sessions() == []


async def test_a_second_message_while_answering_is_refused_and_goes_back_to_the_box(
    chat: ChatHandlers, saved: ConversationHandlers, ollama_server: FakeOllama
):
    session = session_of(await collect(send(chat, "first")))
    history = [user("first"), ChatMessage(role="assistant", content="You said: first")]
    ollama_server.token_rate = 10
    ollama_server.enqueue_text("one two three four five six")
    answering = send(chat, "second", history, session)
    await anext(answering)  # the first update: the question shown, the answer on its way
    await anext(answering)  # the turn started: the conversation is answering now
    assert session in saved.answering
    busy = "This conversation is still answering: wait for it, or press Stop."
    with pytest.warns(UserWarning, match=busy):
        refused = await collect(send(chat, "third", history, session))
    assert refused[-1] == TurnUpdate(history, "third", streaming=False)
    rest = await collect(answering)
    assert rest[-1].chat[-1].content.startswith("one two three four five six\n")
    assert session not in saved.answering


async def test_stop_keeps_what_streamed_in_the_chat_and_in_memory(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    ollama_server.token_rate = 50
    ollama_server.enqueue_text("one two three four five six seven eight nine ten " * 5)
    updates: list[tuple] = []
    three_words = asyncio.Event()

    async def consume() -> None:
        async for update in send(chat, "count"):
            updates.append(update)
            if len(updates) == 5:  # the start, the session, and three words
                three_words.set()

    task = asyncio.create_task(consume())
    await three_words.wait()
    task.cancel()  # what Gradio does to a running event when Stop cancels it
    with pytest.raises(asyncio.CancelledError):
        await task
    session, streaming = session_of(updates), True  # the last update never came
    shown, done, conversations, listing = await chat.settle(session, streaming, [], True)
    assert shown[:1] == [user("count")]
    assert len(shown) == 2 and shown[1].content.endswith("\n\n■ *Stopped.*")
    partial = shown[1].content.removesuffix("\n\n■ *Stopped.*")
    assert partial.startswith("one two three") and len(partial) < 250
    assert (done, conversations) == (False, [{"id": session, "title": "count"}])
    assert listing == gr.update(choices=[("count", session)], value=session)
    stored = (await (await handle.get()).history(session))[-1]
    assert (stored.text, stored.response_metadata["interrupted"]) == (
        partial, "stopped by the user"
    )
    ollama_server.token_rate = None  # the next turn works
    after = await collect(send(chat, "go on", shown, session))
    assert after[-1].chat[-1].content.startswith("You said: go on\n\n<sub>")


async def test_undo_forgets_the_last_turn_and_retry_asks_it_again(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    first = await collect(send(chat, "one"))
    session = session_of(first)
    second = await collect(send(chat, "two", first[-1].chat, session))
    assert [m.content for m in second[-1].chat][2] == "two"

    ollama_server.enqueue_text("Another answer.")
    retried = await collect(chat.retry(session, MODEL, 0.7, "", True))
    one = bot("You said: one\n\n<sub>3 tokens · 100.0 tokens/s</sub>")  # as memory has it
    waiting = bot("", title=f"Waiting for `{MODEL}`…", status="pending")  # loaded by now
    assert retried[0] == TurnUpdate([user("one"), one, user("two"), waiting], "", streaming=True)
    assert retried[-1].chat == [
        user("one"), one,
        user("two"), bot("Another answer.\n\n<sub>2 tokens · 100.0 tokens/s · first token T</sub>"),
    ]
    assert ollama_server.chat_requests[-1]["messages"][-1] == {"role": "user", "content": "two"}
    core = await handle.get()
    assert [m.text for m in await core.history(session)] == [
        "one", "You said: one", "two", "Another answer."
    ]

    assert await chat.undo(session, True) == ([user("one"), one], "two")
    assert [m.text for m in await core.history(session)] == ["one", "You said: one"]
    assert await chat.undo(session, True) == ([], "one")
    with pytest.warns(UserWarning, match="nothing to undo"):
        assert await chat.undo(session, True) == (SKIP, SKIP)


async def test_retry_keeps_the_turn_when_it_cannot_be_answered_now(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    session = session_of(await collect(send(chat, "one")))
    ollama_server.stop()
    with pytest.warns(UserWarning, match="not reachable"):
        retried = await collect(chat.retry(session, "llama3.2:8b", 0.7, "", True))
    assert len(retried) == 1 and retried[0].status.startswith(RED_DOT)
    ollama_server.start()
    with pytest.warns(UserWarning, match="not installed"):
        await collect(chat.retry(session, "llama3.2:8b", 0.7, "", True))
    core = await handle.get()
    assert [m.text for m in await core.history(session)] == ["one", "You said: one"]


async def test_conversations_are_listed_reopened_and_deleted(
    chat: ChatHandlers, page: PageHandlers, saved: ConversationHandlers, handle: ServiceHandle
):
    first = await collect(send(chat, "first question"))
    second = await collect(send(chat, "second question"))
    a, b = session_of(first), session_of(second)
    _, _, listed, _ = await chat.settle(a, False, [], True)
    _, _, listed, listing = await chat.settle(b, False, listed, True)
    assert listed == [{"id": b, "title": "second question"}, {"id": a, "title": "first question"}]
    assert listing == gr.update(
        choices=[("second question", b), ("first question", a)], value=b
    )

    reopened, session, kept, _ = await saved.open_conversation(a, True, listed)
    assert (reopened, session, kept) == (
        [user("first question"),
         bot("You said: first question\n\n<sub>4 tokens · 100.0 tokens/s</sub>")], a, listed,
    )
    # a page load keeps the conversations the server has, and drops made-up or deleted ones
    stranger = {"id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427", "title": "?"}
    _, _, known, listing = await page.load_page([stranger, *listed, "junk"], MODEL)
    assert known == listed

    cleared, session, kept, listing = await saved.delete_conversation(a, listed)
    assert (cleared, session, kept) == ([], "", [{"id": b, "title": "second question"}])
    assert listing == gr.update(choices=[("second question", b)], value=None)
    assert [s.id for s in await (await handle.get()).sessions()] == [b]


async def test_with_login_each_user_reaches_only_their_conversations(
    chat: ChatHandlers, page: PageHandlers, saved: ConversationHandlers, handle: ServiceHandle,
    ollama_server: FakeOllama,
):
    """Bob tries every handler that takes a session id with Alice's (the page keeps the id
    in server-side state, but a shared browser or a crafted request could carry it)."""
    alice, bob = SimpleNamespace(username="alice"), SimpleNamespace(username="bob")
    updates = await collect(send(chat, "my secret", request=alice))
    session = session_of(updates)
    core = await handle.get()
    kept, chats = await core.history(session, "alice"), len(ollama_server.chat_requests)
    gone = f"No conversation with id {session} was found."
    listed = [{"id": session, "title": "my secret"}]

    with pytest.warns(UserWarning, match=gone):
        refused = await collect(send(chat, "tell me", [], session, request=bob))
    assert refused[-1] == TurnUpdate([], "tell me", streaming=False)
    for attempt in (
        lambda: collect(chat.retry(session, MODEL, 0.7, "", True, bob)),
        lambda: chat.undo(session, True, bob),
        lambda: chat.settle(session, True, listed, True, bob),
        lambda: saved.show(session, True, bob),
        lambda: saved.delete_conversation(session, listed, bob),
        lambda: saved.export_markdown(session, bob),
        lambda: saved.export_json(session, bob),
    ):
        with pytest.raises(gr.Error, match=gone):
            await attempt()
    with pytest.warns(UserWarning, match=gone):
        assert (await saved.open_conversation(session, True, [], bob))[:2] == (SKIP, SKIP)
    # a browser that lists Alice's conversation shows Bob nothing of it
    assert (await chat.settle(session, False, listed, True, bob))[2] == []
    assert (await page.load_page(listed, MODEL, bob))[2] == []
    assert await core.sessions("bob") == []

    assert await core.history(session, "alice") == kept
    assert len(ollama_server.chat_requests) == chats
    assert (await saved.open_conversation(session, True, [], alice))[1] == session


async def test_page_load_fills_the_model_picker_and_status(
    page: PageHandlers, ollama_server: FakeOllama
):
    ollama_server.add_model("gemma3", capabilities=("completion",))
    ollama_server.add_model("qwen3", capabilities=("completion", "tools", "thinking"))
    picker, status, known, listing = await page.load_page([], None)
    assert picker == gr.update(
        choices=[("qwen3:latest (thinking)", "qwen3:latest"),
                 ("gemma3:latest (prompted tools)", "gemma3:latest"),
                 ("llama3.2:latest", "llama3.2:latest")],
        value="llama3.2:latest",  # the configured default
    )
    assert status == up(ollama_server, loaded=False)
    assert (known, listing) == ([], gr.update(choices=[], value=None))

    ollama_server.stop()
    with pytest.warns(UserWarning, match="not reachable"):
        picker, status = await page.refresh_models("qwen3:latest")
    assert picker == gr.update(choices=[("qwen3:latest", "qwen3:latest")], value="qwen3:latest")
    assert status.startswith(f"{RED_DOT} Ollama is not reachable at {ollama_server.url}.")


async def test_export_as_markdown_and_json(
    chat: ChatHandlers, saved: ConversationHandlers, ollama_server: FakeOllama
):
    ollama_server.enqueue_tool_call("calculator", {"expression": "2+3"})
    ollama_server.enqueue_text("It is 5.")
    session = session_of(await collect(send(chat, "What is 2+3?")))

    markdown = await saved.export_markdown(session)
    path = Path(markdown["value"])
    assert (path.name, markdown["visible"]) == ("what-is-2-3.md", True)
    text = await asyncio.to_thread(path.read_text)
    assert text.startswith("# What is 2+3?\n\n*Exported from OllamaStack, ")
    assert text.split("*\n", 1)[1] == (
        "\n## You\n\nWhat is 2+3?\n\n## Assistant\n\n"
        '> Used tool `calculator` with `{"expression": "2+3"}`\n>\n> ```\n> 5\n> ```\n\n'
        "It is 5.\n"
    )
    exported_file = Path((await saved.export_json(session))["value"])
    exported = json.loads(await asyncio.to_thread(exported_file.read_text))
    assert exported["session_id"] == session and exported["title"] == "What is 2+3?"
    assert [(m["role"], m["content"]) for m in exported["messages"]] == [
        ("user", "What is 2+3?"), ("assistant", ""), ("tool", "5"), ("assistant", "It is 5.")
    ]
    assert exported["messages"][1]["tool_calls"][0]["args"] == {"expression": "2+3"}
    with pytest.warns(UserWarning, match="no conversation to export"):
        assert await saved.export_json("") == gr.update(value=None, visible=False)


async def test_models_tab_lists_pulls_with_progress_and_deletes_after_confirming(
    handle: ServiceHandle, ollama_server: FakeOllama
):
    models = ModelsHandlers(handle, update_interval=1.0, clock=lambda: 0.0)
    rows, picker = await models.table()
    assert rows == [["llama3.2:latest", "2.0 GB", "3.2B", "Q4_K_M", "completion, tools", ""]]
    assert picker == gr.update(choices=["llama3.2:latest"], value=None)

    ollama_server.add_pullable("gemma3", capabilities=("completion", "vision"), size=3_300_000_000)
    updates = [u async for u in models.pull("gemma3")]
    progress = [u[0] for u in updates]
    # the clock stands still: only changes of step are drawn, not each layer's bytes
    assert [re.sub(r"<[^>]+>", "", p).strip() for p in progress] == [
        "gemma3: starting",
        "gemma3: pulling manifest",
        "gemma3: verifying sha256 digest · 100% of 3.3 GB",
        "gemma3: writing manifest · 100% of 3.3 GB",
        "gemma3: success · 100% of 3.3 GB",
        "gemma3 is installed.",
    ]
    assert '<progress value="1.000" max="1">' in progress[-2]
    installed = ["gemma3:latest", "3.3 GB", "3.2B", "Q4_K_M", "completion, vision", ""]
    assert updates[-1][1][0] == installed

    with pytest.warns(UserWarning, match="Could not pull missing-model"):
        updates = [u async for u in models.pull("missing-model")]
    assert "Could not pull missing-model" in updates[-1][0]

    box, question = models.ask_delete("gemma3:latest")
    assert (box, question) == (
        gr.update(visible=True),
        "Delete **gemma3:latest** from Ollama? Its files are removed; pull it to get it back.",
    )
    box, rows, picker, note = await models.delete("gemma3:latest")
    assert (box, [r[0] for r in rows], picker["choices"]) == (
        gr.update(visible=False), ["llama3.2:latest"], ["llama3.2:latest"]
    )
    assert "gemma3:latest was deleted." in note
    assert [m.name for m in ollama_server.models] == ["llama3.2:latest"]
