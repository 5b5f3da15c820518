"""What both search engines share: the query's words, the messages indexed, the interface."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ollamastack.errors import InvalidInput
from ollamastack.validation import clean_text

QUERY_CHARS = 200  # the longest query accepted
QUERY_WORDS = 16  # words past these are ignored
RESULTS = 20  # conversations a search returns at most
SNIPPET_WORDS = 16  # about how many words of the message a snippet shows
_WORD = re.compile(r"[^\W_]+")  # letters and digits: what both engines' tokenizers keep


@dataclass(frozen=True)
class Hit:
    """The newest message of one conversation that matched."""

    session_id: str
    message_index: int
    snippet: str  # plain text around the matched words


@dataclass(frozen=True)
class Found:
    """A search result as the service returns it: the hit and its conversation's title."""

    session_id: str
    title: str
    snippet: str
    message_index: int


def query_words(query: object) -> list[str]:
    """The words searched for; `InvalidInput` for an empty, over-long or control-character
    query. Operators and punctuation are not words.

    >>> query_words('  "foo AND (bar* ')
    ['foo', 'AND', 'bar']
    >>> query_words("((")
    []
    >>> query_words("a\\tb")
    Traceback (most recent call last):
    ...
    ollamastack.errors.InvalidInput: The search may not contain line breaks or control characters.
    """
    text = clean_text(query, what="search", limit=QUERY_CHARS)
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise InvalidInput("The search may not contain line breaks or control characters.")
    return _WORD.findall(text)[:QUERY_WORDS]


def searchable(messages: Sequence[Any], start: int = 0) -> list[tuple[int, str]]:
    """(index, text) of the user's and the model's messages from `start` on that have text."""
    return [
        (index, message.text)
        for index, message in enumerate(messages[start:], start)
        if message.type in ("human", "ai") and message.text.strip()
    ]


class SearchIndex(ABC):
    """The rows of one database; `add` and `remove` keep them in step, `search` reads."""

    backfill: asyncio.Task[int | None] | None = None  # the start-up catch-up, while open

    @abstractmethod
    async def setup(self) -> None:
        """Create the tables and indexes when missing."""

    @abstractmethod
    async def add(
        self, session_id: str, owner: str, start: int, entries: Sequence[tuple[int, str]]
    ) -> None:
        """Index `entries` ((index, text), from `searchable`) as the messages of
        `session_id` from `start` on, replacing what was indexed there (a turn stored again)."""

    @abstractmethod
    async def remove(self, session_id: str, start: int = 0) -> None:
        """Forget the messages of `session_id` from `start` on (undo; all: delete)."""

    async def search(self, owner: str, query: object, limit: int = RESULTS) -> list[Hit]:
        """`owner`'s conversations with every word of `query` (the last as a prefix),
        newest match first, one hit each."""
        words = query_words(query)
        if not words:
            return []
        await self.flush()  # what this process's turns added is found
        return await self._search(owner, words, limit)

    @abstractmethod
    async def flush(self) -> None:
        """Wait until every `add` made so far is in the database (where it is queued)."""

    @abstractmethod
    async def indexed_from_start(self, session_ids: Sequence[str]) -> set[str]:
        """Those of `session_ids` whose first message is in the index. Each turn indexes
        its own messages, so these hold all of theirs (unless a later write failed)."""

    @abstractmethod
    async def fill(self, session_id: str, owner: str, entries: Sequence[tuple[int, str]]) -> None:
        """Index `entries` of a conversation found missing from the index, those before its
        first indexed message only: a turn indexed meanwhile is newer and stays."""

    @asynccontextmanager
    async def backfill_lock(self) -> AsyncIterator[bool]:
        """Whether this process is the one to backfill, held until the block ends (a SQLite
        file is served by one process: always)."""
        yield True

    @abstractmethod
    async def _search(self, owner: str, words: list[str], limit: int) -> list[Hit]:
        """The hits of `words` (already split and checked)."""
