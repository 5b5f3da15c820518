"""One turn pipeline for every door: a conversation answers one message at a time, one user
holds at most `max_turns_per_user` answers at once, deleting a conversation mid-answer stops
the answer and leaves nothing of it, and the audit log names the model that answered."""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client

from ollamastack.engines.embedded.engine import EMBEDDED_MODEL
from ollamastack.web.audit import AUDIT_FILE
from tests.support.api_helpers import run, serve
from tests.support.ollama_server import FakeOllama

BUSY = "This conversation is still answering: wait for it, or press Stop."


def audit_lines(data_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (data_dir / AUDIT_FILE).read_text().splitlines()]


def test_eight_messages_at_once_to_one_conversation_answer_one_and_refuse_seven(
    ollama_server: FakeOllama, tmp_path: Path
):
    with serve(ollama_server, tmp_path, rate_limit=0, max_turns_per_user=16) as served:
        client = Client(served.url, verbose=False)
        session = client.predict("First.", api_name="/chat")["session_id"]
        ollama_server.token_rate = 20  # each answer streams for about a second
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(
                lambda n: run(client, f"Message {n}.", session, api_name="/chat"), range(8)
            ))
        ollama_server.token_rate = None
        answered = [outputs[-1] for outputs, error in results if error is None]
        refused = [error for _, error in results if error is not None]
        assert len(answered) == 1 and answered[0]["done"] is True
        assert refused == [BUSY] * 7
        said = answered[0]["content"].removeprefix("You said: ")
        history = client.predict(session, api_name="/history")
        assert [(m["role"], m["content"]) for m in history] == [
            ("user", "First."), ("assistant", "You said: First."),
            ("user", said), ("assistant", f"You said: {said}"),
        ]
        served.app.edge.audit_log.wait_for(10)  # the first turn, the 8 at once, /history
        assert [line["outcome"] for line in audit_lines(served.settings.data_dir)
                if line["endpoint"] == "/chat"].count("refused") == 7


def test_one_user_holds_at_most_four_answers_and_others_are_unaffected(
    ollama_server: FakeOllama, tmp_path: Path
):
    logins = {"auth": "ann:pw-ann,bob:pw-bob", "rate_limit": 0}
    with serve(ollama_server, tmp_path, **logins) as served:
        ann = Client(served.url, auth=("ann", "pw-ann"), verbose=False)
        bob = Client(served.url, auth=("bob", "pw-bob"), verbose=False)
        ollama_server.together = 5  # held until ann's four and bob's one all wait at Ollama
        anns = [ann.submit(f"Ann {n}.", api_name="/chat") for n in range(4)]
        ollama_server.wait_until(lambda: len(ollama_server.chat_requests) >= 4, timeout=20)
        fifth, error = run(ann, "Ann 5.", api_name="/chat")
        assert error == (
            "You already have 4 answers in progress, the most one user may have at once. "
            "Wait for one to finish, or stop one."
        )
        assert fifth == []
        assert bob.predict("Bob.", api_name="/chat")["content"] == "You said: Bob."
        assert sorted(job.result()["content"] for job in anns) == [
            f"You said: Ann {n}." for n in range(4)
        ]
        assert run(ann, "Ann again.", api_name="/chat")[1] is None  # slots are given back
    refused = [line for line in audit_lines(tmp_path)
               if line["outcome"] == "rate_limited"]
    assert [(line["user"], line["endpoint"]) for line in refused] == [("ann", "/chat")]


def sqlite_rows_holding(path: Path, text: str) -> list[str]:
    """Every table of the SQLite file with a row whose text or bytes hold `text`."""
    found = []
    with sqlite3.connect(path) as db:
        listed = db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        tables = [name for (name,) in listed]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    blob = value.encode() if isinstance(value, str) else value
                    if isinstance(blob, bytes) and text.encode() in blob:
                        found.append(table)
    return found


def test_deleting_a_conversation_mid_answer_stops_it_and_leaves_no_row(
    ollama_server: FakeOllama, tmp_path: Path
):
    secret = "The launch code is 7431-alpha"
    with serve(ollama_server, tmp_path) as served:
        client = Client(served.url, verbose=False)
        session = client.predict("Hello.", api_name="/chat")["session_id"]
        ollama_server.enqueue_text(" ".join(["streaming"] * 400))
        ollama_server.token_rate = 20
        client.submit(secret, session, api_name="/chat")
        ollama_server.wait_until(lambda: len(ollama_server.chat_requests) == 2)
        deleted = client.predict(session, api_name="/delete_session")
        assert deleted == {"session_id": session, "deleted": True}
        _, error = run(client, "Still there?", session, api_name="/chat")
        assert error == f"No conversation with id {session} was found."
        assert session not in [s["session_id"] for s in client.predict(api_name="/sessions")]
        ollama_server.token_rate = None
        database = served.settings.sqlite_path
    assert ollama_server.chat_requests[-1]["messages"][-1]["content"] == secret
    assert ollama_server.requests[-1].disconnected  # the answer was stopped mid-stream
    assert sqlite_rows_holding(database, secret) == []
    assert sqlite_rows_holding(database, "streaming streaming") == []


def test_the_audit_log_names_the_model_that_answered(ollama_server: FakeOllama, tmp_path: Path):
    """The configured default is not installed: the embedded model answers, and the audit
    log says so, not the name that was configured."""
    with serve(ollama_server, tmp_path, model="qwen3:8b", embedded=True) as served:
        client = Client(served.url, verbose=False)
        answered = client.predict("Hi.", api_name="/chat")  # no model named: the default
        client.predict("Hi.", "", "llama3.2", api_name="/chat")
    assert answered["done"] is True
    chats = [line for line in audit_lines(tmp_path) if line["endpoint"] == "/chat"]
    assert [line["model"] for line in chats] == [EMBEDDED_MODEL, "llama3.2"]
    assert len(ollama_server.chat_requests) == 1  # the embedded answer never reached Ollama
