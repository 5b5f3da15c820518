"""Edit and branch: `/edit_message`, `/switch_branch` and the branches in `/history` through
gradio_client on the launched app (two users, with login), what the model sees, search and
delete following the active branch; in the chat service, on a SQLite file and a real
PostgreSQL, branches surviving a restart, export, files kept by an edit, and a second app
replica on the same database seeing and moving the same branches."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from langchain_core.messages import AIMessage, HumanMessage

from ollamastack.agent.branches import BranchInfo
from ollamastack.agent.sealing import thread
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.errors import AwaitingApproval, InvalidInput, SessionBusy, SessionNotFound
from ollamastack.events import Done, Started, TextDelta
from ollamastack.web.audit import AUDIT_FILE
from ollamastack.web.transcript import to_json, to_markdown
from tests.support.api_helpers import (
    TEST_RATE_LIMIT,
    OllamaView,
    Served,
    chunk,
    growing,
    run,
    serve,
    stats,
    without_timings,
)
from tests.support.chat_helpers import assistant, make_settings, run_turn, system, user
from tests.support.ollama_server import FakeOllama, Reply

LOGINS = "ann:pw-ann,bob:pw-bob,cy:pw-cy"


@pytest.fixture(scope="module")
def served(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(shared_server, tmp_path_factory.mktemp("data"), auth=LOGINS) as served:
        yield served


def chat(client: Client, message: str, session_id: str = "") -> str:
    return client.predict(message, session_id, api_name="/chat")["session_id"]


def edit(client: Client, session_id: str, index: int, message: str) -> list[dict]:
    outputs, error = run(client, session_id, index, message, api_name="/edit_message")
    assert error is None
    return outputs


def history(client: Client, session_id: str) -> list[dict]:
    return client.predict(session_id, api_name="/history")


def switch(client: Client, session_id: str, index: int, branch: int) -> list[dict]:
    return client.predict(session_id, index, branch, api_name="/switch_branch")


def asked(text: str, branch: int = 1, branches: int = 1) -> dict[str, Any]:
    """A user message as /history lists it, with which of its versions it is."""
    return {"role": "user", "content": text, "branch": branch, "branches": branches}


def said(text: str) -> dict[str, Any]:
    """The test server's answer when nothing is queued, as /history lists it."""
    return {"role": "assistant", "content": f"You said: {text}"}


def search(client: Client, query: str) -> list[tuple[str, int]]:
    return [(hit["session_id"], hit["message_index"])
            for hit in client.predict(query, api_name="/search_conversations")]


# -- edit and switch through the named API ------------------------------------------


def test_an_edit_streams_a_new_branch_and_the_model_sees_only_it(
    ann: Client, ollama: OllamaView
) -> None:
    session = chat(ann, "Name a fruit")
    chat(ann, "And a colour?", session)
    ollama.enqueue_text("Seven is a number.")
    outputs = edit(ann, session, 2, "  And a number? ")
    assert [*outputs[:-1], without_timings(outputs[-1])] == [
        *(chunk(session, text) for text in growing("Seven is a number.")),
        chunk(session, "Seven is a number.", done=True,
              stats=stats(ollama.chat_requests[2:], completion_tokens=4)),
    ]
    assert ollama.chat_requests[2]["messages"] == [
        system(), user("Name a fruit"), assistant("You said: Name a fruit"),
        user("And a number?"),
    ]
    assert history(ann, session) == [
        asked("Name a fruit"), said("Name a fruit"),
        asked("And a number?", 2, 2), {"role": "assistant", "content": "Seven is a number."},
    ]


