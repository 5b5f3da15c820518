"""Where the service meets Gradio: who is asking, what they may do, and errors a client can read.

One `Edge` per app is shared by the page and the API, so a client meets the same rate limit,
the same model-management rule and the same audit log whichever way it comes in.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from html import escape
from typing import Any

import gradio as gr

from ollamastack.bus import EventBus
from ollamastack.errors import NotAllowed, OllamaStackError, TooManyTurns
from ollamastack.settings import Settings
from ollamastack.web.audit import AUDIT_FILE, AuditLog, Entry
from ollamastack.web.ratelimit import RateLimiter

log = logging.getLogger(__name__)


def user_of(request: gr.Request | None) -> str:
    """The logged-in user, or "" when login is off (everyone shares one space)."""
    return (getattr(request, "username", None) or "") if request is not None else ""


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the login ("" without login) and the client's address."""

    user: str
    client: str

    @property
    def key(self) -> str:
        """What the rate limit counts by: the user, or the address without login.

        >>> Caller("alice", "10.0.0.7").key, Caller("", "10.0.0.7").key, Caller("", "").key
        ('user:alice', 'client:10.0.0.7', 'client:unknown')
        """
        return f"user:{self.user}" if self.user else f"client:{self.client or 'unknown'}"


def caller_of(request: gr.Request | None) -> Caller:
    client = getattr(request, "client", None)
    return Caller(user_of(request), str(getattr(client, "host", "") or ""))


def models_refusal(settings: Settings, user: str) -> str:
    """Why `user` may not pull or delete models here, or "" when they may.

    >>> shared = Settings(_env_file=None, share=True)
    >>> models_refusal(shared, "")[:59]
    'Pulling and deleting models is off: this app is shared by a'
    >>> admins = Settings(_env_file=None, auth="ann:pw1,bob:pw2", admin_users="ann")
    >>> models_refusal(admins, "ann"), models_refusal(admins, "bob")[:40]
    ('', 'Only administrators may pull or delete m')
    >>> models_refusal(Settings(_env_file=None), "")  # a local app without login
    ''
    """
    if settings.share and not settings.logins:
        return (
            "Pulling and deleting models is off: this app is shared by a public link without "
            "login. Set OLLAMASTACK_AUTH (and OLLAMASTACK_ADMIN_USERS) to allow it."
        )
    if settings.admins and user not in settings.admins:
        return (
            "Only administrators may pull or delete models here "
            "(the logins in OLLAMASTACK_ADMIN_USERS)."
        )
    return ""


class Edge:
    """The checks and the record that every endpoint of the page and the API shares."""

    def __init__(
        self, settings: Settings, *, clock: Callable[[], float] = time.monotonic,
        bus: EventBus | None = None,
    ) -> None:
        """`bus`: the app's event bus, which the audit entries go out on (and are flushed
        with when it closes); without one, the audit log has a bus of its own."""
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_limit, clock=clock)
        self._in_flight: Counter[str] = Counter()  # turns streaming now, per `Caller.key`
        self.audit_log = AuditLog(
            settings.data_dir / AUDIT_FILE, log_content=settings.log_content, bus=bus)

    def count_message(self, caller: Caller) -> None:
        """One more message from `caller`, or `RateLimited` saying when to try again."""
        self.limiter.hit(caller.key)

    @contextmanager
    def turn_slot(self, caller: Caller) -> Iterator[None]:
        """Hold one of `caller`'s turns in flight for the block, or `TooManyTurns` when they
        already hold `max_turns_per_user` (one client must not take every generation slot)."""
        limit = self.settings.max_turns_per_user
        if self._in_flight[caller.key] >= limit:
            raise TooManyTurns(limit)
        self._in_flight[caller.key] += 1
        try:
            yield
        finally:
            self._in_flight[caller.key] -= 1
            if not self._in_flight[caller.key]:
                del self._in_flight[caller.key]

    def check_models(self, caller: Caller) -> None:
        """`NotAllowed` unless `caller` may pull and delete models."""
        if reason := models_refusal(self.settings, caller.user):
            raise NotAllowed(reason)

    def audit(
        self, endpoint: str, caller: Caller, **fields: Any
    ) -> AbstractContextManager[Entry]:
        """The audit entry of one request, emitted when the `with` block ends."""
        return self.audit_log.entry(endpoint, caller.user, caller.client, **fields)


@contextmanager
def user_errors(*, html: bool = False) -> Iterator[None]:
    """Turn our typed errors into `gr.Error`, the only kind whose text reaches a client; with
    `html`, escaped for the page's toasts (Gradio renders their text as HTML)."""
    try:
        yield
    except OllamaStackError as error:
        text = str(error)
        raise gr.Error(escape(text) if html else text, print_exception=False) from None
    except gr.Error:
        raise
    except Exception as error:
        log.exception("unexpected error at the edge")
        raise gr.Error(
            f"Something went wrong on the server ({type(error).__name__}); see its log."
        ) from None
