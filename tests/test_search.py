"""Search and rename of conversations: `/search_conversations` and `/rename_session` through
gradio_client on the launched app (two users, with login), and the search index kept in step
by turns, undo and delete in the chat service, on a SQLite file and on a real PostgreSQL
(where the index's writes are queued behind the turns). The backfill of conversations stored
before the index: test_search_backfill.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from gradio_client import Client

from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.errors import InvalidInput
from ollamastack.storage.memory import open_memory
from ollamastack.storage.search import Found, Hit
from ollamastack.web.audit import AUDIT_FILE
from tests.support.api_helpers import TEST_RATE_LIMIT, OllamaView, Served, run, serve
from tests.support.chat_helpers import make_settings, run_turn
from tests.support.ollama_server import FakeOllama

LOGINS = "ann:pw-ann,bob:pw-bob,cy:pw-cy"


@pytest.fixture(scope="module")
def served(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(shared_server, tmp_path_factory.mktemp("data"), auth=LOGINS) as served:
        yield served


def chat(client: Client, message: str, session_id: str = "") -> str:
    return client.predict(message, session_id, api_name="/chat")["session_id"]


def search(client: Client, query: str) -> list[dict]:
    return client.predict(query, api_name="/search_conversations")


def found(session_id: str, title: str, snippet: str, message_index: int) -> dict[str, Any]:
    return {"session_id": session_id, "title": title, "snippet": snippet,
            "message_index": message_index}


def titles(client: Client) -> dict[str, str]:
    return {s["session_id"]: s["title"] for s in client.predict(api_name="/sessions")}


# -- search through the named API ----------------------------------------------


def test_search_finds_words_of_questions_and_answers_at_their_message(
    ann: Client, ollama: OllamaView
) -> None:
    ollama.enqueue_tool_call("calculator", {"expression": "6 * 7"})
    ollama.enqueue_text("The quokka says it is 42.")
    question = "Quokka question: what is six times seven?"
    session = chat(ann, question)
    history = ann.predict(session, api_name="/history")
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]

    assert search(ann, "quokka") == [found(session, question, "The quokka says it is 42.", 3)]
    assert search(ann, "QUOK") == search(ann, "quokka")  # any case; the last word a prefix
    assert search(ann, "six SEVEN") == [found(session, question, question, 0)]
    assert search(ann, "seven quokka") == [found(session, question, question, 0)]
    assert search(ann, "quokka giraffe") == []  # every word must appear
    assert search(ann, "calculator") == []  # tool calls and results are not searched


def test_a_snippet_is_the_plain_text_around_the_words_of_a_long_message(
    ann: Client, ollama: OllamaView
) -> None:
    words = [f"w{i}" for i in range(40)]
    words[20] = "<b>ocelot</b>"
    ollama.enqueue_text(" ".join(words))
    session = chat(ann, "Forty words please")
    # 16 words around it ("b" counts as a word), the markup kept as text: the page escapes
    snippet = "…w14 w15 w16 w17 w18 w19 <b>ocelot</b> w21 w22 w23 w24 w25 w26 w27…"
    assert search(ann, "ocelot") == [found(session, "Forty words please", snippet, 1)]


def test_results_follow_later_turns_and_deletes_newest_first(ann: Client) -> None:
    first = chat(ann, "Pangolins eat ants")
    second = chat(ann, "Do pangolins swim?")
    assert search(ann, "pangolins") == [
        found(second, "Do pangolins swim?", "You said: Do pangolins swim?", 1),
        found(first, "Pangolins eat ants", "You said: Pangolins eat ants", 1),
    ]

    chat(ann, "More about pangolins", first)
    assert search(ann, "pangolins") == [
        found(first, "Pangolins eat ants", "You said: More about pangolins", 3),
        found(second, "Do pangolins swim?", "You said: Do pangolins swim?", 1),
    ]
    assert search(ann, "ants") == [
        found(first, "Pangolins eat ants", "You said: Pangolins eat ants", 1)
    ]

    assert ann.predict(second, api_name="/delete_session") == {
        "session_id": second, "deleted": True}
    assert search(ann, "pangolins") == [
        found(first, "Pangolins eat ants", "You said: More about pangolins", 3)
    ]
    assert search(ann, "swim") == []


def test_each_user_finds_only_their_own_conversations(ann: Client, bob: Client) -> None:
    mine = chat(ann, "My wombat plan")
    theirs = chat(bob, "Bob's wombat diary")
    assert search(ann, "wombat") == [found(mine, "My wombat plan", "You said: My wombat plan", 1)]
    assert search(bob, "wombat") == [
        found(theirs, "Bob's wombat diary", "You said: Bob's wombat diary", 1)
    ]
    assert search(bob, "plan") == []


@pytest.mark.parametrize("query", [
    '"foo AND (', "NEAR(a b)", "a OR b NOT c", "text:foo", "^start", "x*", "foo & !bar | baz:*",
    "'; DROP TABLE search_message; --", "(((", "\\", "🙂", "日本語", "x" * 200,
])
def test_queries_with_operators_quotes_or_symbols_are_just_words(ann: Client, query: str) -> None:
    assert search(ann, query) == []


def test_words_beyond_ascii_are_found(ann: Client) -> None:
    session = chat(ann, "Grüße aus München, 日本語 auch")
    title = "Grüße aus München, 日本語 auch"
    expected = [found(session, title, "You said: Grüße aus München, 日本語 auch", 1)]
    assert search(ann, "münchen") == expected
    assert search(ann, "日本語") == expected
    assert search(ann, '"Grüße" (München*') == expected  # the words of an odd query still count


@pytest.mark.parametrize(("query", "error"), [
    ("", "The search is empty."),
    (" \u200b ", "The search is empty."),
    ("x" * 201, "The search is 201 characters long; the limit is 200."),
    ("two\nlines", "The search may not contain line breaks or control characters."),
    ("a\x1bb", "The search may not contain line breaks or control characters."),
    ("a\x00b", "The search contains a NUL character, which is not allowed."),
])
def test_empty_long_or_control_character_queries_are_refused(
    ann: Client, query: str, error: str
) -> None:
    assert run(ann, query, api_name="/search_conversations") == ([], error)


def test_searches_count_against_the_rate_limit_and_are_audited(served: Served) -> None:
    cy = Client(served.url, auth=("cy", "pw-cy"), verbose=False)
    served.app.edge.limiter.limit = 2
    try:
        assert search(cy, "anything") == search(cy, "else") == []
        outputs, error = run(cy, "third", api_name="/search_conversations")
    finally:
        served.app.edge.limiter.limit = TEST_RATE_LIMIT
    assert outputs == [] and error.startswith("Too many messages: the limit is 2 a minute.")
    served.app.edge.audit_log.flush()  # the audit log is written by a bus subscriber
    audit = [json.loads(line) for line in
             (served.settings.data_dir / AUDIT_FILE).read_text().splitlines()]
    mine = [(e["endpoint"], e["outcome"]) for e in audit if e["user"] == "cy"]
    assert mine[-3:] == [("/search_conversations", "ok")] * 2 + [
        ("/search_conversations", "rate_limited")]


# -- rename through the named API ----------------------------------------------


def test_rename_sets_the_title_in_sessions_and_search(ann: Client) -> None:
    session = chat(ann, "Capybara facts")
    assert ann.predict(session, "  Rodent notes ", api_name="/rename_session") == {
        "session_id": session, "title": "Rodent notes"}
    assert titles(ann)[session] == "Rodent notes"
    assert search(ann, "capybara") == [
        found(session, "Rodent notes", "You said: Capybara facts", 1)
    ]
    chat(ann, "More capybara", session)  # a later turn keeps the given title
    assert titles(ann)[session] == "Rodent notes"


@pytest.mark.parametrize(("title", "error"), [
    ("", "The title is empty."),
    ("   ", "The title is empty."),
    ("x" * 201, "The title is 201 characters long; the limit is 200."),
    ("tab\there", "The title may not contain line breaks or control characters."),
    ("two\nlines", "The title may not contain line breaks or control characters."),
    ("bell\x07", "The title may not contain line breaks or control characters."),
])
def test_bad_titles_are_refused_and_nothing_changes(ann: Client, title: str, error: str) -> None:
    session = chat(ann, "Title kept")
    assert run(ann, session, title, api_name="/rename_session") == ([], error)
    assert titles(ann)[session] == "Title kept"


def test_another_users_conversation_cannot_be_renamed_like_an_unknown_one(
    ann: Client, bob: Client
) -> None:
    session = chat(ann, "Ann's own title")
    unknown = str(uuid.uuid4())
    assert run(bob, session, "Taken", api_name="/rename_session") == (
        [], f"No conversation with id {session} was found.")
    assert run(bob, unknown, "Taken", api_name="/rename_session") == (
        [], f"No conversation with id {unknown} was found.")
    assert run(bob, "../x", "Taken", api_name="/rename_session") == (
        [], "The session id must be a UUID4 as returned by the server.")
    assert titles(ann)[session] == "Ann's own title"
    assert session not in titles(bob)


# -- the index kept in step by the service, on SQLite and PostgreSQL ---------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.sqlite'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
async def service(ollama_server: FakeOllama, database_url: str) -> AsyncIterator[ChatService]:
    async with open_chat_service(make_settings(ollama_server, database_url=database_url)) as chat:
        yield chat


async def turn(service: ChatService, message: str, session_id: str = "", user: str = "") -> str:
    events = await run_turn(service, message, session_id=session_id, user=user)
    return events[-1].session_id


def hit(session_id: str, title: str, snippet: str, index: int) -> Found:
    return Found(session_id, title, snippet, index)


async def test_undo_and_delete_keep_the_index_in_step(
    service: ChatService, ollama_server: FakeOllama
) -> None:
    session = await turn(service, "Tell me about lemurs")
    await turn(service, "And about narwhals", session)
    title = "Tell me about lemurs"
    assert await service.search_conversations("narwhals") == [
        hit(session, title, "You said: And about narwhals", 3)]

    assert await service.undo_last_turn(session) == "And about narwhals"
    assert await service.search_conversations("narwhals") == []
    assert await service.search_conversations("lemurs") == [
        hit(session, title, "You said: Tell me about lemurs", 1)]

    ollama_server.enqueue_text("Okapis live in forests")
    await turn(service, "Then okapis", session)  # takes the undone messages' places
    assert await service.search_conversations("okapis") == [
        hit(session, title, "Okapis live in forests", 3)]
    assert await service.search_conversations("then") == [hit(session, title, "Then okapis", 2)]

    other = await turn(service, "Lemurs again", user="zoe")
    assert await service.search_conversations("lemurs") == [
        hit(session, title, "You said: Tell me about lemurs", 1)]
    assert await service.search_conversations("lemurs", "zoe") == [
        hit(other, "Lemurs again", "You said: Lemurs again", 1)]

    await service.delete_session(session)
    assert await service.search_conversations("lemurs") == []
    assert await service.search_conversations("okapis") == []
    assert len(await service.search_conversations("lemurs", "zoe")) == 1
    with pytest.raises(InvalidInput, match="may not contain"):
        await service.search_conversations("a\rb")


async def test_a_conversation_deleted_with_undo_pending_is_not_found(
    service: ChatService,
) -> None:
    session = await turn(service, "Secret axolotl")
    await service.memory.sessions.hide(session, "")  # the page's delete, undo still offered
    assert await service.search_conversations("axolotl") == []
    await service.memory.sessions.restore(session, "")
    assert [f.session_id for f in await service.search_conversations("axolotl")] == [session]


async def test_on_postgres_index_writes_are_queued_folded_and_awaited_by_readers(
    postgres: Any, ollama_server: FakeOllama, tmp_path: Path
) -> None:
    settings = make_settings(ollama_server, database_url=postgres.new_database(),
                             data_dir=tmp_path)

    def rows() -> list[tuple]:
        with psycopg.connect(settings.database_url) as connection:
            return connection.execute("SELECT owner, session_id, message_index, text"
                                      " FROM search_message ORDER BY id").fetchall()

    async with open_memory(settings) as memory:
        index = memory.search
        await index.add("s1", "ann", 0, [(0, "Kiwi question"), (1, "kiwi answer")])
        await index.add("s1", "ann", 1, [(1, "Kiwi answer resumed"), (2, "more kiwi")])
        await index.add("s2", "bob", 0, [(0, "Bob kiwi")])
        assert rows() == []  # queued: the turns did not wait for the database
        assert await index.search("ann", "kiwi") == [Hit("s1", 2, "more kiwi")]  # search waits
        assert rows() == [  # the resumed turn's write replaced the first one's
            ("ann", "s1", 0, "Kiwi question"), ("ann", "s1", 1, "Kiwi answer resumed"),
            ("ann", "s1", 2, "more kiwi"), ("bob", "s2", 0, "Bob kiwi")]

        await index.add("s1", "ann", 3, [(3, "kiwi again")])
        await index.remove("s1", 1)  # undo: after what was queued before it
        assert rows() == [("ann", "s1", 0, "Kiwi question"), ("bob", "s2", 0, "Bob kiwi")]