def test_switching_branches_shows_each_as_it_was_left_and_the_model_follows(
    ann: Client, ollama: OllamaView
) -> None:
    session = chat(ann, "Hello")
    chat(ann, "Tell me about owls", session)
    edit(ann, session, 2, "Tell me about bats")
    edit(ann, session, 2, "Tell me about moths")
    chat(ann, "Are they nocturnal?", session)  # the third branch goes on

    owls = [asked("Hello"), said("Hello"), asked("Tell me about owls", 1, 3),
            said("Tell me about owls")]
    assert switch(ann, session, 2, 1) == owls
    assert history(ann, session) == owls
    chat(ann, "Where do they nest?", session)  # continues the owls, and only they are sent
    assert ollama.chat_requests[-1]["messages"] == [
        system(), user("Hello"), assistant("You said: Hello"), user("Tell me about owls"),
        assistant("You said: Tell me about owls"), user("Where do they nest?"),
    ]

    assert switch(ann, session, 2, 3) == [
        asked("Hello"), said("Hello"), asked("Tell me about moths", 3, 3),
        said("Tell me about moths"), asked("Are they nocturnal?"), said("Are they nocturnal?"),
    ]
    assert switch(ann, session, 2, 1) == [
        *owls[:2], asked("Tell me about owls", 1, 3), said("Tell me about owls"),
        asked("Where do they nest?"), said("Where do they nest?"),
    ]
    assert switch(ann, session, 2, 2)[2:] == [
        asked("Tell me about bats", 2, 3), said("Tell me about bats")]
    assert switch(ann, session, 2, 2) == history(ann, session)  # already shown: no change


def test_branches_nest_and_the_first_message_can_be_edited_with_the_title(
    ann: Client,
) -> None:
    session = chat(ann, "Plan a trip to Oslo")
    chat(ann, "By train", session)
    edit(ann, session, 2, "By plane")
    edit(ann, session, 0, "Plan a trip to Rome")
    titles = {s["session_id"]: s["title"] for s in ann.predict(api_name="/sessions")}
    assert titles[session] == "Plan a trip to Rome"
    assert history(ann, session) == [asked("Plan a trip to Rome", 2, 2),
                                     said("Plan a trip to Rome")]
    assert switch(ann, session, 0, 1) == [
        asked("Plan a trip to Oslo", 1, 2), said("Plan a trip to Oslo"),
        asked("By plane", 2, 2), said("By plane"),
    ]
    titles = {s["session_id"]: s["title"] for s in ann.predict(api_name="/sessions")}
    assert titles[session] == "Plan a trip to Oslo"

    ann.predict(session, "My trips", api_name="/rename_session")
    switch(ann, session, 0, 2)  # a title the user chose stays
    titles = {s["session_id"]: s["title"] for s in ann.predict(api_name="/sessions")}
    assert titles[session] == "My trips"


def test_retry_is_an_edit_with_the_same_text_and_keeps_both_answers(
    ann: Client, ollama: OllamaView
) -> None:
    ollama.enqueue_text("Blue.")
    session = chat(ann, "Pick a colour")
    ollama.enqueue_text("Green.")
    edit(ann, session, 0, "Pick a colour")
    assert history(ann, session) == [asked("Pick a colour", 2, 2),
                                     {"role": "assistant", "content": "Green."}]
    assert switch(ann, session, 0, 1) == [asked("Pick a colour", 1, 2),
                                          {"role": "assistant", "content": "Blue."}]


def test_search_follows_the_active_branch(ann: Client, ollama: OllamaView) -> None:
    session = chat(ann, "Facts about ibexes")
    chat(ann, "Do ibexes climb?", session)
    ollama.enqueue_text("Wombats dig burrows.")
    edit(ann, session, 0, "Facts about wombats")
    assert search(ann, "ibexes") == []  # the longer branch's later messages went too
    assert search(ann, "wombats") == [(session, 1)]
    switch(ann, session, 0, 1)
    assert search(ann, "ibexes") == [(session, 3)]
    assert search(ann, "wombats") == []


def test_deleting_a_conversation_deletes_every_branch(served: Served, ann: Client) -> None:
    session = chat(ann, "Branchy conversation")
    database = sqlite3.connect(served.settings.sqlite_path)
    try:
        def stored() -> int:
            query = "SELECT count(*) FROM checkpoints WHERE thread_id = ?"
            return database.execute(query, (session,)).fetchone()[0]

        one_branch = stored()
        edit(ann, session, 0, "Branchy again")
        assert stored() > 2 * one_branch - 1 > 0  # the second branch's own, and the fork
        ann.predict(session, api_name="/delete_session")
        assert stored() == 0
    finally:
        database.close()
    assert run(ann, session, api_name="/history") == (
        [], f"No conversation with id {session} was found.")
    assert search(ann, "branchy") == []


