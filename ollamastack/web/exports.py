"""Conversation exports that only their owner can fetch.

Gradio serves a file in its cache to anyone logged in who names it (`/gradio_api/file=`, no
owner check), and a file returned from elsewhere is copied there readable by every local user.
An export is written in Gradio's cache, in an unguessable folder under its owner and
conversation, readable by this user only; `ExportGuard` serves it to its owner only; deleting
the conversation deletes it, and it expires after `upload_retention` seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from gradio.utils import get_upload_folder

EXPORTS = "ollamastack-exports"  # the folder in Gradio's cache that `ExportGuard` watches
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")  # Gradio's routes serving a path
USER_ROUTE = "/gradio_api/user"  # Gradio's: the login of a request's cookie, or null


def _key(kind: str, value: str) -> str:
    """A path component for a login or a conversation id, whatever characters they hold."""
    return hashlib.sha256(f"ollamastack-{kind}:{value}".encode()).hexdigest()[:32]


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)


class ExportFiles:
    """Exports in Gradio's cache at `<EXPORTS>/<owner>/<conversation>/<random>/<name>`.
    Gradio serves a file already there as it is, not from a copy of its own (made readable
    by every local user, kept until its cache is swept), under a URL nobody can guess;
    `ExportGuard` serves it to its owner only."""

    def __init__(self, retention: float, root: Path | None = None) -> None:
        self.retention = retention
        self.root = root or Path(get_upload_folder()) / EXPORTS

    def folder(self, user: str, session_id: str) -> Path:
        return self.root / _key("user", user) / _key("session", session_id)

    def write(self, user: str, session_id: str, name: str, text: str) -> Path:
        """A new file (mode 0600, folders 0700) holding `text`; older exports expire first."""
        self.expire()
        self.root.parent.mkdir(parents=True, exist_ok=True)
        folder = self.folder(user, session_id)
        for level in (self.root, folder.parent, folder):
            _private_dir(level)
        unique = folder / secrets.token_urlsafe(24)
        unique.mkdir(mode=0o700)
        path = unique / name
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                       encoding="utf-8") as file:
            file.write(text)
        return path

    def remove(self, user: str, session_id: str) -> None:
        """Delete every export of a conversation (it was deleted)."""
        shutil.rmtree(self.folder(user, session_id), ignore_errors=True)

    def expire(self) -> None:
        """Delete the exports older than `retention` seconds, those of earlier runs too."""
        cutoff = time.time() - self.retention
        for unique in self.root.glob("*/*/*"):
            try:
                if unique.stat().st_mtime <= cutoff:
                    shutil.rmtree(unique, ignore_errors=True)
            except OSError:
                continue
        for empty in [*self.root.glob("*/*"), *self.root.glob("*")]:
            with contextlib.suppress(OSError):
                empty.rmdir()  # only an empty folder goes


def export_target(path: str) -> list[str] | None:
    """The parts below `EXPORTS` of the file a request's path asks Gradio for, or None when
    it asks for no file there. The path is made absolute as Gradio does before serving it.

    >>> export_target("/gradio_api/file=/tmp/gradio/ollamastack-exports/ab/cd/ef/x.md")
    ['ab', 'cd', 'ef', 'x.md']
    >>> export_target("/gradio_api/file=/tmp/gradio/x/../OllamaStack-Exports/ab/x.md")
    ['ab', 'x.md']
    >>> export_target("/gradio_api/file=/tmp/gradio/abc/x.md"), export_target("/config")
    (None, None)
    """
    for route in FILE_ROUTES:
        if (at := path.find(route)) != -1:
            parts = Path(os.path.abspath(path[at + len(route):])).parts
            lowered = [part.lower() for part in parts]
            if EXPORTS in lowered:
                return list(parts[lowered.index(EXPORTS) + 1:])
    return None


class ExportGuard:
    """ASGI middleware: a file route into the exports answers as for a file that is not
    there (Gradio's 403) unless the request's login owns the export."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        target = export_target(scope["path"]) if scope["type"] == "http" else None
        if target is not None:
            owner = target[0].lower() if target else ""
            if owner != _key("user", await self._user(scope)):
                await _refuse(scope["path"], send)
                return
        await self.app(scope, receive, send)

    async def _user(self, scope: MutableMapping[str, Any]) -> str:
        """The request's login, asked of Gradio's own route with the request's cookies."""
        path = scope["path"]
        route = path[: path.find("/gradio_api/")] + USER_ROUTE
        probe = {**scope, "method": "GET", "path": route, "raw_path": route.encode(),
                 "query_string": b""}
        answer: dict[str, Any] = {"status": 0, "body": b""}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await self.app(probe, receive, send)
        user = json.loads(answer["body"] or b"null") if answer["status"] == 200 else None
        return user if isinstance(user, str) else ""


async def _refuse(path: str, send: Any) -> None:
    asked = next(path[path.find(r) + len(r):] for r in FILE_ROUTES if r in path)
    body = json.dumps({"detail": f"File not allowed: {asked}."}).encode()
    await send({"type": "http.response.start", "status": 403, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})
