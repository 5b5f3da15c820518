"""The app as an operator runs it: `python app.py` in its own process, configured by the
environment, on a free loopback port, its output kept in a file; stopped or killed by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from api_helpers import free_port

APP = Path(__file__).resolve().parent.parent / "app.py"
START_SECONDS = 90  # imports of Gradio and LangChain on a slow, busy machine


class AppProcess:
    def __init__(
        self, ollama_url: str, data_dir: Path, *args: str, **settings: str
    ) -> None:
        """`settings` are OLLAMASTACK_* variables by their lower-case field name."""
        self.data_dir = data_dir
        self.args = args
        self.port = free_port()
        self.log = data_dir.parent / f"app-{self.port}.log"
        inherited = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("OLLAMASTACK_", "OLLAMA_", "GRADIO_"))
        }
        self.env = inherited | {
            "OLLAMA_HOST": ollama_url,
            "OLLAMASTACK_DATA_DIR": str(data_dir),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
        } | {f"OLLAMASTACK_{name.upper()}": value for name, value in settings.items()}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> AppProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(APP), *self.args], cwd=self.data_dir.parent, env=self.env,
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_SECONDS
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the app did not start:\n{self.output()}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine loses power or the OOM killer
        strikes."""
        os.kill(self.pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

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
