"""Load: many users chatting at once through gradio_client, against the app as an operator
runs it (`python app.py`, default rate limit, one login per user) and the test server
streaming 50 tokens a second, all on loopback.

Every turn completes, every session's history holds exactly its own messages in order, no
request fails, and the app's memory after the run stays within a stated bound. `make test`
runs 16 sessions of 3 turns; OLLAMASTACK_FULL_LOAD=1 runs the issue's 64 sessions of 5.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client

from tests.support.app_process import AppProcess
from tests.support.ollama_server import FakeOllama

FULL = os.environ.get("OLLAMASTACK_FULL_LOAD") == "1"
SESSIONS, TURNS = (64, 5) if FULL else (16, 3)
DEADLINE = 540.0 if FULL else 100.0  # seconds for the whole run: a hang fails, not stalls
TOKEN_RATE = 50.0
MIB = 1024 * 1024
RSS_LIMIT = 1024 * MIB  # the app after the run (it starts at about 300 MiB)
RSS_GROWTH_LIMIT = 256 * MIB  # over its size after one warm-up turn

def question(session: int, turn: int) -> str:
    """About 20 words, so each answer ("You said: …") streams for about half a second."""
    words = " ".join(f"w{session}.{turn}.{i}" for i in range(18))
    return f"Session {session} turn {turn}: {words}"


def converse(url: str, session: int) -> tuple[str, list[float]]:
    """One user's conversation: (session id, seconds per turn)."""
    client = Client(url, auth=(f"user{session}", f"pw-{session}"), verbose=False)
    session_id, seconds = "", []
    for turn in range(TURNS):
        text = question(session, turn)
        started = time.monotonic()
        answer = client.predict(text, session_id, api_name="/chat")
        seconds.append(time.monotonic() - started)
        assert (answer["content"], answer["done"]) == (f"You said: {text}", True), answer
        assert session_id in ("", answer["session_id"])
        session_id = answer["session_id"]
    return session_id, seconds


def test_many_users_at_once_each_get_exactly_their_own_conversation(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    ollama_server.token_rate = TOKEN_RATE
    logins = ",".join(f"user{i}:pw-{i}" for i in range(SESSIONS))
    data = tmp_path / "data"
    with AppProcess(ollama_server.url, data, auth=logins, concurrency=str(SESSIONS)) as app:
        warm = Client(app.url, auth=("user0", "pw-0"), verbose=False)
        warm.predict("warm up", api_name="/chat")
        baseline = app.rss_bytes()

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=SESSIONS) as pool:
            runs = [pool.submit(converse, app.url, s) for s in range(SESSIONS)]
            results = [run.result(timeout=max(1.0, started + DEADLINE - time.monotonic()))
                       for run in runs]
        elapsed = time.monotonic() - started
        after = app.rss_bytes()

        for session, (session_id, _) in enumerate(results):
            user = Client(app.url, auth=(f"user{session}", f"pw-{session}"), verbose=False)
            history = user.predict(session_id, api_name="/history")
            expected = []
            for turn in range(TURNS):
                text = question(session, turn)
                expected += [{"role": "user", "content": text, "branch": 1, "branches": 1},
                             {"role": "assistant", "content": f"You said: {text}"}]
            assert history == expected, session
        assert len({session_id for session_id, _ in results}) == SESSIONS
        assert "Traceback" not in app.output()

    turns = sorted(s for _, seconds in results for s in seconds)
    print(
        f"\n{SESSIONS} sessions x {TURNS} turns in {elapsed:.1f} s; per turn median "
        f"{statistics.median(turns):.2f} s, p95 {turns[int(len(turns) * 0.95)]:.2f} s; "
        f"app RSS {baseline / MIB:.0f} MiB after warm-up, {after / MIB:.0f} MiB after the run"
    )
    assert elapsed < DEADLINE
    assert after < RSS_LIMIT, after / MIB
    assert after - baseline < RSS_GROWTH_LIMIT, (baseline / MIB, after / MIB)
