"""The tool-use evaluation's prompts (`bench/tool_eval.py`): what each one asks, the tool a good
model calls (or none), the call it makes, the answer it gives, and the check of an answer.

Checks read only what a turn produced (`Outcome`), never the model's internals, so the same
set grades the embedded model in every tool mode and the scripted small-model replies.
Expected values are written out here, not computed by the app's own tools.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

KINDS = ("arithmetic", "time", "text", "weather", "none")
TOOL_OF = {"arithmetic": "calculator", "time": "current_time", "text": "text_analyzer",
           "weather": "weather", "none": None}


@dataclass(frozen=True)
class Outcome:
    """What one turn did: every tool call (name, args), every tool result, the answer text,
    and when it ended (what "now" means to the checks of times and dates)."""

    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    results: tuple[str, ...] = ()
    answer: str = ""
    bad_results: int = 0  # results that are errors ("Error: ..." lines, failed tools)
    error: str = ""  # why the turn ended early (a TurnError, the harness's time limit)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def tool(self) -> str | None:
        """The first tool called, or None."""
        return self.calls[0][0] if self.calls else None


@dataclass(frozen=True)
class Prompt:
    """One question, its kind (`KINDS`), the call a good model makes, and how to grade it."""

    text: str
    kind: str
    args: dict[str, Any]  # the arguments of that call; {} when no tool is needed
    check: Callable[[Outcome], bool]  # the final answer is right
    ideal: Callable[[], str]  # a right final answer, written when asked (times move)

    @property
    def tool(self) -> str | None:
        return TOOL_OF[self.kind]


# -- reading numbers, times and dates out of an answer --

_NUMBER = re.compile(r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
          "fourteen fifteen sixteen seventeen eighteen nineteen twenty").split()


def numbers_in(text: str) -> list[float]:
    """Every number written in `text`, thousands separators and small number words included.

    >>> numbers_in("12 times 7 is 84.0; 1,035 and -3.5, but not x2. Four words.")
    [12.0, 7.0, 84.0, 1035.0, -3.5, 4.0]
    """
    found = [float(n.replace(",", "").replace("−", "-")) for n in _NUMBER.findall(text)]
    words = re.findall(r"[a-z]+", text.lower())
    return found + [float(_WORDS.index(w)) for w in words if w in _WORDS]


def mentions(value: float) -> Callable[[Outcome], bool]:
    """The answer states `value`."""
    return lambda outcome: any(abs(n - value) < 1e-9 for n in numbers_in(outcome.answer))


_CLOCK = re.compile(r"\b(\d{1,2})[:.](\d{2})(?::\d{2})?(?:\s*([ap])\.?\s?m\b\.?)?", re.I)


def says_time(zone: str, slack_minutes: int = 5) -> Callable[[Outcome], bool]:
    """The answer gives the time of day in `zone` when the turn ended (12- or 24-hour, within
    the slack).

    >>> at, tokyo = datetime(2026, 11, 25, 7, 4, tzinfo=UTC), says_time("Asia/Tokyo")
    >>> [tokyo(Outcome(answer=a, at=at)) for a in ("It is 16:04 in Tokyo.", "4:06 p.m.")]
    [True, True]
    >>> [tokyo(Outcome(answer=a, at=at)) for a in ("It is 07:04 (UTC).", "16:30", "4:04 am")]
    [False, False, False]
    """

    def check(outcome: Outcome) -> bool:
        now = outcome.at.astimezone(ZoneInfo(zone))
        target = now.hour * 60 + now.minute
        for hour, minute, half in _CLOCK.findall(outcome.answer):
            h, m = int(hour), int(minute)
            if h > 23 or m > 59:
                continue
            if half:
                hours = [h % 12 + (12 if half.lower() == "p" else 0)]
            else:
                hours = [h, h + 12] if h < 12 else [h]
            for value in hours:
                gap = abs(value * 60 + m - target) % (24 * 60)
                if min(gap, 24 * 60 - gap) <= slack_minutes:
                    return True
        return False

    return check


_ISO_DATE = re.compile(r"ISO 8601: (\d{4}-\d{2}-\d{2})")


def _dates(outcome: Outcome) -> set[date]:
    """The day the turn ended in UTC, and the date in any time zone its tool results named."""
    found = {outcome.at.astimezone(UTC).date()}
    for result in outcome.results:
        found |= {date.fromisoformat(d) for d in _ISO_DATE.findall(result)}
    return found


def says_date(outcome: Outcome) -> bool:
    """The answer gives today's date (`_dates`), as words or ISO 8601.

    >>> at = datetime(2026, 11, 25, 16, 4, tzinfo=UTC)
    >>> answers = ("Today is November 25, 2026.", "the 25th of November", "It is 2026-11-25.",
    ...            "It is November 28.", "25 December")
    >>> [says_date(Outcome(answer=a, at=at)) for a in answers]
    [True, True, True, False, False]
    """
    text = outcome.answer.lower()
    for day in _dates(outcome):
        month = f"{day:%B}".lower()
        suffix = r"(?:st|nd|rd|th)?"
        if day.isoformat() in text or re.search(
            rf"\b{month}\s+0?{day.day}{suffix}\b|\b0?{day.day}{suffix}\s+(?:of\s+)?{month}\b", text
        ):
            return True
    return False


def says_weekday(outcome: Outcome) -> bool:
    """The answer names today's day of the week (`_dates`) and no other."""
    text = outcome.answer.lower()
    named = {d for d in ("monday tuesday wednesday thursday friday saturday sunday").split()
             if d in text}
    return bool(named) and named <= {f"{day:%A}".lower() for day in _dates(outcome)}