def test_edits_count_against_the_rate_limit_and_both_endpoints_are_audited(
    served: Served,
) -> None:
    cy = Client(served.url, auth=("cy", "pw-cy"), verbose=False)  # no message sent yet
    served.app.edge.limiter.limit = 2
    try:
        session = chat(cy, "Audited")
        edit(cy, session, 0, "Audited again")
        limited = run(cy, session, 0, "Once more", api_name="/edit_message")
    finally:
        served.app.edge.limiter.limit = TEST_RATE_LIMIT
    assert limited == ([], "Too many messages: the limit is 2 a minute. Try again in 60 s.")
    switch(cy, session, 0, 1)
    served.app.edge.audit_log.flush()  # the audit log is written by a bus subscriber
    audit = [json.loads(line) for line in
             (served.settings.data_dir / AUDIT_FILE).read_text().splitlines()]
    mine = [(e["endpoint"], e["session_id"], e["outcome"]) for e in audit if e["user"] == "cy"]
    assert mine == [("login", "", "ok"), ("/chat", session, "ok"),
                    ("/edit_message", session, "ok"),
                    ("/edit_message", session, "rate_limited"),
                    ("/switch_branch", session, "ok")]


# -- bad input: a clear error, and nothing changed ---------------------------------------


@pytest.fixture
def two_branches(ann: Client, ollama: OllamaView) -> Iterator[tuple[str, list[dict]]]:
    """A conversation of ann's with two turns, the second edited once (three model calls);
    and its history, checked to be the same after the test."""
    session = chat(ann, "Question one")
    chat(ann, "Question two", session)
    edit(ann, session, 2, "Question two, edited")
    before = history(ann, session)
    yield session, before
    assert history(ann, session) == before


@pytest.mark.parametrize(("endpoint", "args", "error"), [
    ("/edit_message", (4, "x"), "Message index 4 is not in this conversation "
                                "(its messages are 0 to 3)."),
    ("/edit_message", (-1, "x"), "Message index -1 is not in this conversation "
                                 "(its messages are 0 to 3)."),
    ("/edit_message", (1, "x"), "Message 1 is not one of your messages: only those can be "
                                "edited or have branches."),
    ("/edit_message", (0, "   "), "The message is empty."),
    ("/edit_message", (0, "x" * 4001), "The message is 4001 characters long; the limit is 4000."),
    ("/switch_branch", (2, 3), "Message 2 has 2 branches: there is no branch 3."),
    ("/switch_branch", (2, 0), "Message 2 has 2 branches: there is no branch 0."),
    ("/switch_branch", (0, 2), "Message 0 has 1 branch: there is no branch 2."),
    ("/switch_branch", (3, 1), "Message 3 is not one of your messages: only those can be "
                               "edited or have branches."),
])
def test_bad_indexes_branches_and_texts_are_refused(
    ann: Client, ollama: OllamaView, two_branches: tuple[str, list[dict]], endpoint: str,
    args: tuple, error: str,
) -> None:
    session, _ = two_branches
    assert run(ann, session, *args, api_name=endpoint) == ([], error)
    assert len(ollama.chat_requests) == 3  # the fixture's only


@pytest.mark.parametrize(("index", "branch", "error"), [
    (1.5, 1, "The message index must be a whole number."),
    ("2", 1, "The message index must be a whole number."),
    (True, 1, "The message index must be a whole number."),
    (2, "1", "The branch must be a whole number."),
    (2, None, "The branch must be a whole number."),
])
def test_indexes_and_branches_must_be_whole_numbers(
    ann: Client, two_branches: tuple[str, list[dict]], index: Any, branch: Any, error: str
) -> None:
    session, _ = two_branches
    assert run(ann, session, index, branch, api_name="/switch_branch") == ([], error)


def test_another_users_conversation_is_like_an_unknown_one(
    ann: Client, bob: Client, ollama: OllamaView, two_branches: tuple[str, list[dict]]
) -> None:
    session, _ = two_branches
    unknown = str(uuid.uuid4())
    for target in (session, unknown):
        missing = f"No conversation with id {target} was found."
        assert run(bob, target, 0, "Mine now", api_name="/edit_message") == ([], missing)
        assert run(bob, target, 2, 1, api_name="/switch_branch") == ([], missing)
        assert run(bob, target, api_name="/history") == ([], missing)
    assert len(ollama.chat_requests) == 3  # the fixture's only


