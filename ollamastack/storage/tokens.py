"""Personal API tokens: each acts as its user on the REST and OpenAI-compatible routes.

A token is `osk_` and 43 random URL-safe characters, shown once when it is made. Only its
SHA-256 is kept, as the key of an item of the LangGraph store that also holds the session
index (one database, whichever it is); the item says whose it is, its name, when it was made,
when it expires and when it was last used. Nothing here logs a token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from langgraph.store.base import BaseStore, Item

from ollamastack.errors import InvalidInput

PREFIX = "osk_"
NAMESPACE = ("api_tokens",)
MAX_TOKENS = 100  # per user: a list that long is already more than a person manages
MAX_DAYS = 3650
USED_EVERY = 60.0  # seconds: `last_used` is rewritten at most this often
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")


def digest(token: str) -> str:
    """The stored form of a token.

    >>> digest("osk_x")[:16]
    'bd080e361aa7b5c6'
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_name(value: object) -> str:
    """A token's name: 1 to 64 letters, digits, spaces, `_`, `.` or `-`.

    >>> token_name(" laptop script ")
    'laptop script'
    >>> token_name("")
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: A token name is 1 to 64 letters, digits, spaces, '_', '.' \
or '-', starting with a letter or digit.
    """
    text = value.strip() if isinstance(value, str) else ""
    if not _NAME.fullmatch(text):
        raise InvalidInput(
            "A token name is 1 to 64 letters, digits, spaces, '_', '.' or '-', starting "
            "with a letter or digit."
        )
    return text


def expiry_days(value: object) -> float:
    """Days until a token expires; 0 means never.

    >>> expiry_days(30), expiry_days(None)
    (30.0, 0.0)
    >>> expiry_days(-1)
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The expiry must be a number of days from 0 (never) to 3650.
    """
    try:
        days = float(value or 0)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        days = -1.0
    if isinstance(value, bool) or not 0 <= days <= MAX_DAYS:
        raise InvalidInput(
            f"The expiry must be a number of days from 0 (never) to {MAX_DAYS}."
        )
    return days


@dataclass(frozen=True)
class TokenInfo:
    """What a user sees of one of their tokens (never the token itself)."""

    name: str
    created_at: float
    expires_at: float | None
    last_used: float | None


class TokenStore:
    """The tokens of every user, as items of a LangGraph store."""

    def __init__(self, store: BaseStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def _items(self, user: str) -> list[Item]:
        return await self._store.asearch(NAMESPACE, filter={"user": user}, limit=MAX_TOKENS + 1)

    async def create(self, user: str, name: object, days: object = 0) -> str:
        """A new token of `user` (shown only now); `InvalidInput` for a bad or taken name."""
        if not user:
            raise InvalidInput("API tokens need a login: the app has none (OLLAMASTACK_AUTH).")
        name, days = token_name(name), expiry_days(days)
        items = await self._items(user)
        if any(item.value["name"] == name for item in items):
            raise InvalidInput(f"You already have a token named {name!r}; revoke it first.")
        if len(items) >= MAX_TOKENS:
            raise InvalidInput(f"You have {MAX_TOKENS} tokens, the most one user may have.")
        token = PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        value = {
            "user": user, "name": name, "created_at": now,
            "expires_at": now + days * 86_400 if days else None, "last_used": None,
        }
        await self._store.aput(NAMESPACE, digest(token), value, index=False)
        return token

    async def list(self, user: str) -> list[TokenInfo]:
        """`user`'s tokens, newest first."""
        infos = [
            TokenInfo(v["name"], v["created_at"], v["expires_at"], v["last_used"])
            for v in (item.value for item in await self._items(user))
        ]
        return sorted(infos, key=lambda t: t.created_at, reverse=True)

    async def revoke(self, user: str, name: object) -> None:
        """Delete `user`'s token called `name`; `InvalidInput` when there is none."""
        name = token_name(name)
        for item in await self._items(user):
            if item.value["name"] == name:
                await self._store.adelete(NAMESPACE, item.key)
                return
        raise InvalidInput(f"You have no token named {name!r}.")

    async def user_of(self, token: str) -> str | None:
        """The user a token acts as, or None: unknown, revoked or expired."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        key = digest(token)
        item = await self._store.aget(NAMESPACE, key)
        if item is None:
            return None
        value, now = item.value, self._clock()
        if value["expires_at"] is not None and now >= value["expires_at"]:
            return None
        if value["last_used"] is None or now - value["last_used"] >= USED_EVERY:
            await self._store.aput(NAMESPACE, key, {**value, "last_used": now}, index=False)
        return value["user"]
