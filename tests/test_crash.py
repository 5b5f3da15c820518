"""The app process killed with SIGKILL in the middle of an answer: after a restart on the same
data directory every completed turn is there, the SQLite database (in WAL mode) is intact,
and the conversation goes on."""

from __future__ import annotations

import sqlite3
from itertools import islice
from pathlib import Path

from gradio_client import Client

from ollamastack.settings import DEFAULT_SYSTEM_PROMPT
from tests.support.app_process import AppProcess
from tests.support.ollama_server import FakeOllama

COMPLETED = [
    {"role": "user", "content": "Remember: the code is 7419.", "branch": 1, "branches": 1},
    {"role": "assistant", "content": "You said: Remember: the code is 7419."},
    {"role": "user", "content": "What is 6*7?", "branch": 1, "branches": 1},
    {"role": "assistant", "content": "",
     "tool_calls": [{"name": "calculator", "args": {"expression": "6*7"}}]},
    {"role": "tool", "content": "42", "name": "calculator"},
    {"role": "assistant", "content": "It is 42."},
]  # fmt: skip
COUNTING = " ".join(f"n{i}" for i in range(200))  # 40 s at 5 tokens/s: killed long before


def database_state(path: Path) -> tuple[str, str]:
    """(integrity check, journal mode) of the database file, opened as any SQLite tool would."""
    with sqlite3.connect(path) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        journal = db.execute("PRAGMA journal_mode").fetchone()[0]
    db.close()
    return integrity, journal


def test_a_killed_app_keeps_every_completed_turn_and_an_intact_database(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with AppProcess(ollama_server.url, data) as app:
        client = Client(app.url, verbose=False)
        session = client.predict(COMPLETED[0]["content"], api_name="/chat")["session_id"]
        ollama_server.enqueue_tool_call("calculator", {"expression": "6*7"})
        ollama_server.enqueue_text("It is 42.")
        client.predict("What is 6*7?", session, api_name="/chat")
        assert client.predict(session, api_name="/history") == COMPLETED

        ollama_server.token_rate = 5
        ollama_server.enqueue_text(COUNTING)
        job = client.submit("Count to two hundred", session, api_name="/chat")
        streamed = [chunk["content"] for chunk in islice(job, 3)]
        assert streamed == ["n0", "n0 n1", "n0 n1 n2"]  # mid-answer
        app.kill()
        assert app.process is not None and app.process.returncode == -9

    assert database_state(data / "ollamastack.sqlite") == ("ok", "wal")

    ollama_server.token_rate = None
    with AppProcess(ollama_server.url, data) as again:
        client = Client(again.url, verbose=False)
        history = client.predict(session, api_name="/history")
        assert history[: len(COMPLETED)] == COMPLETED
        # the killed turn: its question was stored before the model streamed, none of the
        # answer was; on loading, the turn is sealed as cut off
        assert history[len(COMPLETED):] == [
            {"role": "user", "content": "Count to two hundred", "branch": 1, "branches": 1},
            {"role": "assistant", "content": "",
             "interrupted": "the app stopped before the answer was finished"},
        ]  # fmt: skip
        assert [s["session_id"] for s in client.predict(api_name="/sessions")] == [session]
        answer = client.predict("What was the code?", session, api_name="/chat")
        assert answer["content"] == "You said: What was the code?"
        sent = ollama_server.chat_requests[-1]["messages"]
        assert sent[:3] == [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": "Remember: the code is 7419."},
            {"role": "assistant", "content": "You said: Remember: the code is 7419."},
        ]
        assert sent[-1] == {"role": "user", "content": "What was the code?"}
    assert database_state(data / "ollamastack.sqlite") == ("ok", "wal")
