"""The served processes: `python app.py` and the bare relay, on loopback ports.

Each start is timed until the page answers (cold start), and the process's CPU time and
resident memory are read from /proc while it serves.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
APP_CONCURRENCY = 128  # as the relay: no turn of the benchmark waits in Gradio's queue
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_TIMEOUT = 90.0


def py_spy() -> str | None:
    """py-spy beside this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment of a served process: no telemetry, nothing but loopback."""
    return {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
            "NO_PROXY": "127.0.0.1,localhost", **extra}


@dataclass
class Served:
    name: str
    url: str
    process: subprocess.Popen
    pid: int  # of the Python process serving (under py-spy, its child)
    cold_start: float  # seconds from the command to the page's first 200
    log: Path

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for {self.name}")

    def stop(self) -> None:
        """Ctrl-C, as a person stops it; killed when it does not end in 10 s."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_for_page(name: str, url: str, process: subprocess.Popen, log: Path) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < PAGE_TIMEOUT:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"{name} did not answer at {url} in {PAGE_TIMEOUT:.0f} s")


def _child_pid(parent: int) -> int:
    """The process a wrapper (py-spy) started."""
    for _ in range(500):
        for task in Path(f"/proc/{parent}/task").iterdir():
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
        time.sleep(0.01)
    raise RuntimeError("the profiled process did not start")


def start_served(name: str, command: list[str], env: dict[str, str], cwd: Path, port: int,
                 profile: Path | None = None) -> Served:
    """Start `command` (under py-spy with `profile`), logging to `cwd`, and time it until its
    page answers on `port`."""
    log = cwd / f"{name.lower()}.log"
    if profile is not None:
        command = [py_spy() or "py-spy", "record", "--nonblocking", "--rate", "200",
                   "--format", "raw", "--full-filenames", "--output", str(profile), "--", *command]
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    pid = _child_pid(process.pid) if profile is not None else process.pid
    url = f"http://127.0.0.1:{port}"
    _wait_for_page(name, url + "/", process, log)
    return Served(name, url, process, pid, time.perf_counter() - started, log)


def start_app(ollama_url: str, data_dir: Path, profile: Path | None = None,
              database_url: str = "") -> Served:
    """`python app.py`, in an empty directory (no .env) with its data there (and in
    `database_url` when one is given)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = quiet_env(
        OLLAMA_HOST=ollama_url, OLLAMASTACK_DATA_DIR=str(data_dir), OLLAMASTACK_MODEL="bench-00",
        OLLAMASTACK_CONCURRENCY=str(APP_CONCURRENCY), OLLAMASTACK_RATE_LIMIT="0",
        OLLAMASTACK_MAX_TURNS_PER_USER=str(APP_CONCURRENCY),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        **({"OLLAMASTACK_DATABASE_URL": database_url} if database_url else {}),
    )
    return start_served("App", [sys.executable, str(ROOT / "app.py")], env, data_dir, port, profile)


def start_relay(ollama_url: str, work_dir: Path) -> Served:
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, str(ROOT / "bench" / "relay.py"), "--ollama", ollama_url,
               "--port", str(port)]
    return start_served("Relay", command, quiet_env(), work_dir, port)


def import_seconds(module: str) -> float:
    """Wall time of `python -c "import <module>"`: the floor of any start-up that needs it."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=quiet_env())
    return time.perf_counter() - started
