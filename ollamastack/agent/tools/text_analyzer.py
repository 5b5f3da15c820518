"""The `text_analyzer` tool: counts, reading time, frequent words and readability of a text."""

from __future__ import annotations

import math
import re
from collections import Counter

from langchain_core.tools import tool

MAX_TEXT_CHARS = 100_000
WORDS_PER_MINUTE = 200

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
# A match may start only where a run of end marks starts (the lookbehind), and neither run gives
# back characters (possessive): without both, a long run not followed by a space, such as 100,000
# dots, is rescanned from every position, which is quadratic. The matches are the same.
_SENTENCE_END = re.compile(r"(?<![.!?…])[.!?…]++[\"'”’)\]]*+(?=\s|$)")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_STOP_WORDS = frozenset(
    "a about above after again against all also am an and any are as at be because been before"
    " being below between both but by can could did do does doing down during each few for from"
    " further had has have having he her here hers herself him himself his how i if in into is"
    " it its itself just me more most my myself no nor not now of off on once only or other our"
    " ours ourselves out over own same she should so some such than that the their theirs them"
    " themselves then there these they this those through to too under until up very was we were"
    " what when where which while who whom why will with would you your yours yourself"
    " yourselves it's don't i'm can't won't isn't that's there's".split()
)
_READABILITY = (
    (90, "very easy"),
    (80, "easy"),
    (70, "fairly easy"),
    (60, "standard"),
    (50, "fairly difficult"),
    (30, "difficult"),
    (-math.inf, "very difficult"),
)


@tool(parse_docstring=True)
def text_analyzer(text: str) -> str:
    """Count the characters, words, sentences and paragraphs of a text, and estimate its reading
    time, most frequent words and readability (Flesch reading ease).

    Args:
        text: The text to analyze, exactly as written.
    """
    if not text.strip():
        return "Error: the text is empty; pass the text to analyze."
    if len(text) > MAX_TEXT_CHARS:
        limit = MAX_TEXT_CHARS
        return f"Error: the text is too long ({len(text):,} characters; the limit is {limit:,})."
    words = [word.replace("’", "'") for word in _WORD.findall(text)]
    if not words:
        return "Error: the text contains no words."
    sentences = sum(1 for part in _SENTENCE_END.split(text) if _WORD.search(part))
    paragraphs = sum(1 for part in _PARAGRAPH_BREAK.split(text) if part.strip())
    letters = sum(len(word) - word.count("'") - word.count("-") for word in words)
    syllables = sum(_syllables(word) for word in words)
    score = 206.835 - 1.015 * len(words) / sentences - 84.6 * syllables / len(words)
    label = next(name for floor, name in _READABILITY if score >= floor)
    counts = Counter(
        word
        for word in map(str.lower, words)
        if word not in _STOP_WORDS and any(char.isalpha() for char in word)
    )
    frequent = ", ".join(f"{word} ({count})" for word, count in counts.most_common(5))
    return "\n".join(
        [
            f"Characters: {len(text):,} ({sum(not c.isspace() for c in text):,} without spaces)",
            f"Words: {len(words):,}",
            f"Sentences: {sentences:,}",
            f"Paragraphs: {paragraphs:,}",
            f"Average word length: {letters / len(words):.1f} characters",
            f"Reading time: {_reading_time(len(words))} at {WORDS_PER_MINUTE} words per minute",
            f"Most frequent words: {frequent or 'none besides common words'}",
            f"Readability: {score:.1f} on the Flesch reading ease scale ({label})",
        ]
    )


def _syllables(word: str) -> int:
    """Estimate the syllables of an English word from its vowel groups.

    >>> [_syllables(w) for w in ("the", "cat", "over", "lazy", "table", "cake", "rhythm", "2026")]
    [1, 1, 2, 2, 2, 1, 1, 1]
    """
    word = word.lower()
    groups = len(re.findall(r"[aeiouy]+", word))
    if groups > 1 and word.endswith("e") and not word.endswith(("le", "ee")):
        groups -= 1
    return max(groups, 1)


def _reading_time(words: int) -> str:
    """
    >>> [_reading_time(n) for n in (1, 20, 199, 250, 1000)]
    ['about 1 second', 'about 6 seconds', 'about 1 min', 'about 1 min', 'about 5 min']
    """
    seconds = max(1, round(words * 60 / WORDS_PER_MINUTE))
    if seconds < 60:
        return f"about {seconds} second{'s' if seconds > 1 else ''}"
    return f"about {round(seconds / 60)} min"
