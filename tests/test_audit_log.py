"""The audit log read back as its readers read it: one record is one line whatever a client
or Ollama put in its fields (line and paragraph separators, NEL, bidi controls, megabytes of
error text), and every field is cut to its limit; entries are events on the app's bus,
written by a subscriber that neither holds up a request nor loses one. Who is recorded and
when is in test_security.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from ollamastack.bus import QUEUE_SIZE, EventBus
from ollamastack.errors import InvalidInput, OllamaError
from ollamastack.lifecycle import RequestAudited
from ollamastack.web.audit import AUDIT_FILE, FIELD_CHARS, LIMITS, AuditLog
from tests.support.api_helpers import run, serve
from tests.support.ollama_server import FakeOllama

# What `str.splitlines`, JavaScript, editors or terminals may break a line on or reorder.
BREAKERS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\u202e\u2066\u200b\ufeff\U000e0001"
HOSTILE = f"a\n{BREAKERS}z"
MEGABYTES = "x" * 1_500_000
ESCAPED = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def read_back(path: Path, count: int) -> list[dict[str, Any]]:
    """The file's `count` records, checked to be exactly one line each for any reader."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # strict: no lone surrogate got through
    lines = text.splitlines()  # would split at each of BREAKERS up to U+2029
    assert len(lines) == raw.count(b"\n") == count
    unescaped = {c for c in text if c != "\n" and unicodedata.category(c) in ESCAPED}
    assert unescaped == set()  # controls, format characters, line and paragraph separators
    return [json.loads(line) for line in lines]


def test_every_field_is_written_escaped_on_one_line_and_cut_to_its_limit(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / AUDIT_FILE, log_content=True)
    fields = {
        "user": HOSTILE * 100, "client": HOSTILE, "session_id": HOSTILE * 100,
        "model": HOSTILE, "message": HOSTILE * 1000,
    }
    error = OllamaError(HOSTILE + MEGABYTES)  # as Ollama answered one pull
    with pytest.raises(OllamaError), audit.entry(HOSTILE * 100, **fields):
        raise error
    assert audit.flush()  # the entry is in the file before what follows
    audit.write({"endpoint": "/raw", "error": MEGABYTES})  # what a caller hands write itself

    first, second = read_back(tmp_path / AUDIT_FILE, 2)
    assert 0 <= first.pop("latency_s") < 5 and first.pop("time").endswith("Z")
    assert first == {
        "user": cut(HOSTILE * 100, FIELD_CHARS),
        "client": HOSTILE,
        "endpoint": cut(HOSTILE * 100, FIELD_CHARS),
        "session_id": cut(HOSTILE * 100, FIELD_CHARS),
        "model": HOSTILE,
        "outcome": "error",
        "error": cut(str(error), LIMITS["error"]),
        "message": cut(HOSTILE * 1000, LIMITS["message"]),
    }
    assert second == {"endpoint": "/raw", "error": cut(MEGABYTES, LIMITS["error"])}
    assert (tmp_path / AUDIT_FILE).stat().st_size < 100_000  # not 3 MB


