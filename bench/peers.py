"""The peer users would pick instead: Open WebUI, measured with the same load as our app
(`make bench-peers`, never part of `make test`).

Open WebUI runs from its own virtual environment (`.venv-peers`, `requirements-peers.txt`:
it pins hundreds of packages, torch among them, that must not meet ours), with login off,
offline, over the same Ollama-protocol test server. The side streams its
`/api/chat/completions` route, the one its chat page posts each message to; called without a
chat id it answers with the OpenAI-style event stream itself, and it keeps nothing: the client
sends the conversation each turn, as its page does.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import httpx

from bench import servers
from bench.relay import SYSTEM_PROMPT
from bench.sides import Session, Timed, _Clock

PEERS_VENV = servers.ROOT / ".venv-peers"
OPEN_WEBUI = PEERS_VENV / "bin" / "open-webui"


def start_open_webui(ollama_url: str, work_dir: Path) -> servers.Served:
    """`open-webui serve` in `work_dir`: login off, no network, nothing but Ollama."""
    if not OPEN_WEBUI.exists():
        raise SystemExit(f"{OPEN_WEBUI} is missing: `make bench-peers` installs it")
    work_dir.mkdir(parents=True, exist_ok=True)
    port = servers.free_port()
    env = servers.quiet_env(
        WEBUI_AUTH="False", WEBUI_SECRET_KEY=secrets.token_hex(16), DATA_DIR=str(work_dir),
        OLLAMA_BASE_URL=ollama_url, ENABLE_OLLAMA_API="True", ENABLE_OPENAI_API="False",
        OFFLINE_MODE="True", HF_HUB_OFFLINE="1", BYPASS_EMBEDDING_AND_RETRIEVAL="True",
        RAG_EMBEDDING_ENGINE="ollama",  # else it loads a sentence-transformers model at start
        ENABLE_VERSION_UPDATE_CHECK="False", SCARF_NO_ANALYTICS="true", DO_NOT_TRACK="true",
        ANONYMIZED_TELEMETRY="false", GLOBAL_LOG_LEVEL="WARNING",
    )
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{PEERS_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    command = [str(OPEN_WEBUI), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return servers.start_served("Open WebUI", command, env, work_dir, port)


class OpenWebUISide:
    """Open WebUI's chat route over httpx; signed in as the admin its login-off mode makes."""

    name, client = "Open WebUI", "httpx"
    tools = False  # its tools are set up per user in its UI: answers only, no tool round

    def __init__(self, url: str) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        self._http = httpx.AsyncClient(base_url=url, timeout=120, limits=limits)
        self._token = ""

    async def _sign_in(self) -> None:
        signed = await self._http.post(
            "/api/v1/auths/signin", json={"email": "admin@localhost", "password": "admin"}
        )
        self._token = signed.raise_for_status().json()["token"]
        self._http.headers["Authorization"] = f"Bearer {self._token}"

    async def turn(self, session: Session, message: str) -> Timed:
        if not self._token:
            await self._sign_in()
        clock = _Clock()
        asked = {"role": "user", "content": message}
        model = session.model if ":" in session.model else f"{session.model}:latest"
        body = {
            "model": model, "stream": True,  # Open WebUI names Ollama's models in full
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, *session.history, asked],
        }
        text, error = "", ""
        async with self._http.stream("POST", "/api/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return clock.done("", f"HTTP {response.status_code}: {response.text[:200]}")
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = json.loads(line[6:])
                if "error" in data:
                    error = json.dumps(data["error"])
                    continue
                for choice in data.get("choices", []):
                    if piece := (choice.get("delta") or {}).get("content"):
                        clock.token()
                        text += piece
        session.history += [asked, {"role": "assistant", "content": text}]
        return clock.done(text, error)

    async def close(self) -> None:
        await self._http.aclose()
