"""Webhooks against a real local receiver: signed bodies, the event filter, a slow receiver
that does not slow the turn, a failing one retried then dropped and counted."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import resource
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from gradio_client import Client
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ollamastack.bus import EventBus
from ollamastack.lifecycle import ModelPulled, RequestAudited, TurnFailed
from ollamastack.settings import Settings
from ollamastack.web import hook_connection
from ollamastack.web.metrics import Metrics
from ollamastack.web.webhooks import SIGNATURE_HEADER, Webhooks
from tests.support.api_helpers import run, serve
from tests.support.ollama_server import FakeOllama

SECRET = "hook-secret-1"


# Replies a receiver may give after the POST, as raw bytes after the status line (HTTP/1.1).
LENGTH_BODY = b"Content-Length: 2\r\n\r\nok"
CHUNKED_BODY = (b"Transfer-Encoding: chunked\r\n\r\n"
                b"4;note=x\r\naccp\r\n4\r\nted!\r\n0\r\nX-Trailer: 1\r\n\r\n")
NO_BODY = b"\r\n"  # with 204
CONTINUE_FIRST = b"100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" + LENGTH_BODY
UNTIL_CLOSE = b"\r\nthe body ends with the connection"  # no length: with `hang_up`
CLOSE_SAID = b"Connection: close\r\n" + LENGTH_BODY
CUT_SHORT = b"Content-Length: 10\r\n\r\nok"  # with `hang_up`: 8 bytes never come
NOT_HTTP = b"this is no header field\r\n\r\n"


class Receiver:
    """A webhook receiver on loopback: records each POST (headers, raw body, target, the
    client's port: one per connection); answers `status` after `delay` seconds. With
    `keep_alive` it speaks HTTP/1.1 and keeps connections open, giving `replies` in turn;
    with `hang_up` as well, it closes each after answering without saying so."""

    def __init__(self, status: int = 200, delay: float = 0.0, *, keep_alive: bool = False,
                 replies: tuple[bytes, ...] = (LENGTH_BODY,), hang_up: bool = False) -> None:
        self.status, self.delay = status, delay
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.targets: list[str] = []
        self.ports: list[int] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with receiver.arrived:
                    receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.targets.append(self.path)
                    receiver.ports.append(self.client_address[1])
                    receiver.arrived.notify_all()
                    reply = replies[(len(receiver.posts) - 1) % len(replies)]
                time.sleep(receiver.delay)
                if keep_alive:
                    status = 204 if reply == NO_BODY else receiver.status
                    head = b"HTTP/1.1 " + (b"" if reply == CONTINUE_FIRST else b"%d X\r\n" % status)
                    self.wfile.write(head + reply)
                    self.close_connection = hang_up
                    return
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


@contextmanager
def serving(receiver: Receiver) -> Iterator[Receiver]:
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving(Receiver()) as receiver:
        yield receiver


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


async def test_a_receiver_slower_than_the_timeout_fails_the_delivery(receiver: Receiver) -> None:
    """The socket's own timeout ends the wait: the delivery fails (and is counted) when the
    receiver takes longer than `timeout`, and the next one opens a new connection."""
    receiver.delay = 1.0
    settings = Settings(_env_file=None, webhook_url=receiver.url)
    bus = EventBus()
    webhooks = Webhooks(settings, retries=0, timeout=0.3)
    webhooks.subscribe(bus)
    began = time.monotonic()
    bus.emit(ModelPulled("a"))
    await bus.drain()
    took = time.monotonic() - began
    receiver.delay = 0.0
    bus.emit(ModelPulled("b"))
    await bus.aclose()
    await webhooks.aclose()
    assert 0.3 <= took < 0.9
    assert webhooks.counts() == {"delivered": 1, "failed": 1, "dropped": 0}
    assert webhooks.connections[receiver.url].opened == 2


async def deliver(settings: Settings, *events: object) -> Webhooks:
    """`events` through a bus to the webhooks of `settings`, tried once each; all done."""
    bus = EventBus()
    webhooks = Webhooks(settings, retries=0, timeout=5)
    webhooks.subscribe(bus)
    for event in events:
        bus.emit(event)
    await bus.aclose()
    await webhooks.aclose()
    return webhooks


async def test_deliveries_share_one_kept_alive_connection_whatever_the_reply_is_like() -> None:
    """A body with a length, a chunked one with extensions and trailers, none (204), a 100
    Continue first: each read to its end, so the next POST goes over the same connection.
    The audit log's records are no webhook event."""
    replies = (LENGTH_BODY, CHUNKED_BODY, NO_BODY, CONTINUE_FIRST)
    with serving(Receiver(keep_alive=True, replies=replies)) as receiver:
        settings = Settings(_env_file=None, webhook_url=receiver.url)
        events = [ModelPulled(f"model-{n}") for n in range(8)]
        webhooks = await deliver(settings, *events[:4], RequestAudited("/chat", "", ""),
                                 *events[4:])
    assert [json.loads(body)["model"] for _, body in receiver.posts] == [
        f"model-{n}" for n in range(8)]
    assert webhooks.counts() == {"delivered": 8, "failed": 0, "dropped": 0}
    assert len(set(receiver.ports)) == 1 and webhooks.connections[receiver.url].opened == 1


@pytest.mark.parametrize("looked_at", [True, False], ids=["looked-at", "used-at-once"])
async def test_a_receiver_that_hangs_up_after_each_reply_gets_every_event(
    looked_at: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As a server whose keep-alive timeout is shorter than the time between events: the
    connection it closed is noticed before sending (looked at: idle past `FRESH`), or fails
    before any answer (used at once), and a new one is opened, without using up a retry
    (there are none here)."""
    monkeypatch.setattr(hook_connection, "FRESH", 0.0 if looked_at else 60.0)
    with serving(Receiver(keep_alive=True, hang_up=True)) as receiver:
        settings = Settings(_env_file=None, webhook_url=receiver.url)
        webhooks = await deliver(settings, *[ModelPulled(f"model-{n}") for n in range(5)])
    assert len(receiver.posts) == 5 and len(set(receiver.ports)) == 5
    assert webhooks.counts() == {"delivered": 5, "failed": 0, "dropped": 0}
    assert webhooks.connections[receiver.url].opened == 5


async def test_a_kept_alive_connection_is_looked_at_past_1024_descriptors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy server holds many descriptors: the look at an idle connection must not be
    `select()`'s, which refuses any past 1024."""
    monkeypatch.setattr(hook_connection, "FRESH", 0.0)  # look before every POST
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows {hard} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with serving(Receiver(keep_alive=True)) as receiver:
            settings = Settings(_env_file=None, webhook_url=receiver.url)
            webhooks = await deliver(settings, ModelPulled("a"), ModelPulled("b"))
    finally:
        for descriptor in fillers:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert webhooks.counts() == {"delivered": 2, "failed": 0, "dropped": 0}
    assert webhooks.connections[receiver.url].opened == 1


async def test_a_reply_that_ends_the_connection_is_read_whole_and_a_new_one_opened() -> None:
    """A body that ends with the connection, and a "Connection: close": delivered, and the
    next POST goes over a new connection."""
    with serving(Receiver(keep_alive=True, replies=(UNTIL_CLOSE, CLOSE_SAID),
                          hang_up=True)) as receiver:
        settings = Settings(_env_file=None, webhook_url=receiver.url)
        webhooks = await deliver(settings, *[ModelPulled(f"model-{n}") for n in range(4)])
    assert [json.loads(body)["model"] for _, body in receiver.posts] == [
        f"model-{n}" for n in range(4)]
    assert webhooks.counts() == {"delivered": 4, "failed": 0, "dropped": 0}
    assert len(set(receiver.ports)) == 4 and webhooks.connections[receiver.url].opened == 4


async def test_a_reply_cut_short_or_not_http_fails_and_is_not_sent_again_unasked() -> None:
    """Once the receiver has begun to answer, a broken answer is the answer: a failed
    delivery (retried only by the retries, none here), not a reconnect."""
    with serving(Receiver(keep_alive=True, replies=(CUT_SHORT, NOT_HTTP),
                          hang_up=True)) as receiver:
        settings = Settings(_env_file=None, webhook_url=receiver.url)
        webhooks = await deliver(settings, ModelPulled("a"), ModelPulled("b"))
    assert [json.loads(body)["model"] for _, body in receiver.posts] == ["a", "b"]
    assert webhooks.counts() == {"delivered": 0, "failed": 2, "dropped": 0}
    assert webhooks.connections[receiver.url].opened == 2


async def test_a_url_the_environment_sends_through_a_proxy_goes_through_it(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("NO_PROXY", "ALL_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", receiver.url.removesuffix("/hook"))
    settings = Settings(_env_file=None, webhook_url="http://hooks.example.invalid/in?x=1")
    webhooks = await deliver(settings, ModelPulled("llama3.2"))
    assert receiver.targets == ["http://hooks.example.invalid/in?x=1"]  # as a proxy is asked
    assert webhooks.counts()["delivered"] == 1


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "receiver.pem", folder / "receiver.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_file, key_file


async def test_https_receivers_are_checked_against_the_trusted_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trusted as httpx trusts (certifi's authorities, or `SSL_CERT_FILE`)."""
    cert_file, key_file = self_signed(tmp_path)
    receiver = Receiver(keep_alive=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    receiver.server.socket = tls.wrap_socket(receiver.server.socket, server_side=True)
    url = receiver.url.replace("http:", "https:")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with serving(receiver):
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        untrusted = await deliver(Settings(_env_file=None, webhook_url=url), ModelPulled("a"))
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        trusted = await deliver(Settings(_env_file=None, webhook_url=url),
                                ModelPulled("b"), ModelPulled("c"))
    assert untrusted.counts() == {"delivered": 0, "failed": 1, "dropped": 0}
    assert trusted.counts() == {"delivered": 2, "failed": 0, "dropped": 0}
    assert [json.loads(body)["model"] for _, body in receiver.posts] == ["b", "c"]
    assert trusted.connections[url].opened == 1
