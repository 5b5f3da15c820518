"""Conversations stored without the search index (before it existed) are indexed in the
background once the chat service opens: found by their owner only, never read again by a
later start, a pass cut short carried on, one replica at a time; on a SQLite file and on a
real PostgreSQL. And on PostgreSQL, index writes still queued are made before closing."""

from __future__ import annotations

import sqlite3
from contextlib import AsyncExitStack
from pathlib import Path

import psycopg
import pytest

from ollamastack.agent.search_backfill import unindexed
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.settings import Settings
from ollamastack.storage.search import Found
from ollamastack.storage.search.postgres import BACKFILL_LOCK
from tests.support.chat_helpers import make_settings, run_turn
from tests.support.ollama_server import FakeOllama

Row = tuple[int, str, str, int, str]  # id, owner, session, message index, text


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, ollama_server: FakeOllama) -> Settings:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'chat.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    return make_settings(ollama_server, database_url=url, data_dir=tmp_path)


def sql(settings: Settings, statement: str, values: tuple = ()) -> list[tuple]:
    """Run one statement on the database, as another program would."""
    if settings.on_postgres:
        with psycopg.connect(settings.database_url, autocommit=True) as connection:
            cursor = connection.execute(statement.replace("?", "%s"), values)
            return cursor.fetchall() if cursor.description else []
    with sqlite3.connect(str(settings.sqlite_path)) as connection:
        return connection.execute(statement, values).fetchall()


def rows(settings: Settings) -> list[Row]:
    return sql(settings, "SELECT id, owner, session_id, message_index, text"
                         " FROM search_message ORDER BY id")


def content(found: list[Row]) -> list[tuple]:
    """The rows without their ids, in conversation order."""
    return sorted(row[1:] for row in found)


def drop_index(settings: Settings) -> None:
    """Back to a database written before search existed."""
    if settings.on_postgres:
        sql(settings, "DROP TABLE search_message")
        return
    for statement in ("DROP TRIGGER search_message_added", "DROP TRIGGER search_message_removed",
                      "DROP TABLE search_text", "DROP TABLE search_message"):
        sql(settings, statement)


@pytest.fixture
async def stored(settings: Settings) -> dict:
    """Three users' conversations stored, then the search index dropped; their session ids
    by name, and the rows the turns had indexed (`stored["rows"]`, without ids)."""
    async with open_chat_service(settings) as service:
        assert await service.memory.search.backfill == 0  # a new database: nothing to do
        lemurs = (await run_turn(service, "Tell me about lemurs", user="ann"))[-1].session_id
        await run_turn(service, "And about narwhals", session_id=lemurs, user="ann")
        diary = (await run_turn(service, "Bob's lemur diary", user="bob"))[-1].session_id
        shared = (await run_turn(service, "Lemurs for all"))[-1].session_id
    indexed = rows(settings)
    assert len(indexed) == 8
    drop_index(settings)
    return {"lemurs": lemurs, "diary": diary, "shared": shared, "rows": content(indexed)}


async def test_conversations_stored_without_the_index_are_found_by_their_owner_only(
    settings: Settings, stored: dict
) -> None:
    async with open_chat_service(settings) as service:
        assert await service.memory.search.backfill == 3
        search = service.search_conversations
        assert await search("lemurs", "ann") == [
            Found(stored["lemurs"], "Tell me about lemurs", "You said: Tell me about lemurs", 1)]
        assert await search("narwhals", "ann") == [
            Found(stored["lemurs"], "Tell me about lemurs", "You said: And about narwhals", 3)]
        assert await search("lemur", "bob") == [
            Found(stored["diary"], "Bob's lemur diary", "You said: Bob's lemur diary", 1)]
        assert await search("lemurs") == [
            Found(stored["shared"], "Lemurs for all", "You said: Lemurs for all", 1)]
        assert await search("diary", "ann") == await search("narwhals", "bob") == []
        assert await search("narwhals") == await search("diary") == []
    assert content(rows(settings)) == stored["rows"]  # what the turns had indexed, owners too


async def test_a_later_start_reads_no_conversation_again(settings: Settings, stored: dict) -> None:
    async with open_chat_service(settings) as service:
        assert await service.memory.search.backfill == 3
    indexed = rows(settings)
    async with open_chat_service(settings) as service:
        assert await service.memory.search.backfill == 0
        assert [found async for found in unindexed(service.memory)] == []
    assert rows(settings) == indexed  # not one row written again


async def test_a_pass_cut_short_carries_on_and_keeps_what_later_turns_indexed(
    settings: Settings, stored: dict
) -> None:
    async with open_chat_service(settings) as service:
        await service.memory.search.backfill
    # As if the pass had stopped before bob's conversation, and ann had continued hers
    # (its second turn indexed by the turn) before the pass reached it.
    sql(settings, "DELETE FROM search_message WHERE session_id = ?", (stored["diary"],))
    sql(settings, "DELETE FROM search_message WHERE session_id = ? AND message_index < 2",
        (stored["lemurs"],))
    kept = rows(settings)
    assert [row[3] for row in kept if row[2] == stored["lemurs"]] == [2, 3]

    async with open_chat_service(settings) as service:
        assert await service.memory.search.backfill == 2
        assert [f.session_id for f in await service.search_conversations("lemur", "bob")] == [
            stored["diary"]]
    after = rows(settings)
    assert content(after) == stored["rows"]
    assert set(kept) <= set(after)  # the rows already there were not written again


async def test_one_replica_backfills_while_the_others_leave_it(
    settings: Settings, stored: dict
) -> None:
    if not settings.on_postgres:
        pytest.skip("replicas share a PostgreSQL database")
    with psycopg.connect(settings.database_url) as other:  # a replica busy backfilling
        other.execute("SELECT pg_advisory_xact_lock(%s)", (BACKFILL_LOCK,))
        async with open_chat_service(settings) as service:
            assert await service.memory.search.backfill is None
            assert await service.search_conversations("lemurs", "ann") == []
        other.rollback()

    async with AsyncExitStack() as stack:  # two replicas starting together
        replicas = [await stack.enter_async_context(open_chat_service(settings))
                    for _ in range(2)]
        done = [await replica.memory.search.backfill for replica in replicas]
    assert [count for count in done if count] == [3]
    assert content(rows(settings)) == stored["rows"]  # each conversation indexed once


async def test_postgres_index_writes_still_queued_are_made_before_closing(
    settings: Settings,
) -> None:
    if not settings.on_postgres:
        pytest.skip("SQLite writes before `add` returns")
    async with open_chat_service(settings) as service:
        await service.memory.search.backfill
        await service.memory.search.add("s1", "ann", 0, [(0, "Queued at the end")])
        assert rows(settings) == []  # behind the caller: not written yet
    assert content(rows(settings)) == [("ann", "s1", 0, "Queued at the end")]
