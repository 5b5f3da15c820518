"""Which tool a message needs, by rules: one strategy per tool, each `select(message)`.

A model without native tool calling (or too small to choose well) gets its tool from here:
a confident rule names the tool and its arguments, found in the text itself. When no rule is
confident the prompted step asks the model for a JSON choice (`prompted_tools.py`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Choice:
    """A tool to call, with the arguments found in the message."""

    tool: str
    args: dict[str, Any]


_NUMBER = r"\d+(?:[.,]\d+)?"
_OPERATOR = r"(?:\*\*|[-+*/^x×÷%]|times|plus|minus|divided by|multiplied by|to the power of)"
_ARITHMETIC = re.compile(
    rf"(?:sqrt|square root of\s*)?\(?\s*{_NUMBER}\s*\)?(?:\s*{_OPERATOR}\s*\(?\s*{_NUMBER}\s*\)?)+",
    re.I,
)
_WORDS = {
    "times": "*", "multiplied by": "*", "x": "*", "×": "*", "plus": "+", "minus": "-",
    "divided by": "/", "÷": "/", "to the power of": "**", "^": "**",
}
_PERCENT = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:%|percent) of (\d+(?:\.\d+)?)", re.I)
_SQRT = re.compile(r"\b(?:sqrt|square root of)\s*\(?\s*(\d+(?:\.\d+)?)\s*\)?", re.I)


def arithmetic(message: str) -> Choice | None:
    """The calculator, with the expression written in the message.

    >>> arithmetic("What is 12*7?")
    Choice(tool='calculator', args={'expression': '12*7'})
    >>> arithmetic("how much is 3 times 4 plus 2")
    Choice(tool='calculator', args={'expression': '3 * 4 + 2'})
    >>> arithmetic("What's the square root of 144?")
    Choice(tool='calculator', args={'expression': 'sqrt(144)'})
    >>> arithmetic("What is 15% of 80?")
    Choice(tool='calculator', args={'expression': '80 * 15 / 100'})
    >>> arithmetic("I have 3 cats"), arithmetic("Call me at 555-1234")
    (None, None)
    """
    if root := _SQRT.search(message):
        return Choice("calculator", {"expression": f"sqrt({root[1]})"})
    if share := _PERCENT.search(message):
        return Choice("calculator", {"expression": f"{share[2]} * {share[1]} / 100"})
    match = _ARITHMETIC.search(message)
    if match is None:
        return None
    text = match[0].strip()
    if re.fullmatch(r"\d{3}-\d{4}", text) or re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", text):
        return None  # a phone number or a date, not a sum
    for word, symbol in _WORDS.items():
        pattern = rf"(?<=\d)\s*{re.escape(word)}\s*(?=[\d(])" if word == "x" else re.escape(word)
        text = re.sub(pattern, f" {symbol} " if len(word) > 1 else symbol, text, flags=re.I)
    text = " ".join(text.replace(",", "").split())
    try:
        ast.parse(text.replace("**", "*"), mode="eval")
    except SyntaxError:
        return None
    return Choice("calculator", {"expression": text})


_TIME = re.compile(
    r"\b(?:what(?:'s| is)? the (?:time|date|day)|what time|current (?:time|date)|the time in|"
    r"today's date|what day is it|which day|day of the week|time is it|date today)\b",
    re.I,
)
# A place: capitalised words after "in", "at" or "for" ("New York", "Rio de Janeiro"), or a
# single word that ends the message ("weather in paris?").
_PLACE = re.compile(
    r"\b(?:in|at|for) ([A-Z][\w'-]*(?:\s+(?:(?:de|la|del|am|on)\s+)?[A-Z][\w'-]*)*)"
)
_LAST_PLACE = re.compile(
    r"\b(?:in|at|for) ([a-z][\w'-]+)(?:\s+(?:right now|now|today))?[?.!]*$", re.I
)


def place_in(message: str) -> str | None:
    """The place a message names.

    >>> place_in("I'm calling a friend in Sydney. What time is it there?")
    'Sydney'
    >>> place_in("Is it raining in Rio de Janeiro right now?"), place_in("weather in paris?")
    ('Rio de Janeiro', 'paris')
    >>> place_in("What time is it?") is None
    True
    """
    if match := _PLACE.search(message):
        return match[1]
    if match := _LAST_PLACE.search(message.strip()):
        return match[1]
    return None


def clock(message: str) -> Choice | None:
    """current_time, with the place the message names as its time zone.

    >>> clock("What time is it in Tokyo?")
    Choice(tool='current_time', args={'timezone': 'Tokyo'})
    >>> clock("what's the date today?")
    Choice(tool='current_time', args={'timezone': 'UTC'})
    >>> clock("Time flies like an arrow") is None
    True
    """
    if not _TIME.search(message):
        return None
    return Choice("current_time", {"timezone": place_in(message) or "UTC"})


ANALYSIS = re.compile(  # a message asking for a text's statistics
    r"\b(?:analy[sz]e|count (?:the )?(?:words|characters|sentences)|how many "
    r"(?:words|characters|sentences)|word count|readability)\b",
    re.I,
)
_QUOTED = re.compile(r"[\"“'‘](.+)[\"”'’]", re.S)


def text_analysis(message: str) -> Choice | None:
    """text_analyzer, with the text quoted or after a colon in the message.

    >>> text_analysis('How many words are in "the quick brown fox"?')
    Choice(tool='text_analyzer', args={'text': 'the quick brown fox'})
    >>> text_analysis("Analyze this text: It was a dark night. Rain fell.")
    Choice(tool='text_analyzer', args={'text': 'It was a dark night. Rain fell.'})
    >>> text_analysis("Analyze the economy") is None  # no text to analyze
    True
    """
    if not ANALYSIS.search(message):
        return None
    if quoted := _QUOTED.search(message):
        return Choice("text_analyzer", {"text": quoted[1].strip()})
    _, colon, after = message.partition(":")
    if colon and after.strip():
        return Choice("text_analyzer", {"text": after.strip()})
    return None


_WEATHER = re.compile(
    r"\b(?:weather|temperature|forecast|rain(?:ing|y)?|snow(?:ing|y)?|sunny|warm|cold|hot|"
    r"umbrella|conditions|humid(?:ity)?|windy?)\b",
    re.I,
)


def weather(message: str) -> Choice | None:
    """weather, with the place the message names.

    >>> weather("What's the weather in Paris?")
    Choice(tool='weather', args={'location': 'Paris'})
    >>> weather("Is it raining in San Francisco right now?")
    Choice(tool='weather', args={'location': 'San Francisco'})
    >>> weather("I love rainy weather") is None
    True
    """
    if not _WEATHER.search(message) or (place := place_in(message)) is None:
        return None
    return Choice("weather", {"location": place})


STRATEGIES = {
    "calculator": arithmetic, "current_time": clock, "text_analyzer": text_analysis,
    "weather": weather,
}


def select_tools(message: str, offered: set[str]) -> list[Choice]:
    """The confident choices for `message` among the `offered` tools, first match first.

    >>> select_tools("What is 6*7?", {"calculator", "weather"})
    [Choice(tool='calculator', args={'expression': '6*7'})]
    >>> select_tools("Tell me a joke", {"calculator"})
    []
    """
    # the text to analyze may hold numbers or places: that rule goes first
    order = ["text_analyzer", "weather", "current_time", "calculator"]
    for name in order:
        if name in offered and (choice := STRATEGIES[name](message)) is not None:
            return [choice]
    return []
