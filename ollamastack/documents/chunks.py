"""Cutting a document's pages into passages small enough to index and quote.

A passage never spans two pages, so each keeps the page a citation points to. It ends at the
best boundary in its second half (a paragraph, else a line, a sentence, a clause, a word)
and the next one starts a little earlier (the overlap), at a sentence or word start, so a
sentence cut in two is whole in one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ollamastack.documents.readers import Page

# Where a passage may end, best first: (what precedes the cut, characters of it kept).
_ENDS = (("\n\n", 0), ("\n", 0), (". ", 1), ("? ", 1), ("! ", 1), ("。", 1), ("; ", 1),
         (", ", 1), (" ", 0))
_STARTS = re.compile(r"(?<=[.!?。])\s+|\n")  # where a passage may begin, after this
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Chunk:
    """A passage of one page (`page` is None where the format has no pages)."""

    page: int | None
    text: str


def split(pages: list[Page], *, chars: int = 1200, overlap: int = 150) -> list[Chunk]:
    """Passages of at most `chars` characters, in order, each within one page.

    >>> split([Page(1, "First para.\\n\\nSecond para is here."), Page(2, "Short.")], chars=20,
    ...       overlap=0)  # doctest: +NORMALIZE_WHITESPACE
    [Chunk(page=1, text='First para.'), Chunk(page=1, text='Second para is here.'),
     Chunk(page=2, text='Short.')]
    >>> [c.text for c in split([Page(None, "One two three. Four five six. Seven eight nine.")],
    ...                        chars=30, overlap=16)]
    ['One two three. Four five six.', 'Four five six. Seven eight', 'Seven eight nine.']
    >>> [c.text for c in split([Page(3, "abcdefghij")], chars=4, overlap=1)]  # no boundary
    ['abcd', 'defg', 'ghij']
    """
    if chars < 1 or not 0 <= overlap < chars:
        raise ValueError(f"chars must be positive and overlap below it (got {chars}, {overlap})")
    chunks = []
    for page in pages:
        text, start = page.text, 0
        while True:
            start = _SPACE.match(text, start).end() if text[start:start + 1].isspace() else start
            if start >= len(text):
                break
            end = len(text) if len(text) - start <= chars else _end(text, start, start + chars)
            chunks.append(Chunk(page.number, text[start:end].strip()))
            if end >= len(text):
                break
            start = _resume(text, max(end - overlap, start + 1), end)
    return chunks


def estimate_tokens(text: str) -> int:
    """About how many tokens a model's tokenizer makes of `text` (4 characters each, the usual
    rule for English; other scripts take more).

    >>> estimate_tokens(""), estimate_tokens("abc"), estimate_tokens("x" * 1200)
    (0, 1, 300)
    """
    return (len(text) + 3) // 4


def _end(text: str, start: int, limit: int) -> int:
    """Where to end a passage that begins at `start` and may reach `limit`."""
    floor = start + (limit - start) // 2
    for mark, kept in _ENDS:
        if (at := text.rfind(mark, floor, limit)) != -1:
            return at + kept
    return limit


def _resume(text: str, low: int, end: int) -> int:
    """Where the next passage begins: the first sentence or line start after `low`, else the
    first word start, else `low` itself; `end` (no overlap) when that is all there is."""
    if low >= end:
        return end
    if found := _STARTS.search(text, low, end):
        return found.end() if found.end() < end else end
    space = text.find(" ", low, end)
    return space + 1 if space != -1 else low