def says(*words: str) -> Callable[[Outcome], bool]:
    """The answer contains one of `words` (any case)."""
    return lambda outcome: any(w.lower() in outcome.answer.lower() for w in words)


def answered(outcome: Outcome) -> bool:
    """An open request (a greeting, a poem): any answer in words will do."""
    return bool(re.search(r"[^\W\d_]{2}", outcome.answer))


# -- the prompts --


def _arithmetic(text: str, expression: str, value: float) -> Prompt:
    shown = f"{value:,}" if float(value).is_integer() else str(value)
    return Prompt(text, "arithmetic", {"expression": expression}, mentions(value),
                  lambda: f"The answer is {shown}.")


def _clock(text: str, zone: str, city: str) -> Prompt:
    return Prompt(text, "time", {"timezone": zone}, says_time(zone),
                  lambda: f"It is {datetime.now(ZoneInfo(zone)):%H:%M} in {city}.")


def _text(text: str, analyzed: str, count: float, what: str) -> Prompt:
    shown = f"{count:g}"
    return Prompt(text, "text", {"text": analyzed}, mentions(count),
                  lambda: f"It has {shown} {what}.")


@dataclass(frozen=True)
class Place:
    """A place the weather stand-in knows, and the conditions it reports there."""

    name: str
    latitude: float
    longitude: float
    country: str
    temperature: float
    code: int  # WMO weather code
    conditions: str  # the code in words, as Open-Meteo's table names it

    def geocoding(self) -> dict[str, Any]:
        return {"name": self.name, "latitude": self.latitude, "longitude": self.longitude,
                "country": self.country}

    def current(self) -> dict[str, Any]:
        return {"time": "2026-11-25T16:00", "interval": 900,
                "temperature_2m": self.temperature, "apparent_temperature": self.temperature - 2,
                "relative_humidity_2m": 70, "wind_speed_10m": 12.0, "weather_code": self.code}


PLACES = {
    p.name: p for p in (
        Place("Paris", 48.85341, 2.3488, "France", 8.4, 2, "partly cloudy"),
        Place("London", 51.50853, -0.12574, "United Kingdom", 11.2, 61, "slight rain"),
        Place("Berlin", 52.52437, 13.41053, "Germany", 3.7, 3, "overcast"),
        Place("Tokyo", 35.6895, 139.69171, "Japan", 16.8, 0, "clear sky"),
        Place("New York", 40.71427, -74.00597, "United States", 21.3, 1, "mainly clear"),
        Place("Seattle", 47.60621, -122.33207, "United States", 9.6, 63, "moderate rain"),
        Place("Madrid", 40.4165, -3.70256, "Spain", 27.1, 0, "clear sky"),
    )
}


def _weather(text: str, name: str) -> Prompt:
    place = PLACES[name]

    def check(outcome: Outcome) -> bool:
        temperatures = (place.temperature, round(place.temperature))
        return any(mentions(t)(outcome) for t in temperatures) or says(place.conditions)(outcome)

    return Prompt(text, "weather", {"location": name}, check,
                  lambda: f"In {name} it is {place.temperature}°C, {place.conditions}.")


def _none(text: str, check: Callable[[Outcome], bool], ideal: str) -> Prompt:
    return Prompt(text, "none", {}, check, lambda: ideal)


def _today(prompt: str, check: Callable[[Outcome], bool], answer: Callable[[date], str]) -> Prompt:
    return Prompt(prompt, "time", {"timezone": "UTC"}, check,
                  lambda: answer(datetime.now(UTC).date()))


