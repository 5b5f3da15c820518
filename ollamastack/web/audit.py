"""The audit log: one JSON line per request, in the data directory, of who did what and how
it went. Each request's entry is a `RequestAudited` event on the app's bus, written to the
file by a lossless bus subscriber on a thread of its own, off the request's path (`bus.py`
says why a thread); a reader who needs the record of a request just answered calls `flush`
or `wait_for` first.

    {"time": "2025-11-25T17:20:01.123Z", "user": "alice", "client": "127.0.0.1",
     "endpoint": "/chat", "session_id": "1b4e…", "model": "llama3.2", "outcome": "ok",
     "latency_s": 0.841}

`user` is the login ("" without login) and `client` the address the request came from.
`outcome` is one of `OUTCOMES`; a failed request adds the `error` its client was shown.
The message text is written only with `OLLAMASTACK_LOG_CONTENT=true`; passwords and tokens
never are (only the login name is known here).

A record is always one line, whoever reads it. Every text is cut to `FIELD_CHARS` or its
`LIMITS` entry (a hostile session id or an error of megabytes is not logged whole). Besides
what JSON escapes, control, format and separator characters (U+0085, U+2028, U+2029, bidi
controls: what `str.splitlines`, JavaScript or an editor may break lines on or show
misleadingly) are written as `\\uXXXX` escapes, which any JSON reader turns back into the
same text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from gradio.exceptions import Error as GradioError

from ollamastack.bus import EventBus, ThreadSubscription
from ollamastack.errors import (
    InvalidInput,
    NotAllowed,
    OllamaStackError,
    RateLimited,
    SessionBusy,
    SessionNotFound,
    TooManyTurns,
)
from ollamastack.lifecycle import RequestAudited

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
FIELD_CHARS = 200  # user, client, endpoint, session id, model
LIMITS = {"error": 1000, "message": 4000}  # the texts allowed longer than FIELD_CHARS
ESCAPED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # Unicode categories written as \\uXXXX
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
OUTCOMES = ("ok", "error", "refused", "rate_limited", "forbidden", "stopped")


def outcome_of(error: BaseException) -> str:
    """How a request that raised `error` is recorded.

    >>> outcome_of(RateLimited(10, 60, 5)), outcome_of(InvalidInput("bad"))
    ('rate_limited', 'refused')
    >>> outcome_of(GeneratorExit()), outcome_of(ValueError())
    ('stopped', 'error')
    """
    if isinstance(error, RateLimited | TooManyTurns):
        return "rate_limited"
    if isinstance(error, NotAllowed):
        return "forbidden"
    if isinstance(error, InvalidInput | SessionNotFound | SessionBusy):
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

    def event(self, seconds: float, *, log_content: bool) -> RequestAudited:
        """The bus event of this entry, its texts already cut (a queue of them stays small)."""
        texts = (self.endpoint, self.user, self.client, self.session_id, self.model)
        endpoint, user, client, session_id, model = (_short(t) for t in texts)
        message = self.message if log_content else None
        return RequestAudited(
            endpoint, user, client, session_id, model, self.outcome,
            _short(self.error, LIMITS["error"]), seconds,
            None if message is None else _short(message, LIMITS["message"]),
        )


def line_of(event: RequestAudited) -> dict[str, Any]:
    """The JSON object written for one request, its fields in the file's order.

    >>> line_of(RequestAudited("/chat", "ann", "::1", outcome="refused", error="Too long.",
    ...                        seconds=0.12345, time=0.0))  # doctest: +NORMALIZE_WHITESPACE
    {'time': '1970-01-01T00:00:00.000Z', 'user': 'ann', 'client': '::1', 'endpoint': '/chat',
     'session_id': '', 'model': '', 'outcome': 'refused', 'latency_s': 0.1235,
     'error': 'Too long.'}
    """
    when = datetime.fromtimestamp(event.time, UTC).isoformat(timespec="milliseconds")
    line: dict[str, Any] = {
        "time": when.replace("+00:00", "Z"),
        "user": event.user,
        "client": event.client,
        "endpoint": event.endpoint,
        "session_id": event.session_id,
        "model": event.model,
        "outcome": event.outcome,
        "latency_s": round(event.seconds, 4),
    }
    if event.error:
        line["error"] = event.error
    if event.message is not None:
        line["message"] = event.message
    return line


def record_line(fields: dict[str, Any]) -> bytes:
    """One record as one line of UTF-8 JSON: texts cut to their limits, then escaped.

    >>> record_line({"user": "a\\u2028b\\x85c\\u202ed\\U000e0001", "model": "é"})
    b'{"user": "a\\\\u2028b\\\\u0085c\\\\u202ed\\\\udb40\\\\udc01", "model": "\\xc3\\xa9"}\\n'
    """
    cut = {
        key: _short(value, LIMITS.get(key, FIELD_CHARS)) if isinstance(value, str) else value
        for key, value in fields.items()
    }
    text = _NOT_PRINTABLE_ASCII.sub(_escape, json.dumps(cut, ensure_ascii=False))
    return (text + "\n").encode("utf-8")


def _escape(match: re.Match[str]) -> str:
    """`\\uXXXX` (a surrogate pair past U+FFFF) for a character in an `ESCAPED` category."""
    char = match.group()
    if unicodedata.category(char) not in ESCAPED:
        return char
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"
    return f"\\u{code:04x}"


def _short(text: str, limit: int = FIELD_CHARS) -> str:
    """
    >>> _short("a" * 10_000) == "a" * FIELD_CHARS + "…"
    True
    """
    return text if len(text) <= limit else text[:limit] + "…"


class AuditLog:
    """Each request's entry, emitted on `bus` (a bus of its own without one) and appended to
    `path` (created owner-only) by the one lossless subscriber it adds there; a write that
    fails is logged, not raised. One per bus: a second would write every record twice.

    The file is opened for each record, so it can be rotated (moved away) at any time.
    """

    def __init__(self, path: Path, *, log_content: bool = False,
                 bus: EventBus | None = None) -> None:
        self.path = path
        self.log_content = log_content
        self.bus = bus if bus is not None else EventBus()
        self.subscription = cast(ThreadSubscription, self.bus.subscribe(
            self.record, name="audit log", lossless=True,
            accepts=lambda event: isinstance(event, RequestAudited)))
        self._lock = threading.Lock()

    @contextmanager
    def entry(self, endpoint: str, user: str, client: str, **fields: Any) -> Iterator[Entry]:
        """Time the block and emit its entry when it ends, however it ends."""
        entry = Entry(endpoint, user, client, **fields)
        started = time.perf_counter()
        try:
            yield entry
        except BaseException as error:
            entry.fail(error)
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.bus.emit(entry.event(elapsed, log_content=self.log_content))

    def record(self, event: RequestAudited) -> None:
        """The subscriber: one request's line."""
        self.write(line_of(event))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every entry emitted so far is in the file (at most `timeout` s)."""
        return self.subscription.wait(timeout=timeout)

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until this log has written `count` entries in all (at most `timeout` s): for
        a reader whose reply can arrive a moment before its request's entry ends (a stream,
        a login)."""
        return self.subscription.wait(count, timeout)

    def write(self, fields: dict[str, Any]) -> None:
        line = record_line(fields)
        with self._lock:
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)  # one write per line: lines never interleave
                finally:
                    os.close(fd)
            except OSError:
                log.exception("could not write the audit log %s", self.path)
