"""The agent's tools. Each docstring is what the model reads; each tool answers in sentences.

Tools never raise for bad input or network trouble: they return a line starting with "Error:"
that the model can pass on.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from langchain_core.tools import BaseTool, tool

from ollamastack.calculator import CalculationError, evaluate, format_number
from ollamastack.weather import make_weather_tool

if TYPE_CHECKING:
    from ollamastack.settings import Settings


@tool(parse_docstring=True)
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly and return the result.

    Supports + - * / // % ** (^ also means power), parentheses, the constants pi, e and tau,
    and the functions sqrt, cbrt, exp, log (natural, or log(x, base)), log10, log2, sin, cos,
    tan, asin, acos, atan, atan2, sinh, cosh, tanh, asinh, acosh, atanh, degrees, radians,
    hypot, abs, round, floor, ceil, trunc, min, max, factorial, gcd and lcm. Angles are in
    radians.

    Args:
        expression: The expression to evaluate, for example "2 * (3 + 4) ** 2" or "sqrt(2) / 2".
    """
    try:
        return format_number(evaluate(expression))
    except CalculationError as error:
        return f"Error: {error}"


MAX_TEXT_CHARS = 100_000
WORDS_PER_MINUTE = 200

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")
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


@tool(parse_docstring=True)
def current_time(timezone: str = "UTC") -> str:
    """Get the current date and time in a time zone.

    Args:
        timezone: An IANA time zone name in Area/City form, for example "Europe/Paris",
            "America/New_York" or "Asia/Tokyo". Defaults to "UTC".
    """
    try:
        zone = _find_zone(timezone)
    except LookupError as error:
        return f"Error: {error}"
    return describe_time(datetime.now(zone))


def describe_time(moment: datetime) -> str:
    """Describe an aware datetime in words and in ISO 8601.

    >>> print(describe_time(datetime(2026, 11, 25, 16, 4, 5, tzinfo=ZoneInfo("Europe/Paris"))))
    Europe/Paris: Wednesday, 25 November 2026, 16:04:05 CET (UTC+01:00)
    ISO 8601: 2026-11-25T16:04:05+01:00
    """
    minutes = round(moment.utcoffset().total_seconds() / 60)
    sign = "+" if minutes >= 0 else "-"
    offset = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    when = f"{moment:%A}, {moment.day} {moment:%B %Y, %H:%M:%S}"
    return (
        f"{moment.tzinfo}: {when} {moment.tzname()} ({offset})\n"
        f"ISO 8601: {moment.isoformat(timespec='seconds')}"
    )


def _find_zone(name: str) -> ZoneInfo:
    key = name.strip() or "UTC"
    if key.upper() in {"UTC", "GMT", "Z"}:
        key = "UTC"
    if len(key) <= 64:
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: path-like keys
            pass
        if alias := _zone_aliases().get(key.lower().replace(" ", "_")):
            return ZoneInfo(alias)
    raise LookupError(
        f"unknown time zone {name!r}. Use an IANA name in Area/City form, such as "
        "Europe/Paris, America/New_York, Asia/Tokyo, or UTC."
    )


@functools.cache
def _zone_aliases() -> dict[str, str]:
    """Lower-case zone names, and city names that name a single zone ("tokyo")."""
    zones = {zone: zone.rsplit("/", 1)[-1].lower() for zone in available_timezones()}
    cities = Counter(zones.values())
    aliases = {city: zone for zone, city in zones.items() if "/" in zone and cities[city] == 1}
    return aliases | {zone.lower(): zone for zone in zones}


def build_tools(settings: Settings) -> list[BaseTool]:
    """The four tools, with `weather` (`ollamastack/weather.py`) configured from the settings."""
    weather = make_weather_tool(
        settings.weather_geocoding_url, settings.weather_forecast_url, settings.tool_timeout
    )
    return [calculator, text_analyzer, current_time, weather]
