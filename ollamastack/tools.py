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

import httpx
from langchain_core.tools import BaseTool, tool
from pydantic import BaseModel, ValidationError

from ollamastack.calculator import CalculationError, evaluate, format_number

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


CURRENT_FIELDS = (
    "temperature_2m,apparent_temperature,relative_humidity_2m,wind_speed_10m,weather_code"
)

WMO_CODES = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snowfall",
    73: "moderate snowfall",
    75: "heavy snowfall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}


class _Place(BaseModel):
    name: str
    latitude: float
    longitude: float
    country: str = ""
    admin1: str = ""


class _Geocoding(BaseModel):
    results: list[_Place] = []


class _Current(BaseModel):
    time: str = ""
    temperature_2m: float | None = None
    apparent_temperature: float | None = None
    relative_humidity_2m: float | None = None
    wind_speed_10m: float | None = None
    weather_code: int | None = None


class _Forecast(BaseModel):
    current: _Current
    current_units: dict[str, str] = {}


def make_weather_tool(geocoding_url: str, forecast_url: str, timeout: float) -> BaseTool:
    """The `weather` tool, asking Open-Meteo (or a stand-in at these URLs) with this timeout."""

    @tool("weather", parse_docstring=True)
    async def weather(location: str) -> str:
        """Get the current weather for a place: conditions, temperature, humidity and wind.

        Args:
            location: The city or place name only, for example "Paris" or "San Francisco"
                (without country or region).
        """
        name = location.strip()
        if not name or len(name) > 200:
            return "Error: give a place name of 1 to 200 characters, such as 'Paris'."
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                params = {"name": name, "count": 1, "language": "en", "format": "json"}
                response = await client.get(geocoding_url, params=params)
                places = _Geocoding.model_validate_json(response.raise_for_status().content)
                if not places.results:
                    return (
                        f"Error: no place called {name!r} was found. Check the spelling, "
                        "or give just the city name without the country."
                    )
                place = places.results[0]
                params = {
                    "latitude": place.latitude,
                    "longitude": place.longitude,
                    "current": CURRENT_FIELDS,
                    "timezone": "auto",
                }
                response = await client.get(forecast_url, params=params)
                forecast = _Forecast.model_validate_json(response.raise_for_status().content)
        except httpx.TimeoutException:
            return (
                f"Error: the weather service did not answer within {timeout:g} seconds; "
                "try again later."
            )
        except httpx.HTTPStatusError as error:
            return (
                f"Error: the weather service answered with HTTP {error.response.status_code}; "
                "try again later."
            )
        except httpx.HTTPError as error:
            reason = str(error) or type(error).__name__
            return f"Error: the weather service could not be reached ({reason}); try again later."
        except ValidationError:
            return "Error: the weather service sent an unexpected answer; try again later."
        return _describe_weather(place, forecast)

    return weather


def _describe_weather(place: _Place, forecast: _Forecast) -> str:
    current, units = forecast.current, forecast.current_units
    names = (place.name, place.admin1, place.country)
    where = ", ".join(dict.fromkeys(name for name in names if name))  # "Berlin, Berlin" once
    when = f" at {current.time.replace('T', ' ')} local time" if current.time else ""
    parts = []
    if current.weather_code is not None:
        code = current.weather_code
        parts.append(WMO_CODES.get(code, f"weather code {code}").capitalize())
    if current.temperature_2m is not None:
        temperature = _measure(current.temperature_2m, units.get("temperature_2m", "°C"))
        if current.apparent_temperature is not None:
            feels = _measure(current.apparent_temperature, units.get("apparent_temperature", "°C"))
            temperature += f" (feels like {feels})"
        parts.append(temperature)
    if current.relative_humidity_2m is not None:
        humidity = _measure(current.relative_humidity_2m, units.get("relative_humidity_2m", "%"))
        parts.append(f"humidity {humidity}")
    if current.wind_speed_10m is not None:
        wind = _measure(current.wind_speed_10m, units.get("wind_speed_10m", "km/h"))
        parts.append(f"wind {wind}")
    return f"Current weather in {where}{when}: {', '.join(parts) or 'no data'}."


def _measure(value: float, unit: str) -> str:
    """
    >>> _measure(8.4, "°C"), _measure(81.0, "%"), _measure(14.2, "km/h")
    ('8.4°C', '81%', '14.2 km/h')
    """
    space = "" if unit == "%" or unit.startswith("°") else " "
    return f"{value:g}{space}{unit}"


def build_tools(settings: Settings) -> list[BaseTool]:
    """The four tools, with `weather` configured from the settings."""
    weather = make_weather_tool(
        settings.weather_geocoding_url, settings.weather_forecast_url, settings.tool_timeout
    )
    return [calculator, text_analyzer, current_time, weather]