def test_an_edit_or_switch_while_the_conversation_answers_is_refused(
    ann: Client, ollama: OllamaView
) -> None:
    session = chat(ann, "Question one")
    edit(ann, session, 0, "Question one, edited")
    before = history(ann, session)
    ollama.add_model("gate")
    ollama.enqueue(Reply(content="Later.", model="llama3.2", together=2))
    ollama.enqueue(Reply(content="Go.", model="gate", together=2))
    with ThreadPoolExecutor(1) as pool:
        answering = pool.submit(chat, ann, "Take your time", session)
        ollama.wait_until(lambda: len(ollama.chat_requests) == 3)  # it answers now
        refused = [run(ann, session, 0, "Meanwhile", api_name="/edit_message"),
                   run(ann, session, 0, 1, api_name="/switch_branch")]
        gate = {"model": "gate", "messages": [{"role": "user", "content": "go"}],
                "stream": False}
        assert httpx.post(f"{ollama.url}/api/chat", json=gate, timeout=30).status_code == 200
        assert answering.result() == session
    busy = "This conversation is still answering: wait for it, or press Stop."
    assert refused == [([], busy), ([], busy)]
    assert len(ollama.chat_requests) == 4  # the gate: neither reached Ollama
    assert history(ann, session) == [*before, asked("Take your time"),
                                     {"role": "assistant", "content": "Later."}]


# -- a second app replica on PostgreSQL -------------------------------------------------


def test_a_second_replica_on_postgres_sees_and_moves_the_same_branches(
    postgres: Any, shared_server: FakeOllama, ollama: OllamaView, tmp_path: Path
) -> None:
    database = postgres.new_database()
    with (serve(shared_server, tmp_path / "one", database_url=database) as one,
          serve(shared_server, tmp_path / "two", database_url=database) as two):
        first = Client(one.url, verbose=False)
        second = Client(two.url, verbose=False)
        session = chat(first, "Pick a city")
        edit(first, session, 0, "Pick a country")
        assert history(second, session) == [asked("Pick a country", 2, 2),
                                            said("Pick a country")]
        city = [asked("Pick a city", 1, 2), said("Pick a city")]
        assert switch(second, session, 0, 1) == city
        assert history(first, session) == city  # the switch the other replica made
        chat(first, "A big one", session)
        assert ollama.chat_requests[-1]["messages"] == [
            system(), user("Pick a city"), assistant("You said: Pick a city"), user("A big one")]
        assert history(second, session) == [*city, asked("A big one"), said("A big one")]
        assert search(second, "country") == []
        assert search(second, "city") == [(session, 1)]


# -- the chat service, on a SQLite file and on PostgreSQL ----------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.sqlite'}"
    return request.getfixturevalue("postgres").new_database()


def exported(messages: list[Any]) -> list[tuple[str, str]]:
    document = json.loads(to_json(messages, session_id="s", title="t", exported_at="now"))
    return [(m["role"], m["content"]) for m in document["messages"]]


