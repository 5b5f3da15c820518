"""`GET /metrics` over real HTTP, read with prometheus-client's own parser, after real turns
against the test server; and who may read it with login."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from gradio_client import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api_helpers import run, serve
from tests.support.ollama_server import FakeOllama


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def scrape(url: str, until: tuple[str, tuple, float] | None = None, **headers: str) -> dict:
    """The parsed metrics; with `until`, once that sample has that value (the bus counts a
    moment after the reply reached its client)."""
    deadline = time.monotonic() + 5
    while True:
        response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=")
        assert response.headers["x-content-type-options"] == "nosniff"
        found = samples(response.text)
        if until is None or found.get(until[:2]) == until[2]:
            return found
        assert time.monotonic() < deadline, f"{until} not reached: {found.get(until[:2])}"
        time.sleep(0.05)


def key(name: str, **labels: str) -> tuple[str, tuple]:
    return (name, tuple(sorted(labels.items())))


def test_turns_tokens_tools_and_times_are_counted_per_model(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path) as app:
        client = Client(app.url, verbose=False)
        ollama_server.enqueue_text("Hello there, friend!")  # 3 chunks
        assert run(client, "hi", api_name="/chat")[1] is None
        ollama_server.enqueue_tool_call("calculator", {"expression": "6 * 7"})
        ollama_server.enqueue_text("It is 42.")  # 3 chunks
        assert run(client, "6 times 7?", api_name="/chat")[1] is None
        ollama_server.enqueue_error(500, "model runner crashed")
        assert run(client, "again", api_name="/chat")[1] is not None
        answered = ollama_server.chat_requests[:-1]  # the failed call counts no tokens
        prompt_tokens = sum(  # the test server counts a word of the prompt as a token
            len(str(m.get("content") or "").split()) for r in answered for m in r["messages"])
        scrape(app.url, (*key("ollamastack_turns_total", model="llama3.2", outcome="error"), 1))
        # usage rows wait up to 50 ms for others to share their transaction (storage/usage.py)
        found = scrape(app.url, (*key("ollamastack_event_queue_depth", subscriber="usage"), 0))

    llama = {"model": "llama3.2"}
    assert found[key("ollamastack_turns_total", **llama, outcome="ok")] == 2
    assert found[key("ollamastack_tokens_total", **llama, direction="out")] == 3 + 1 + 3
    assert found[key("ollamastack_tokens_total", **llama, direction="in")] == prompt_tokens
    assert found[key("ollamastack_tool_calls_total", tool="calculator", outcome="ok")] == 1
    assert found[key("ollamastack_time_to_first_token_seconds_count", **llama)] == 2
    assert found[key("ollamastack_turn_seconds_count", **llama)] == 3
    assert 0 < found[key("ollamastack_turn_seconds_sum", **llama)] < 30
    assert found[key("ollamastack_streams_in_flight")] == 0
    assert found[key("ollamastack_ollama_up")] == 1
    for subscriber in ("metrics", "usage"):
        assert found[key("ollamastack_event_queue_depth", subscriber=subscriber)] == 0
        assert found[key("ollamastack_events_dropped_total", subscriber=subscriber)] == 0
    assert found[key("ollamastack_webhook_deliveries_total", outcome="dropped")] == 0


def test_ollama_down_reads_as_zero_and_a_stream_in_flight_as_one(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path) as app:
        client = Client(app.url, verbose=False)
        ollama_server.token_rate = 5  # 2 s of answer
        ollama_server.enqueue_text("one two three four five six seven eight nine ten")
        job = client.submit("count", api_name="/chat")
        try:
            scrape(app.url, ("ollamastack_streams_in_flight", (), 1))
        finally:
            job.result()
        scrape(app.url, ("ollamastack_streams_in_flight", (), 0))
        ollama_server.stop()
        try:
            assert scrape(app.url)[("ollamastack_ollama_up", ())] == 0
        finally:
            ollama_server.start()


def test_with_login_metrics_need_the_metrics_token_or_an_admins_api_token(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    logins = {"auth": "ann:pw-a,bob:pw-b", "admin_users": "ann", "metrics_token": "m-token-1"}
    with serve(ollama_server, tmp_path, **logins) as app:
        url = f"{app.url}/metrics"
        refused = [
            httpx.get(url),
            httpx.get(url, headers={"authorization": "Bearer wrong"}),
            httpx.get(url, headers={"authorization": "Basic m-token-1"}),
        ]
        tokens = {}
        for user, password in (("ann", "pw-a"), ("bob", "pw-b")):
            client = Client(app.url, auth=(user, password), verbose=False)
            tokens[user] = client.predict("scrape", 0, api_name="/create_api_token")["token"]
        bob = httpx.get(url, headers={"authorization": f"Bearer {tokens['bob']}"})
        ann = httpx.get(url, headers={"authorization": f"Bearer {tokens['ann']}"})
        metrics = httpx.get(url, headers={"authorization": "Bearer m-token-1"})

    for response in [*refused, bob]:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="metrics"'
        assert "ollamastack_turns" not in response.text
    for response in (ann, metrics):
        assert response.status_code == 200
        assert ("ollamastack_ollama_up", ()) in samples(response.text)


def test_without_login_metrics_answer_anyone_like_healthz(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path, metrics_token="ignored-without-login") as app:
        assert httpx.get(f"{app.url}/metrics").status_code == 200
        assert httpx.post(f"{app.url}/metrics").status_code == 405
