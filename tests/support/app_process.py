"""The app as an operator runs it: `python app.py` in its own process, configured by the
environment, on a free loopback port, its output kept in a file; stopped or killed by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.deploy_helpers import ROOT, free_port, request, stop

START_SECONDS = 90  # imports of Gradio and LangChain on a slow, busy machine
# What configures the app (or the uvicorn inside it): never inherited from the test run.
APP_VARIABLES = ("OLLAMASTACK_", "OLLAMA_", "GRADIO_", "FORWARDED_ALLOW_IPS")


class AppProcess:
    """`python app.py` with Ollama at `ollama_url`, its data in `data_dir`, `args` on its
    command line, `settings` (OLLAMASTACK_* by lower-case field name) and `env` (other
    variables, such as uvicorn's FORWARDED_ALLOW_IPS) in its environment.

    It runs in the parent of `data_dir`, so no `.env` of the checkout is read, and writes its
    output to `app-PORT.log` there. `start()` returns once it serves HTTP, which it does before
    its database or Ollama answer; `wait_healthy()` waits for those too.
    """

    def __init__(self, ollama_url: str, data_dir: Path, *args: str,
                 env: dict[str, str] | None = None, **settings: str) -> None:
        self.data_dir = data_dir
        self.directory = data_dir.parent
        self.args = args
        self.port = free_port()
        self.log = self.directory / f"app-{self.port}.log"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(APP_VARIABLES)}
        self.env = inherited | {
            "OLLAMA_HOST": ollama_url,
            "OLLAMASTACK_DATA_DIR": str(data_dir),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
        } | {f"OLLAMASTACK_{name.upper()}": value for name, value in settings.items()} | (env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> AppProcess:
        """Start the process and return at once (several apps then start side by side)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), *self.args], cwd=self.directory,
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        return self

    def start(self) -> AppProcess:
        """Start the process; return once it serves HTTP."""
        self.launch()
        try:
            self.health()
        except BaseException:
            self.stop()
            raise
        return self

    def get(self, path: str, timeout: float = START_SECONDS) -> bytes:
        """The body of the first `GET path` that answers 200, while the process keeps running."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll() if self.process is not None else "never started"
            assert code is None, f"the app exited with {code}:\n{self.output()}"
            try:
                status, _, body = request(self.port, "GET", path)
            except OSError:  # not listening yet, or no answer within the request's timeout
                status, body = 0, b""
            if status == 200:
                return body
            assert time.monotonic() < deadline, f"GET {path} never answered 200:\n{self.output()}"
            time.sleep(0.1)

    def health(self, timeout: float = START_SECONDS) -> dict[str, Any]:
        """The JSON of the first `GET /healthz` that answers, whatever its status says."""
        return json.loads(self.get("/healthz", timeout))

    def wait_healthy(self, timeout: float = START_SECONDS) -> dict[str, Any]:
        """The JSON of the first `GET /healthz` whose status is "ok"."""
        deadline = time.monotonic() + timeout
        while (health := self.health(max(deadline - time.monotonic(), 1)))["status"] != "ok":
            assert time.monotonic() < deadline, f"never healthy: {health}\n{self.output()}"
            time.sleep(0.2)
        return health

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine loses power or the OOM killer
        strikes."""
        os.kill(self.pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Terminate the process by its pid (killed if it does not exit); reap one that exited."""
        if self.process is not None:
            stop(self.process)

    def rss_bytes(self) -> int:
        """The process's resident memory now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
