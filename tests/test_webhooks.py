"""Webhooks against a real local receiver: signed bodies, the event filter, a slow receiver
that does not slow the turn, a failing one retried then dropped and counted."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from gradio_client import Client
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ollamastack.bus import EventBus
from ollamastack.lifecycle import ModelPulled, TurnFailed
from ollamastack.settings import Settings
from ollamastack.web.metrics import Metrics
from ollamastack.web.webhooks import SIGNATURE_HEADER, Webhooks
from tests.support.api_helpers import run, serve
from tests.support.ollama_server import FakeOllama

SECRET = "hook-secret-1"


class Receiver:
    """A webhook receiver on loopback: records each POST (headers, raw body); answers
    `status` after `delay` seconds."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with receiver.arrived:
                    receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.arrived.notify_all()
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, within: float = 10) -> list[tuple[dict[str, str], bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.posts) >= count, within), self.posts
            return list(self.posts)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
    thread.join()


def test_each_event_chosen_is_posted_signed_without_message_text(
    ollama_server: FakeOllama, tmp_path: Path, receiver: Receiver
) -> None:
    hooks = {"webhook_url": receiver.url, "webhook_secret": SECRET,
             "webhook_events": "turn.completed,turn.failed"}
    with serve(ollama_server, tmp_path, **hooks) as app:
        client = Client(app.url, verbose=False)
        ollama_server.enqueue_text("Hello there!")
        session = run(client, "a secret question", api_name="/chat")[0][-1]["session_id"]
        ollama_server.enqueue_error(500, "model runner crashed")
        run(client, "again", session, api_name="/chat")
        posts = receiver.wait_for(2)
        time.sleep(0.2)  # nothing else comes: turn.started is filtered out
        assert len(receiver.posts) == 2

    bodies = []
    for headers, body in posts:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER.lower()], expected)
        assert headers["content-type"] == "application/json"
        bodies.append(json.loads(body))
    completed, failed = bodies
    assert completed.pop("time").endswith("Z") and failed.pop("time").endswith("Z")
    assert 0 < completed.pop("seconds") < 30 and 0 < failed.pop("seconds") < 30
    assert 0 < completed.pop("time_to_first_token") < 30
    assert completed.pop("prompt_tokens") > 0
    assert completed == {
        "type": "turn.completed", "session_id": session, "user": "", "model": "llama3.2",
        "completion_tokens": 2, "tools": [], "cached": False, "paused": False,
    }
    assert failed == {
        "type": "turn.failed", "session_id": session, "user": "", "model": "llama3.2",
        "kind": "OllamaError", "error": failed["error"], "tools": [],
    }
    assert "model runner crashed" in failed["error"]
    assert b"secret question" not in b"".join(body for _, body in posts)


def test_with_log_content_the_message_and_answer_go_along(
    ollama_server: FakeOllama, tmp_path: Path, receiver: Receiver
) -> None:
    hooks = {"webhook_url": receiver.url, "webhook_events": "turn.started,turn.completed",
             "log_content": True}
    with serve(ollama_server, tmp_path, **hooks) as app:
        ollama_server.enqueue_text("Hello there!")
        run(Client(app.url, verbose=False), "a question", api_name="/chat")
        (started_headers, started), (_, completed) = receiver.wait_for(2)
    assert SIGNATURE_HEADER.lower() not in started_headers  # no secret: not signed
    assert json.loads(started)["message"] == "a question"
    assert json.loads(completed)["answer"] == "Hello there!"


def test_a_slow_receiver_does_not_slow_the_turn(
    ollama_server: FakeOllama, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.delay = 3.0
    with serve(ollama_server, tmp_path, webhook_url=receiver.url) as app:
        client = Client(app.url, verbose=False)
        run(client, "warm up", api_name="/chat")  # the service opens
        receiver.wait_for(1)
        began = time.monotonic()
        assert run(client, "hi", api_name="/chat")[1] is None
        took = time.monotonic() - began
    assert took < 1.5  # not the receiver's 3 s per event


async def test_a_failing_receiver_is_retried_then_counted_as_failed_and_a_full_queue_drops(
    receiver: Receiver,
) -> None:
    receiver.status = 503
    settings = Settings(_env_file=None, webhook_url=receiver.url)
    bus = EventBus()
    webhooks = Webhooks(settings, retries=2, backoff=0.05, queue_size=1)
    webhooks.subscribe(bus)
    metrics = Metrics(bus=bus, webhooks=webhooks)
    bus.emit(ModelPulled("llama3.2", "ann"))  # waits in the queue (emit never waits)
    for _ in range(2):
        bus.emit(TurnFailed("s", "ann", "llama3.2", "OllamaError"))  # the queue is full
    await bus.drain()
    try:
        assert [json.loads(body)["type"] for _, body in receiver.posts] == (
            ["model.pulled"] * 3  # the first try and two retries
        )
        assert webhooks.counts() == {"delivered": 0, "failed": 1, "dropped": 2}
        found = {
            s.labels["outcome"]: s.value
            for family in text_string_to_metric_families(
                generate_latest(metrics.registry).decode())
            for s in family.samples if s.name == "ollamastack_webhook_deliveries_total"
        }
        assert found == {"delivered": 0, "failed": 1, "dropped": 2}
    finally:
        await bus.aclose()
        await webhooks.aclose()


async def test_a_refusing_receiver_is_not_asked_again_and_a_dead_one_is_retried(
    receiver: Receiver,
) -> None:
    receiver.status = 400
    dead = "http://127.0.0.1:9/hook"  # discard port: connection refused
    settings = Settings(_env_file=None, webhook_url=f"{receiver.url},{dead}")
    bus = EventBus()
    webhooks = Webhooks(settings, retries=2, backoff=0.01)
    webhooks.subscribe(bus)
    bus.emit(ModelPulled("llama3.2"))
    await bus.aclose()
    await webhooks.aclose()
    assert len(receiver.posts) == 1
    assert webhooks.counts() == {"delivered": 0, "failed": 2, "dropped": 0}
