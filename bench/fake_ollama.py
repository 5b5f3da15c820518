"""The test suite's Ollama-protocol server (`tests/support/ollama_server.py`) in its own
process.

The model is a constant of the benchmark: every side talks to the same server, which paces
its chunks at `token_rate` tokens/s, in its own process so its CPU is not charged to the side
being measured. `RemoteOllama` scripts it over a pipe, one JSON line per command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class RemoteOllama:
    """Start, script and stop the server process; each call waits for its answer."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_ollama"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.pid = self._process.pid
        self.url: str = self._read()["url"]

    def _read(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the Ollama-protocol test server exited")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"test server: {answer['error']}")
        return answer

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": op, "args": args, "kwargs": kwargs}) + "\n")
        self._process.stdin.flush()
        return self._read()["result"]

    def set_token_rate(self, rate: float | None) -> None:
        self.call("set", "token_rate", rate)

    def script(self, replies: list[tuple[str, str, bool]]) -> None:
        """Queue (model, answer text, tool round first) replies, in order per model."""
        self.call("script", replies)

    def pending(self) -> int:
        return self.call("pending")

    def clear(self) -> None:
        self.call("clear")

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def _serve() -> None:
    """The child: run the server, answer commands from stdin until it closes."""
    from tests.support.ollama_server import FakeOllama

    server = FakeOllama().start()
    print(json.dumps({"url": server.url}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        op, args, kwargs = command["op"], command["args"], command["kwargs"]
        try:
            result = None
            if op == "set":
                setattr(server, *args)
            elif op == "script":
                for model, text, tool in args[0]:
                    if tool:
                        server.enqueue_tool_call("calculator", {"expression": "6*7"}, model=model)
                    server.enqueue_text(text, model=model)
            elif op == "pending":
                result = len(server.pending_replies)
            elif op == "clear":
                with server._lock:  # no public way to drop a failed phase's leftovers
                    server._replies.clear()
            elif op in ("add_model", "chat_count"):
                result = (
                    len(server.chat_requests) if op == "chat_count"
                    else getattr(server, op)(*args, **kwargs).name
                )
            else:
                raise ValueError(f"unknown command {op}")
            print(json.dumps({"result": result}), flush=True)
        except Exception as error:
            print(json.dumps({"error": repr(error)}), flush=True)
    server.stop()


if __name__ == "__main__":
    _serve()
