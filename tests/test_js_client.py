"""A client nobody here wrote: Gradio's JavaScript client (`@gradio/client`, run with Node)
holds a streamed two-turn conversation through /chat."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ollamastack.settings import DEFAULT_SYSTEM_PROMPT
from tests.support.api_helpers import chunk, growing, serve, stats, without_timings
from tests.support.ollama_server import FakeOllama

JS_DIR = Path(__file__).parent / "js"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed (`node` not on PATH)"),
]


def test_gradio_javascript_client_holds_a_streamed_conversation_with_memory(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    assert (JS_DIR / "node_modules" / "@gradio" / "client").is_dir(), (
        "@gradio/client is not installed: run `npm ci` in tests/js (make test does)"
    )
    ollama_server.token_rate = 200  # a real stream: one chunk every 5 ms
    ollama_server.enqueue_text("Nice to meet you, Ada.")
    ollama_server.enqueue_text("Your name is Ada.")
    with serve(ollama_server, tmp_path) as app:
        done = subprocess.run(
            [NODE, "chat.mjs", app.url, "My name is Ada.", "What is my name?"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)["turns"]
    session = first[0]["session_id"]
    requests = ollama_server.chat_requests

    # The JS client delivers the last value once more when the job completes.
    assert first[-1] == first[-2] and second[-1] == second[-2]
    assert [*first[:-2], without_timings(first[-1])] == [
        *(chunk(session, text) for text in growing("Nice to meet you, Ada.")),
        chunk(session, "Nice to meet you, Ada.", done=True, stats=stats(requests[:1], 5, 200)),
    ]
    assert [*second[:-2], without_timings(second[-1])] == [
        *(chunk(session, text) for text in growing("Your name is Ada.")),
        chunk(session, "Your name is Ada.", done=True, stats=stats(requests[1:], 4, 200)),
    ]
    assert [r["messages"] for r in requests] == [
        [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": "My name is Ada."},
        ],
        [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
            {"role": "user", "content": "What is my name?"},
        ],
    ]
