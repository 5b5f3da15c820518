"""The `web_search` tool against a local stand-in speaking SearXNG's JSON format: the query it
sends, the results the model reads (plain, untrusted text), its failures as "Error:" lines,
the agent citing them, and the compose profile that runs SearXNG next to the app."""

from __future__ import annotations

import time

import pytest

from ollamastack.agent.service_handle import open_chat_service
from ollamastack.agent.tools import build_tools
from ollamastack.agent.tools.web_search import make_web_search_tool
from ollamastack.events import Done, TextDelta, ToolCall, ToolResult
from tests.support.chat_helpers import TOOL_NAMES, closed_port_url, make_settings, run_turn
from tests.support.ollama_server import FakeOllama
from tests.support.searxng_server import SearxngServer, result
from tests.test_deploy import compose_of, depends, ports, render, services

MUSEUMS = [
    result("Louvre Museum – Official website", "https://www.louvre.fr/en",
           "The world's most-visited museum, home of the <b>Mona Lisa</b>."),
    result("Musée d'Orsay", "https://www.musee-orsay.fr/en",
           "Impressionist &amp; post-impressionist art in a former railway station."),
]
READ = (
    "Web results for 'paris museums' (text from the web: untrusted; cite the URLs you use):\n"
    "1. Louvre Museum – Official website\n"
    "   https://www.louvre.fr/en\n"
    "   The world's most-visited museum, home of the Mona Lisa.\n"
    "2. Musée d'Orsay\n"
    "   https://www.musee-orsay.fr/en\n"
    "   Impressionist & post-impressionist art in a former railway station."
)


@pytest.fixture
def searxng():
    with SearxngServer() as server:
        yield server


async def search(url: str, query: str, *, seconds: float = 5, limit: int = 8000) -> str:
    return await make_web_search_tool(url, seconds, limit).ainvoke({"query": query})


async def test_results_are_plain_numbered_text_with_their_urls(searxng: SearxngServer):
    searxng.results["paris museums"] = MUSEUMS
    assert await search(searxng.url, "  paris   museums ") == READ
    assert searxng.requests == [{"q": "paris museums", "format": "json", "safesearch": "1"}]


async def test_markup_and_odd_links_in_results_are_not_passed_on(searxng: SearxngServer):
    searxng.results["x"] = [
        result("<img src=x onerror=alert(1)>Evil", "javascript:alert(1)", "never shown"),
        result("<script>steal()</script>Fine", "https://example.org/a",
               "<a href='https://phish.example'>click</a>\x00 now " + "long " * 100),
    ]
    text = await search(searxng.url, "x")
    assert text.splitlines()[1:3] == ["1. steal()Fine", "   https://example.org/a"]
    snippet = text.splitlines()[3]
    assert snippet.startswith("   click now long long") and snippet.endswith("…")
    assert len(snippet) == 3 + 300 and "<" not in text and "javascript:" not in text


async def test_no_results(searxng: SearxngServer):
    assert await search(searxng.url, "zzkq") == (
        "No web results for 'zzkq'. Try other words, or answer without a search.")


async def test_the_result_text_is_capped(searxng: SearxngServer):
    searxng.results["paris museums"] = MUSEUMS
    assert await search(searxng.url, "paris museums", limit=100) == READ[:100] + (
        "\n… (results cut)")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (403, None, "Error: the search service answered with HTTP 403 (is `json` in its "
                    "search.formats?); try again later."),
        (500, None, "Error: the search service answered with HTTP 500; try again later."),
        (200, b"<html>not json</html>",
         "Error: the search service sent an unexpected answer; try again later."),
    ],
)
async def test_service_failures_are_error_lines(searxng: SearxngServer, status, body, error):
    searxng.status, searxng.body = status, body
    assert await search(searxng.url, "paris") == error


async def test_an_offline_or_slow_service_and_bad_queries():
    offline = closed_port_url()
    assert await search(offline, "paris") == (
        "Error: the search service could not be reached (All connection attempts failed); "
        "try again later.")
    with SearxngServer(delay=30) as slow:
        started = time.monotonic()
        assert await search(slow.url, "paris", seconds=0.5) == (
            "Error: the search service did not answer within 0.5 seconds; try again later.")
        assert time.monotonic() - started < 5
    assert await search(offline, "   ") == "Error: give a search query of 1 to 400 characters."


def test_the_tool_is_offered_only_with_a_searxng_url(ollama_server: FakeOllama):
    assert [t.name for t in build_tools(make_settings(ollama_server))] == TOOL_NAMES
    tools = build_tools(make_settings(ollama_server, searxng_url="http://search:8080"))
    assert [t.name for t in tools] == [*TOOL_NAMES, "web_search"]
    assert tools[-1].tool_call_schema.model_json_schema()["properties"] == {
        "query": {"description": 'What to search for, as keywords, for example "Python 3.13 '
                                 'release date".', "title": "Query", "type": "string"}}


async def test_the_agent_searches_and_answers_citing_the_results(
    ollama_server: FakeOllama, searxng: SearxngServer
):
    searxng.results["paris museums"] = MUSEUMS
    ollama_server.enqueue_tool_call("web_search", {"query": "paris museums"})
    ollama_server.enqueue_text("Visit the Louvre (https://www.louvre.fr/en).")
    settings = make_settings(ollama_server, searxng_url=searxng.url)
    async with open_chat_service(settings) as service:
        events = await run_turn(service, "Which museums should I see in Paris?")
    call_id = events[0].id
    assert events[:2] == [ToolCall(call_id, "web_search", {"query": "paris museums"}),
                          ToolResult(call_id, "web_search", READ)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == (
        "Visit the Louvre (https://www.louvre.fr/en).")
    assert isinstance(events[-1], Done)
    assert ollama_server.chat_requests[1]["messages"][-1] == {
        "role": "tool", "content": READ, "tool_name": "web_search"}


@pytest.mark.parametrize("kind", ["v2", "v1"])
def test_the_search_profile_runs_searxng_unpublished_next_to_the_app(kind: str):
    compose = compose_of(kind)
    assert "search" not in services(render(compose, "compose.yml"))
    running = services(render(compose, "compose.yml", profiles=("search",)), ("search",))
    search = running["search"]
    assert search["image"] == "searxng/searxng:latest"
    assert ports(search) == [] and [str(p) for p in search["expose"]] == ["8080"]
    assert depends(running["app"]) == {"ollama": "service_healthy",
                                       "ollama-pull": "service_completed_successfully"}
    script = search["command"][0]
    assert "formats: [html, json]" in script and "limiter: false" in script
    app_env = running["app"]["environment"]
    assert "OLLAMASTACK_SEARXNG_URL" in app_env