async def test_branches_survive_a_restart_and_export_follows_the_active_one(
    ollama_server: FakeOllama, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(ollama_server, database_url=database_url, data_dir=tmp_path)
    async with open_chat_service(settings) as service:
        session = (await run_turn(service, "Write a haiku"))[-1].session_id
        await run_turn(service, "About snow", session_id=session)
        ollama_server.enqueue_text("Rain taps the window.")
        edited = [e async for e in service.edit_message(session, 2, "About rain")]
        assert edited == [Started(session, "llama3.2"), *(TextDelta(t) for t in (
            "Rain", " taps", " the", " window.")), edited[-1]]
        assert isinstance(edited[-1], Done)
    async with open_chat_service(settings) as service:  # the app started again
        assert await service.branches(session) == [BranchInfo(0, 1, 1), BranchInfo(2, 2, 2)]
        rain = [("user", "Write a haiku"), ("assistant", "You said: Write a haiku"),
                ("user", "About rain"), ("assistant", "Rain taps the window.")]
        assert exported(await service.history(session)) == rain
        assert to_markdown(await service.history(session), title="Haiku",
                           exported_at="today") == (
            "# Haiku\n\n*Exported from OllamaStack, today*\n\n## You\n\nWrite a haiku\n\n"
            "## Assistant\n\nYou said: Write a haiku\n\n## You\n\nAbout rain\n\n"
            "## Assistant\n\nRain taps the window.\n")
        snow = [*rain[:2], ("user", "About snow"), ("assistant", "You said: About snow")]
        assert exported(await service.switch_branch(session, 2, 1)) == snow
        assert exported(await service.history(session)) == snow
    async with open_chat_service(settings) as service:
        assert await service.branches(session) == [BranchInfo(0, 1, 1), BranchInfo(2, 1, 2)]
        await run_turn(service, "Shorter", session_id=session)
        assert ollama_server.chat_requests[-1]["messages"][1:] == [
            user("Write a haiku"), assistant("You said: Write a haiku"), user("About snow"),
            assistant("You said: About snow"), user("Shorter")]
        await service.delete_session(session)
        assert [c async for c in service.graph.checkpointer.alist(thread(session))] == []


async def test_an_edit_keeps_the_files_of_its_message(ollama_server: FakeOllama) -> None:
    async with open_chat_service(make_settings(ollama_server)) as service:
        notes = ("notes.txt", b"Otters hold hands while they sleep.")
        events = await run_turn(service, "What do otters do?", files=[notes])
        session = events[-1].session_id
        files = (await service.history(session))[0].additional_kwargs["attachments"]
        assert [f["name"] for f in files] == ["notes.txt"]
        [e async for e in service.edit_message(session, 0, "When do otters hold hands?")]
        edited = (await service.history(session))[0]
        assert (edited.text, edited.additional_kwargs["attachments"]) == (
            "When do otters hold hands?", files)
        prompt = ollama_server.chat_requests[-1]["messages"][0]["content"]
        assert "Otters hold hands while they sleep." in prompt  # the document still goes along
        assert await service.branches(session) == [BranchInfo(0, 2, 2)]


async def test_undo_forgets_a_turn_but_not_files_another_branch_carries(
    ollama_server: FakeOllama,
) -> None:
    async with open_chat_service(make_settings(ollama_server)) as service:
        store = service.memory.documents

        async def files(session: str) -> list[str]:
            return [f.name for f in await store.files("", session)]

        notes = ("notes.txt", b"Otters hold hands while they sleep.")
        session = (await run_turn(service, "What do otters do?", files=[notes]))[-1].session_id
        [e async for e in service.edit_message(session, 0, "When do otters hold hands?")]
        await service.switch_branch(session, 0, 1)
        await service.switch_branch(session, 0, 2)
        assert await service.undo_last_turn(session) == "When do otters hold hands?"
        assert (await service.history(session), await files(session)) == ([], ["notes.txt"])

        await run_turn(service, "Tell me about seals", session_id=session)
        assert await service.branches(session) == [BranchInfo(0, 2, 2)]  # the undone is gone
        first = await service.switch_branch(session, 0, 1)
        assert [m.text for m in first] == ["What do otters do?", "You said: What do otters do?"]
        assert await service.undo_last_turn(session) == "What do otters do?"
        assert await files(session) == []  # no branch carries it any more


async def test_options_left_empty_are_those_of_the_turn_edited(
    ollama_server: FakeOllama,
) -> None:
    ollama_server.add_model("qwen3", capabilities=("completion", "tools"))
    async with open_chat_service(make_settings(ollama_server)) as service:
        events = await run_turn(service, "Hi", model="qwen3", temperature=0.1,
                                system_prompt="Be brief.")
        session = events[-1].session_id
        [e async for e in service.edit_message(session, 0, "Hello")]
        [e async for e in service.edit_message(session, 0, "Hey", temperature=1.5)]
        requests = ollama_server.chat_requests[-2:]
        assert [(r["model"], r["options"]["temperature"], r["messages"][0]["content"])
                for r in requests] == [("qwen3", 0.1, "Be brief."), ("qwen3", 1.5, "Be brief.")]
        with pytest.raises(InvalidInput, match="temperature"):
            [e async for e in service.edit_message(session, 0, "Yo", temperature=3)]
        assert await service.branches(session) == [BranchInfo(0, 3, 3)]


async def test_retry_turn_answers_the_last_message_again_as_a_sibling(
    ollama_server: FakeOllama,
) -> None:
    async with open_chat_service(make_settings(ollama_server)) as service:
        session = (await run_turn(service, "One"))[-1].session_id
        await run_turn(service, "Two", session_id=session)
        ollama_server.enqueue_text("Two again.")
        [e async for e in service.retry_turn(session)]
        assert [m.text for m in await service.history(session)] == [
            "One", "You said: One", "Two", "Two again."]
        assert await service.branches(session) == [BranchInfo(0, 1, 1), BranchInfo(2, 2, 2)]
        empty = await service.new_session()
        with pytest.raises(InvalidInput, match="no message to answer again"):
            [e async for e in service.retry_turn(empty)]


async def test_nothing_moves_while_a_tool_call_waits_for_approval(
    ollama_server: FakeOllama,
) -> None:
    settings = make_settings(ollama_server, confirm_tools="calculator")
    async with open_chat_service(settings) as service:
        session = (await run_turn(service, "Hello"))[-1].session_id
        [e async for e in service.edit_message(session, 0, "Hi")]
        ollama_server.enqueue_tool_call("calculator", {"expression": "6*7"})
        await run_turn(service, "What is 6*7?", session_id=session)
        before = await service.history(session)
        waiting = "waiting for your approval to run the calculator tool"
        with pytest.raises(AwaitingApproval, match=waiting):
            [e async for e in service.edit_message(session, 2, "What is 6*8?")]
        with pytest.raises(AwaitingApproval, match=waiting):
            await service.switch_branch(session, 0, 1)
        assert await service.history(session) == before
        assert (await service.waiting_call(session)).name == "calculator"


async def test_a_conversation_without_its_earlier_states_is_still_forked(
    ollama_server: FakeOllama,
) -> None:
    """A conversation written in one update (as a migration would) has no checkpoint of
    the state before its messages: the fork copies the active one, less those."""
    async with open_chat_service(make_settings(ollama_server)) as service:
        session = await service.new_session()
        written = [HumanMessage("Old question", id="h1"), AIMessage("Old answer", id="a1"),
                   HumanMessage("Second question", id="h2"), AIMessage("Second answer", id="a2")]
        await service.graph.aupdate_state(thread(session), {"messages": written},
                                          as_node="model")
        [e async for e in service.edit_message(session, 2, "New question")]
        assert [m.text for m in await service.history(session)] == [
            "Old question", "Old answer", "New question", "You said: New question"]
        assert [m.text for m in await service.switch_branch(session, 2, 1)] == [
            m.text for m in written]
        [e async for e in service.edit_message(session, 0, "Newer question")]
        assert await service.branches(session) == [BranchInfo(0, 2, 2)]


async def test_the_service_refuses_unknown_and_others_sessions_and_busy_ones(
    ollama_server: FakeOllama,
) -> None:
    async with open_chat_service(make_settings(ollama_server)) as service:
        session = (await run_turn(service, "Mine", user="ann"))[-1].session_id
        for call in (service.edit_message(session, 0, "x", user="bob"),
                     service.retry_turn(session, user="bob")):
            with pytest.raises(SessionNotFound):
                [e async for e in call]
        with pytest.raises(SessionNotFound):
            await service.switch_branch(session, 0, 1, user="bob")
        with pytest.raises(SessionNotFound):
            await service.branches(session, user="bob")
        running = service._claim(session)  # as a turn answering holds it
        try:
            with pytest.raises(SessionBusy):
                [e async for e in service.edit_message(session, 0, "x", user="ann")]
            with pytest.raises(SessionBusy):
                await service.switch_branch(session, 0, 1, user="ann")
        finally:
            service._release(session, running)
        assert await service.branches(session, user="ann") == [BranchInfo(0, 1, 1)]