def test_a_hostile_chat_over_http_leaves_one_bounded_line_per_request(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    """A message full of separators, an Ollama error of 1.5 MB, a session id of separators."""
    ollama_server.enqueue_error(500, HOSTILE + MEGABYTES)
    with serve(ollama_server, tmp_path, log_content=True) as app:
        client = Client(app.url, verbose=False)
        _, failed = run(client, HOSTILE, api_name="/chat")
        _, refused = run(client, "Hello", HOSTILE * 100, api_name="/chat")
        _, bad_model = run(client, HOSTILE, api_name="/pull_model")
        # its subscriber writes each entry a moment after the request ends: wait for it
        assert app.app.edge.audit_log.wait_for(3)
        records = read_back(tmp_path / AUDIT_FILE, 3)

    assert failed is not None and failed.startswith(f"Ollama reported an error: {HOSTILE}")
    for record in records:
        assert record.pop("time").endswith("Z") and 0 <= record.pop("latency_s") < 30
    session = records[0].pop("session_id")
    shown_model = f"{HOSTILE!r} is not a valid model name "
    assert records == [
        {"user": "", "client": "127.0.0.1", "endpoint": "/chat", "model": "llama3.2",
         "outcome": "error", "error": cut(failed, LIMITS["error"]), "message": HOSTILE},
        {"user": "", "client": "127.0.0.1", "endpoint": "/chat", "model": "llama3.2",
         "session_id": cut(HOSTILE * 100, FIELD_CHARS), "outcome": "refused",
         "error": refused, "message": "Hello"},
        {"user": "", "client": "127.0.0.1", "endpoint": "/pull_model", "session_id": "",
         "model": HOSTILE, "outcome": "refused", "error": bad_model},
    ]  # fmt: skip
    assert len(session) == 36 and bad_model is not None and bad_model.startswith(shown_model)
    assert (tmp_path / AUDIT_FILE).stat().st_size < 100_000  # not 1.5 MB


def test_a_stalled_writer_holds_up_no_request_and_loses_no_entry(tmp_path: Path) -> None:
    """The file is a FIFO nobody reads yet: writing to it waits, as on a stalled disk."""
    path = tmp_path / AUDIT_FILE
    os.mkfifo(path)
    audit = AuditLog(path)
    count = 2 * QUEUE_SIZE  # more than any bounded queue of the bus holds
    began = time.perf_counter()
    for number in range(count):
        with audit.entry("/history", "ann", "127.0.0.1", session_id=str(number)):
            pass
    assert time.perf_counter() - began < 2  # not one of them waited for the file
    assert not audit.flush(timeout=0.2)  # still waiting to be written

    reader = os.open(path, os.O_RDWR)  # read-write: the FIFO never ends between records
    try:
        received = b""
        while received.count(b"\n") < count:
            assert select.select([reader], [], [], 5)[0], received[-300:]
            received += os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert audit.flush()
    ids = [json.loads(line)["session_id"] for line in received.splitlines()]
    assert ids == [str(number) for number in range(count)]
    assert (audit.subscription.dropped, audit.subscription.failed) == (0, 0)


async def test_entries_are_events_on_the_apps_bus_and_closing_it_writes_them_all(
    tmp_path: Path,
) -> None:
    """From the event loop and from Gradio's worker threads; another subscriber of the bus
    sees each entry as a `RequestAudited` event (no message text without LOG_CONTENT)."""
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(seen.append, accepts=lambda event: isinstance(event, RequestAudited))
    audit = AuditLog(tmp_path / AUDIT_FILE, bus=bus)

    def refused(client: str) -> None:
        with pytest.raises(InvalidInput), audit.entry(
                "/chat", "ann", client, session_id="s1", model="llama3.2", message="private"):
            raise InvalidInput("The message is empty.")

    refused("10.0.0.1")  # on the loop
    await asyncio.gather(*(asyncio.to_thread(refused, f"10.0.0.{n}") for n in range(2, 6)))
    await bus.aclose()  # as the app's shutdown does

    records = [json.loads(line) for line in audit.path.read_text().splitlines()]
    assert sorted(r.pop("client") for r in records) == [f"10.0.0.{n}" for n in range(1, 6)]
    for record in records:
        assert record.pop("time").endswith("Z") and 0 <= record.pop("latency_s") < 5
    assert records == [{
        "user": "ann", "endpoint": "/chat", "session_id": "s1", "model": "llama3.2",
        "outcome": "refused", "error": "The message is empty.",
    }] * 5
    assert len(seen) == 5 and seen[0] == RequestAudited(
        "/chat", "ann", "10.0.0.1", "s1", "llama3.2", "refused", "The message is empty.",
        seen[0].seconds, None, seen[0].time)