PROMPTS: list[Prompt] = [
    _arithmetic("What is 12*7?", "12*7", 84),
    _arithmetic("Calculate 1234 + 5678.", "1234 + 5678", 6912),
    _arithmetic("How much is 45 times 23?", "45 * 23", 1035),
    _arithmetic("What's 2 to the power of 10?", "2 ** 10", 1024),
    _arithmetic("What is the square root of 144?", "sqrt(144)", 12),
    _arithmetic("Compute (3 + 4) * 5", "(3 + 4) * 5", 35),
    _arithmetic("What is 100 divided by 8?", "100 / 8", 12.5),
    _arithmetic("987 minus 123 equals what?", "987 - 123", 864),
    _arithmetic("What is 15% of 80?", "80 * 15 / 100", 12),
    _arithmetic("I buy 3 books at 12.50 each. How much do I spend in total?", "3 * 12.50", 37.5),
    _clock("What time is it in Tokyo?", "Asia/Tokyo", "Tokyo"),
    _clock("What's the current time in New York?", "America/New_York", "New York"),
    _clock("Tell me the time in London right now.", "Europe/London", "London"),
    _clock("I'm about to call a friend in Sydney. What time is it there?", "Australia/Sydney",
           "Sydney"),
    _clock("Current time in UTC, please.", "UTC", "UTC"),
    _today("What is today's date?", says_date, lambda d: f"Today is {d:%B} {d.day}, {d.year}."),
    _today("Which day of the week is it today?", says_weekday, lambda d: f"Today is {d:%A}."),
    _text("How many words are in: 'the quick brown fox'", "the quick brown fox", 4, "words"),
    _text('Count the words in "She sells sea shells by the sea shore."',
          "She sells sea shells by the sea shore.", 8, "words"),
    _text('How many characters are in the word "encyclopedia"?', "encyclopedia", 12,
          "characters"),
    _text('How many sentences does this text have: "I came. I saw. I conquered."',
          "I came. I saw. I conquered.", 3, "sentences"),
    _text('Analyze this text and tell me its word count: "To be or not to be, that is the '
          'question."', "To be or not to be, that is the question.", 10, "words"),
    _text('What is the Flesch readability score of "The cat sat on the mat."?',
          "The cat sat on the mat.", 116.1, "points of reading ease"),
    _text("Give me the word count for: It was a bright cold day in April, and the clocks were "
          "striking thirteen.",
          "It was a bright cold day in April, and the clocks were striking thirteen.", 14,
          "words"),
    _weather("What's the weather in Paris?", "Paris"),
    _weather("Is it raining in London right now?", "London"),
    _weather("How warm is it in Berlin today?", "Berlin"),
    _weather("Weather report for Tokyo, please.", "Tokyo"),
    _weather("What's the temperature in New York?", "New York"),
    _weather("Should I take an umbrella in Seattle today?", "Seattle"),
    _weather("Tell me the current conditions in Madrid.", "Madrid"),
    _none("Hi!", answered, "Hello! How can I help you today?"),
    _none("Write a haiku about autumn.", answered,
          "Red leaves drift and fall,\ncool wind hums through bare trees,\nthe year breathes out."),
    _none("What is the capital of France?", says("Paris"), "The capital of France is Paris."),
    _none("Who wrote Romeo and Juliet?", says("Shakespeare"),
          "William Shakespeare wrote Romeo and Juliet."),
    _none("Tell me a joke.", answered,
          "Why did the scarecrow win an award? He was outstanding in his field."),
    _none("What year did World War II end?", mentions(1945), "World War II ended in 1945."),
    _none("Translate 'good morning' into Spanish.", says("buenos"),
          "'Good morning' in Spanish is 'buenos días'."),
    _none("What colour is the sky on a clear day?", says("blue"), "It is blue."),
    _none("Thanks for your help!", answered, "You're welcome!"),
    _none("I have 3 cats and 2 dogs. Suggest names for them.", answered,
          "Cats: Miso, Pepper, Luna. Dogs: Biscuit and Max."),
    _none("Suggest a catchy name for a weather app.", answered, "How about 'SkyCast'?"),
    _none("Explain in one sentence what a time zone is.", says("time"),
          "A time zone is a region that keeps the same standard time."),
]


def sample(per_kind: int) -> list[Prompt]:
    """The first `per_kind` prompts of each kind, in `KINDS` order (for quick runs)."""
    return [p for kind in KINDS for p in [q for q in PROMPTS if q.kind == kind][:per_kind]]
