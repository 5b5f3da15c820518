"""The answer cache: hits proven by the test server's request log (a hit makes no chat
request), per user, expiring, and never holding a failed or cut answer.

The first tests drive LangChain's cache through our chat model directly; those through the
chat service need the cache wired into the graph (`TurnContext.user`, `build_agent(cache=)`),
and are expected to fail until it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from ollamastack.agent.answer_cache import CACHED, ExpiringCache, ScopedCache, plain
from ollamastack.agent.graph import TurnContext
from ollamastack.agent.service import ChatService
from ollamastack.agent.service_handle import open_chat_service
from ollamastack.engines.factory import open_engines
from ollamastack.errors import OllamaError
from ollamastack.events import Done, TextDelta, TurnError
from tests.support.chat_helpers import make_settings
from tests.support.ollama_server import FakeOllama

PROMPT = [SystemMessage("Be brief."), HumanMessage("What is 2 + 2?")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_and_the_least_recently_used_go_first() -> None:
    clock = Clock()
    cache = ExpiringCache(60, max_entries=2, clock=clock)
    cache.update("a", "m", [])
    cache.update("b", "m", [])
    assert cache.lookup("a", "m") == []  # a is now the most recently used
    cache.update("c", "m", [])
    assert (cache.lookup("b", "m"), len(cache)) == (None, 2)
    clock.now += 59.9
    assert cache.lookup("a", "m") == []
    clock.now += 0.1
    assert (cache.lookup("a", "m"), cache.lookup("c", "m"), len(cache)) == (None, None, 0)


@pytest.fixture
async def chat_model(ollama_server: FakeOllama) -> AsyncIterator[Any]:
    """The app's own chat model for the test server, at temperature 0."""
    engines = open_engines(make_settings(ollama_server))
    model = engines.chat_model("llama3.2")
    yield model.bind(model="llama3.2", options={"temperature": 0})
    await engines.close()


def with_cache(bound: Any, cache: Any) -> Any:
    return bound.bound.model_copy(update={"cache": cache}).bind(**bound.kwargs)


async def test_a_second_identical_call_is_answered_without_ollama_and_marked(
    chat_model: Any, ollama_server: FakeOllama
) -> None:
    cache = ExpiringCache(60)
    model = with_cache(chat_model, ScopedCache(cache, "ann"))
    ollama_server.enqueue_text("It is 4.")
    first = await model.ainvoke(PROMPT)
    second = await model.ainvoke(PROMPT)
    assert len(ollama_server.chat_requests) == 1
    assert (first.text, second.text) == ("It is 4.", "It is 4.")
    assert CACHED not in first.response_metadata and second.response_metadata[CACHED] is True
    third = await model.ainvoke(PROMPT)  # what LangChain handed out changed nothing stored
    assert third.response_metadata[CACHED] is True and len(ollama_server.chat_requests) == 1


async def test_each_user_has_their_own_entries(
    chat_model: Any, ollama_server: FakeOllama
) -> None:
    cache = ExpiringCache(60)
    ollama_server.enqueue_text("It is 4.")
    await with_cache(chat_model, ScopedCache(cache, "ann")).ainvoke(PROMPT)
    ollama_server.enqueue_text("Four.")
    bob = await with_cache(chat_model, ScopedCache(cache, "bob")).ainvoke(PROMPT)
    assert bob.text == "Four." and len(ollama_server.chat_requests) == 2


@pytest.mark.parametrize("failure", ["error", "cut"])
async def test_a_failed_or_cut_answer_is_not_kept(
    chat_model: Any, ollama_server: FakeOllama, failure: str
) -> None:
    cache = ExpiringCache(60)
    model = with_cache(chat_model, ScopedCache(cache, ""))
    if failure == "error":
        ollama_server.enqueue_error(500, "model runner crashed")
    else:
        ollama_server.enqueue_cut("It is", after_chunks=1)
    with pytest.raises(Exception):  # noqa: B017 - Ollama's error or a broken connection
        await model.ainvoke(PROMPT)
    assert len(cache) == 0
    ollama_server.enqueue_text("It is 4.")
    assert (await model.ainvoke(PROMPT)).text == "It is 4."
    assert len(ollama_server.chat_requests) == 2


