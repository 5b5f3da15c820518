"""Okapi BM25: a conversation's document passages ranked by the question's words, when no
embedding model can make vectors (the embedded engine, or Ollama without one).

Small on purpose: one conversation holds at most some thousands of passages, so the index
is built in memory from their text when asked (and kept while the documents stay the same).
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Sequence

K1 = 1.5  # how fast a word's repeats stop counting
B = 0.75  # how much a long passage is discounted
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The words BM25 counts: letters and digits, case-folded.

    >>> words("Straße, STRASSE & 42nd_street!")
    ['strasse', 'strasse', '42nd', 'street']
    """
    return _WORD.findall(text.casefold())


class BM25:
    """The BM25 index of some passages.

    >>> index = BM25(["the cat sat on the mat", "dogs chase cats", "a quiet mat"])
    >>> [(i, round(s, 3)) for i, s in index.top("mat cat", 3)]
    [(0, 1.184), (2, 0.53)]
    >>> index.top("elephant", 3), index.top("", 3)
    ([], [])
    """

    def __init__(self, texts: Sequence[str]) -> None:
        counted = [Counter(words(text)) for text in texts]
        self._postings: dict[str, list[tuple[int, int]]] = {}  # word -> (passage, count)
        for passage, counts in enumerate(counted):
            for word, count in counts.items():
                self._postings.setdefault(word, []).append((passage, count))
        self._lengths = [sum(counts.values()) for counts in counted]
        self._average = sum(self._lengths) / len(self._lengths) if self._lengths else 0.0

    def __len__(self) -> int:
        return len(self._lengths)

    def idf(self, word: str) -> float:
        """How rare `word` is; never negative (the "+1" of Lucene's BM25), 0 when absent.

        >>> BM25(["a b", "a c"]).idf("a") < BM25(["a b", "a c"]).idf("b")
        True
        """
        found = len(self._postings.get(word, ()))
        if not found:
            return 0.0
        return math.log(1 + (len(self) - found + 0.5) / (found + 0.5))

    def scores(self, query: str) -> dict[int, float]:
        """The score of each passage holding a word of `query` (the others score 0)."""
        scores: dict[int, float] = {}
        for word in set(words(query)):
            idf = self.idf(word)
            for passage, count in self._postings.get(word, ()):
                norm = 1 - B + B * self._lengths[passage] / (self._average or 1.0)
                gain = idf * count * (K1 + 1) / (count + K1 * norm)
                scores[passage] = scores.get(passage, 0.0) + gain
        return scores

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """The `k` best (passage, score) pairs, best first; ties by passage order."""
        scores = self.scores(query)
        return heapq.nsmallest(k, ((p, s) for p, s in scores.items() if s > 0),
                               key=lambda pair: (-pair[1], pair[0]))
