"""The audit log: one JSON line per request, in the data directory, of who did what and how
it went.

    {"time": "2025-11-25T17:20:01.123Z", "user": "alice", "client": "127.0.0.1",
     "endpoint": "/chat", "session_id": "1b4e…", "model": "llama3.2", "outcome": "ok",
     "latency_s": 0.841}

`user` is the login ("" without login) and `client` the address the request came from.
`outcome` is one of `OUTCOMES`; a failed request adds the `error` its client was shown.
The message text is written only with `OLLAMASTACK_LOG_CONTENT=true`; passwords and tokens
never are (only the login name is known here).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gradio.exceptions import Error as GradioError

from ollamastack.errors import (
    InvalidInput,
    NotAllowed,
    OllamaStackError,
    RateLimited,
    SessionNotFound,
)

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
FIELD_CHARS = 200  # a hostile session id or model name is cut short, not logged whole
OUTCOMES = ("ok", "error", "refused", "rate_limited", "forbidden", "stopped")


def outcome_of(error: BaseException) -> str:
    """How a request that raised `error` is recorded.

    >>> outcome_of(RateLimited(10, 60, 5)), outcome_of(InvalidInput("bad"))
    ('rate_limited', 'refused')
    >>> outcome_of(GeneratorExit()), outcome_of(ValueError())
    ('stopped', 'error')
    """
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, NotAllowed):
        return "forbidden"
    if isinstance(error, InvalidInput | SessionNotFound):
        return "refused"
    if isinstance(error, GeneratorExit | asyncio.CancelledError):
        return "stopped"
    return "error"


@dataclass
class Entry:
    """One request as it will be recorded; the handler fills in what it learns on the way."""

    endpoint: str
    user: str
    client: str
    session_id: str = ""
    model: str = ""
    message: str | None = None  # written only when content logging is on
    outcome: str = "ok"
    error: str = ""

    def fail(self, error: BaseException) -> None:
        """Record how the request ended (the first failure counts)."""
        if self.outcome != "ok":
            return
        if isinstance(error, GradioError) and isinstance(error.__context__, OllamaStackError):
            error = error.__context__  # the typed error the edge turned into a gr.Error
        self.outcome = outcome_of(error)
        if isinstance(error, GradioError):  # texts a client was shown
            self.error = str(error.message)
        elif isinstance(error, OllamaStackError):
            self.error = str(error)
        elif self.outcome == "error":
            self.error = type(error).__name__  # its text may hold anything: see the app's log

    def line(self, latency: float, *, log_content: bool) -> dict[str, Any]:
        """The JSON object written for this entry."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line: dict[str, Any] = {
            "time": now,
            "user": _short(self.user),
            "client": _short(self.client),
            "endpoint": self.endpoint,
            "session_id": _short(self.session_id),
            "model": _short(self.model),
            "outcome": self.outcome,
            "latency_s": round(latency, 4),
        }
        if self.error:
            line["error"] = self.error
        if log_content and self.message is not None:
            line["message"] = self.message
        return line


def _short(text: str) -> str:
    """
    >>> _short("a" * 10_000) == "a" * FIELD_CHARS + "…"
    True
    """
    return text if len(text) <= FIELD_CHARS else text[:FIELD_CHARS] + "…"


class AuditLog:
    """Appends records to `path` (created owner-only); a write that fails is logged, not raised.

    The file is opened for each record, so it can be rotated (moved away) at any time.
    """

    def __init__(self, path: Path, *, log_content: bool = False) -> None:
        self.path = path
        self.log_content = log_content
        self._lock = threading.Lock()

    @contextmanager
    def entry(self, endpoint: str, user: str, client: str, **fields: Any) -> Iterator[Entry]:
        """Time the block and write its entry when it ends, however it ends."""
        entry = Entry(endpoint, user, client, **fields)
        started = time.perf_counter()
        try:
            yield entry
        except BaseException as error:
            entry.fail(error)
            raise
        finally:
            self.write(entry.line(time.perf_counter() - started, log_content=self.log_content))

    def write(self, fields: dict[str, Any]) -> None:
        line = (json.dumps(fields, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)  # one write per line: lines never interleave
                finally:
                    os.close(fd)
            except OSError:
                log.exception("could not write the audit log %s", self.path)