def test_the_key_ignores_ollamas_bookkeeping_of_earlier_answers() -> None:
    one = AIMessage("4", id="a", response_metadata={"created_at": "t1", "total_duration": 5})
    two = AIMessage("4", id="b", response_metadata={"created_at": "t2", "total_duration": 7})
    assert plain([HumanMessage("2+2?"), one]) == plain([HumanMessage("2+2?"), two])
    assert plain([one])[0].text == "4" and one.response_metadata["created_at"] == "t1"


# -- through the chat service: needs the cache wired into the graph --------------------------

wired = pytest.mark.xfail(
    "user" not in TurnContext.__dataclass_fields__, strict=True,
    reason="the answer cache is not wired into the graph yet (see answer_cache.py)",
)


@pytest.fixture
async def cached_service(ollama_server: FakeOllama) -> AsyncIterator[ChatService]:
    settings = make_settings(ollama_server, cache=True, temperature=0)
    async with open_chat_service(settings) as service:
        yield service


async def turn(service: ChatService, text: str, **options: Any) -> tuple[str, Any]:
    events = [e async for e in service.stream_turn(text, **options)]
    if isinstance(events[-1], TurnError):
        raise events[-1].error
    assert isinstance(events[-1], Done)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events[-1]


@wired
async def test_an_identical_conversation_is_answered_from_the_cache(
    cached_service: ChatService, ollama_server: FakeOllama
) -> None:
    ollama_server.enqueue_text("It is 4.")
    ollama_server.enqueue_text("It is 6.")
    first, done = await turn(cached_service, "2 + 2?", user="ann")
    session = done.session_id
    await turn(cached_service, "3 + 3?", session_id=session, user="ann")
    again, hit = await turn(cached_service, "2 + 2?", user="ann")  # another conversation
    follow, hit2 = await turn(cached_service, "3 + 3?", session_id=hit.session_id, user="ann")
    assert len(ollama_server.chat_requests) == 2  # four turns, two model calls
    assert (first, again, follow) == ("It is 4.", "It is 4.", "It is 6.")
    assert (done.stats.cached, hit.stats.cached, hit2.stats.cached) == (False, True, True)
    assert hit.stats.as_dict()["cached"] is True and hit.stats.completion_tokens == 0
    history = await cached_service.history(hit.session_id, "ann")
    assert [m.text for m in history] == ["2 + 2?", "It is 4.", "3 + 3?", "It is 6."]


@wired
async def test_other_users_other_temperatures_and_failed_turns_go_to_ollama(
    cached_service: ChatService, ollama_server: FakeOllama
) -> None:
    ollama_server.enqueue_text("It is 4.")
    await turn(cached_service, "2 + 2?", user="ann")
    assert (await turn(cached_service, "2 + 2?", user="ann"))[1].stats.cached is True
    ollama_server.enqueue_text("Four.")
    assert (await turn(cached_service, "2 + 2?", user="bob"))[0] == "Four."
    ollama_server.enqueue_text("Maybe 4.")
    assert (await turn(cached_service, "2 + 2?", user="ann", temperature=0.5))[0] == "Maybe 4."
    ollama_server.enqueue_error(500, "model runner crashed")
    with pytest.raises(OllamaError):
        await turn(cached_service, "5 + 5?", user="ann")
    ollama_server.enqueue_text("Ten.")
    assert (await turn(cached_service, "5 + 5?", user="ann"))[0] == "Ten."
    assert len(ollama_server.chat_requests) == 5


def test_clearing_one_users_view_forgets_their_answers_only() -> None:
    from langchain_core.outputs import ChatGeneration

    shared = ExpiringCache(60)
    ann, bob = ScopedCache(shared, "ann"), ScopedCache(shared, "bob")
    answer = [ChatGeneration(message=AIMessage("42"))]
    ann.update("6*7?", "model=llama3.2", answer)
    bob.update("6*7?", "model=llama3.2", answer)
    ann.clear()
    assert ann.lookup("6*7?", "model=llama3.2") is None
    assert [g.message.content for g in bob.lookup("6*7?", "model=llama3.2") or []] == ["42"]
    assert len(shared) == 1
