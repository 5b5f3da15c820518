"""The four tools: exact answers, readable errors, bounded work, and the schema the model sees."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from ollamastack.agent.tools import (
    build_tools,
    calculator,
    current_time,
    text_analyzer,
)
from ollamastack.agent.tools.arithmetic import CONSTANTS, FUNCTIONS
from ollamastack.agent.tools.weather import CURRENT_FIELDS, make_weather_tool
from ollamastack.settings import Settings
from tests.support.bounded import answer_within
from tests.support.weather_server import (
    FORECAST_PATH,
    GEOCODING_PATH,
    RecordedRequest,
    WeatherServer,
)

PARIS = {
    "id": 2988507,
    "name": "Paris",
    "latitude": 48.85341,
    "longitude": 2.3488,
    "country_code": "FR",
    "timezone": "Europe/Paris",
    "country": "France",
    "admin1": "Île-de-France",
}
PARIS_NOW = {
    "time": "2026-11-25T16:00",
    "interval": 900,
    "temperature_2m": 8.4,
    "apparent_temperature": 5.9,
    "relative_humidity_2m": 81,
    "wind_speed_10m": 14.2,
    "weather_code": 2,
}


@pytest.fixture
def weather_server() -> Iterator[WeatherServer]:
    with WeatherServer() as server:
        yield server


@pytest.fixture
def weather(weather_server: WeatherServer) -> BaseTool:
    settings = Settings(
        weather_geocoding_url=weather_server.geocoding_url,
        weather_forecast_url=weather_server.forecast_url,
        tool_timeout=5,
    )
    return build_tools(settings)[3]


# The schema that reaches Ollama


def test_tool_schemas():
    tools = build_tools(Settings())
    assert [convert_to_openai_tool(tool)["function"] for tool in tools] == [
        {
            "name": "calculator",
            "description": (
                "Evaluate an arithmetic expression exactly and return the result. "
                "Supports + - * / // % ** (^ also means power), parentheses, the constants pi, "
                "e and tau,\nand the functions sqrt, cbrt, exp, log (natural, or log(x, base)), "
                "log10, log2, sin, cos,\ntan, asin, acos, atan, atan2, sinh, cosh, tanh, asinh, "
                "acosh, atanh, degrees, radians,\nhypot, abs, round, floor, ceil, trunc, min, "
                "max, factorial, gcd and lcm. Angles are in\nradians."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "expression": {
                        "type": "string",
                        "description": (
                            'The expression to evaluate, for example "2 * (3 + 4) ** 2" '
                            'or "sqrt(2) / 2".'
                        ),
                    }
                },
                "required": ["expression"],
            },
        },
        {
            "name": "text_analyzer",
            "description": (
                "Count the characters, words, sentences and paragraphs of a text, and estimate "
                "its reading\ntime, most frequent words and readability (Flesch reading ease)."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "text": {
                        "type": "string",
                        "description": "The text to analyze, exactly as written.",
                    }
                },
                "required": ["text"],
            },
        },
        {
            "name": "current_time",
            "description": "Get the current date and time in a time zone.",
            "parameters": {
                "type": "object",
                "properties": {
                    "timezone": {
                        "type": "string",
                        "default": "UTC",
                        "description": (
                            'An IANA time zone name in Area/City form, for example "Europe/Paris", '
                            '"America/New_York" or "Asia/Tokyo". Defaults to "UTC".'
                        ),
                    }
                },
            },
        },
        {
            "name": "weather",
            "description": (
                "Get the current weather for a place: conditions, temperature, humidity and wind."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": (
                            'The city or place name only, for example "Paris" or "San Francisco" '
                            "(without country or region)."
                        ),
                    }
                },
                "required": ["location"],
            },
        },
    ]


def test_calculator_description_names_every_function_and_constant():
    described = set(re.findall(r"[a-z][a-z0-9]*", calculator.description))
    assert set(FUNCTIONS) | set(CONSTANTS) <= described


# calculator


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("10 - 4 - 3", "3"),
        ("-3 ** 2", "-9"),
        ("(-3) ** 2", "9"),
        ("2 ** 3 ** 2", "512"),
        ("--5", "5"),
        ("+-+7", "-7"),
        ("7 / 2", "3.5"),
        ("10 / 4 * 2", "5"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("7 % 3", "1"),
        ("-7 % 3", "2"),
        ("5.5 % 2", "1.5"),
        ("2 ** -2", "0.25"),
        ("2 ^ 10", "1024"),
        ("2 × 3 ÷ 4", "1.5"),
        (" 1 +\n 2 ", "3"),
        ("2 ** 100", "1267650600228229401496703205376"),
        ("1e3 * 3", "3000"),
        ("0.1 + 0.2", "0.3"),
        ("1 / 3", "0.333333333333333"),
        ("sqrt(16)", "4"),
        ("sqrt(2)", "1.4142135623731"),
        ("cbrt(27)", "3"),
        ("log(e)", "1"),
        ("log(1000, 10)", "3"),
        ("log10(1000)", "3"),
        ("log2(1024)", "10"),
        ("exp(0)", "1"),
        ("sin(pi / 2)", "1"),
        ("cos(0)", "1"),
        ("degrees(pi)", "180"),
        ("radians(180)", "3.14159265358979"),
        ("tau / 2", "3.14159265358979"),
        ("hypot(3, 4)", "5"),
        ("factorial(20)", "2432902008176640000"),
        ("gcd(12, 18)", "6"),
        ("lcm(4, 6)", "12"),
        ("round(2.675, 2)", "2.67"),
        ("round(7.5)", "8"),
        ("abs(-3.5)", "3.5"),
        ("floor(-2.5)", "-3"),
        ("ceil(2.1)", "3"),
        ("max(1, 5, 3) - min(4, 2)", "3"),
        ("1e300 * 1e7", "1e+307"),
    ],
)
def test_calculator(expression, result):
    assert calculator.invoke({"expression": expression}) == result


def test_calculator_factorial_at_the_limit_is_exact():
    result = calculator.invoke({"expression": "factorial(1000)"})
    assert len(result) == 2568
    assert result.startswith("402387260077093773543702433923003985719374864210714632543799")
    assert result.endswith("0" * 249)


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("1 / 0", "Error: division by zero."),
        ("5 % 0", "Error: division by zero."),
        ("7 // 0.0", "Error: division by zero."),
        ("0 ** -1", "Error: division by zero."),
        ("", "Error: the expression is empty."),
        ("2 +", "Error: the expression is not valid arithmetic (invalid syntax)."),
        ("(1 + 2", "Error: the expression is not valid arithmetic ('(' was never closed)."),
        (
            "x + 1",
            "Error: unknown name 'x'. Use numbers, the constants pi, e and tau, and the "
            "functions listed in the tool description.",
        ),
        (
            "foo(2)",
            "Error: unknown function 'foo'. Use only the functions listed in the tool description.",
        ),
        ("sqrt", "Error: sqrt is a function; call it with parentheses, like sqrt(2)."),
        ("sqrt(-1)", "Error: sqrt(-1) is undefined (math domain error)."),
        ("log(0)", "Error: log(0) is undefined (math domain error)."),
        ("sqrt(1, 2)", "Error: wrong number or kind of arguments for sqrt()."),
        ("gcd(2.5, 5)", "Error: wrong number or kind of arguments for gcd()."),
        ("round(2.5, ndigits=1)", "Error: keyword arguments are not supported (in round())."),
        ("exp(1000)", "Error: the result is too large (overflow)."),
        ("1e308 * 10", "Error: the result is too large (overflow)."),
        ("1e400", "Error: the result is too large (overflow)."),
        (
            "(-8) ** (1 / 3)",
            "Error: a negative number raised to a fractional power is not a real number.",
        ),
        ("factorial(2.5)", "Error: factorial() takes a whole number from 0 to 1,000."),
        (
            "2(3 + 4)",
            "Error: a number cannot be called; use * to multiply, as in 2 * (3 + 4).",
        ),
        (
            "1,000",
            "Error: a comma-separated list is not a single expression (write 1000, not 1,000).",
        ),
        (
            "2 < 3",
            "Error: comparisons are not supported; use numbers, operators and the listed "
            "functions.",
        ),
        ("2 << 3", "Error: the operator '<<' is not supported; use + - * / // % **."),
        ("True + 1", "Error: True and False are not numbers; use 1 and 0."),
        ("'a' * 3", "Error: text is not allowed; the calculator only works with numbers."),
        ("1j", "Error: 1j is not a number the calculator understands."),
    ],
)
def test_calculator_errors(expression, error):
    assert calculator.invoke({"expression": expression}) == error


def calculate_within(expression: str, seconds: float = 5.0) -> str:
    """The calculator's answer, bounded (a runaway big-number computation holds the GIL)."""
    return answer_within(calculator, {"expression": expression}, seconds)


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        (
            "__import__('os').system('ls')",
            "Error: attribute access ('.') is not allowed.",
        ),
        (
            "__import__('os')",
            "Error: unknown function '__import__'. Use only the functions listed in the tool "
            "description.",
        ),
        ("().__class__.__bases__", "Error: attribute access ('.') is not allowed."),
        (
            "(lambda: 1)()",
            "Error: lambda functions are not supported; use numbers, operators and the listed "
            "functions.",
        ),
        (
            "[x for x in (1, 2)]",
            "Error: comprehensions are not supported; use numbers, operators and the listed "
            "functions.",
        ),
        (
            "9**9**9",
            "Error: the result is too large (about 369,693,100 digits; the limit is 3,000 digits).",
        ),
        (
            "2**10**10",
            "Error: the result is too large (about 3,010,299,957 digits; the limit is 3,000 "
            "digits).",
        ),
        (
            "10**10**10",
            "Error: the result is too large (about 10,000,000,000 digits; the limit is 3,000 "
            "digits).",
        ),
        (
            "(10**400)**(10**400)",
            "Error: the result is too large (astronomically many digits; the limit is 3,000 "
            "digits).",
        ),
        (
            "2**9000 * 2**9000",
            "Error: the result is too large (about 5,419 digits; the limit is 3,000 digits).",
        ),
        ("factorial(10**6)", "Error: factorial() takes a whole number from 0 to 1,000."),
        ("factorial(factorial(7))", "Error: factorial() takes a whole number from 0 to 1,000."),
        ("round(1, -10**9)", "Error: round() takes a whole number from -100 to 100."),
        ("2.0 ** 10**10", "Error: the result is too large (overflow)."),
        (
            "1+" * 5000 + "1",
            "Error: the expression is too long (10,001 characters; the limit is 500).",
        ),
        (
            "(" * 240 + "1" + ")" * 240,
            "Error: the expression is not valid arithmetic (too many nested parentheses).",
        ),
        (
            "-" * 400 + "1",
            "Error: the expression is nested too deeply (more than 200 levels).",
        ),
    ],
)
def test_calculator_refuses_attacks_at_once(expression, error):
    assert calculate_within(expression) == error


def test_calculator_adds_up_long_lists():
    assert calculator.invoke({"expression": "+".join(["1.5"] * 120)}) == "180"


# text_analyzer

PARAGRAPHS = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps!\n\n"
    "A fox is quick; the fox is clever?"
)


def test_text_analyzer():
    # 20 words with 72 letters and 23 syllables in 3 sentences:
    # 206.835 - 1.015 * 20 / 3 - 84.6 * 23 / 20 = 102.8
    assert text_analyzer.invoke({"text": PARAGRAPHS}) == (
        "Characters: 96 (76 without spaces)\n"
        "Words: 20\n"
        "Sentences: 3\n"
        "Paragraphs: 2\n"
        "Average word length: 3.6 characters\n"
        "Reading time: about 6 seconds at 200 words per minute\n"
        "Most frequent words: fox (3), quick (2), dog (2), brown (1), jumps (1)\n"
        "Readability: 102.8 on the Flesch reading ease scale (very easy)"
    )


def test_text_analyzer_long_text():
    # 85 characters, 6 words with 77 letters and 28 syllables, repeated 200 times:
    # 206.835 - 1.015 * 6 - 84.6 * 28 / 6 = -194.1
    sentence = (
        "Nevertheless, organizational considerations necessitate comprehensive documentation. "
    )
    assert text_analyzer.invoke({"text": sentence * 200}).splitlines() == [
        "Characters: 17,000 (15,800 without spaces)",
        "Words: 1,200",
        "Sentences: 200",
        "Paragraphs: 1",
        "Average word length: 12.8 characters",
        "Reading time: about 6 min at 200 words per minute",
        "Most frequent words: nevertheless (200), organizational (200), considerations (200),"
        " necessitate (200), comprehensive (200)",
        "Readability: -194.1 on the Flesch reading ease scale (very difficult)",
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "Error: the text is empty; pass the text to analyze."),
        (" \n\t ", "Error: the text is empty; pass the text to analyze."),
        ("?! ...", "Error: the text contains no words."),
        ("a" * 100_001, "Error: the text is too long (100,001 characters; the limit is 100,000)."),
    ],
)
def test_text_analyzer_errors(text, error):
    assert text_analyzer.invoke({"text": text}) == error


# current_time


def _parse(answer: str) -> tuple[str, datetime]:
    first, second = answer.splitlines()
    return first, datetime.fromisoformat(second.removeprefix("ISO 8601: "))


def test_current_time_utc_by_default():
    first, moment = _parse(current_time.invoke({}))
    assert re.fullmatch(r"UTC: \w+day, \d{1,2} \w+ \d{4}, \d\d:\d\d:\d\d UTC \(UTC\+00:00\)", first)
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - moment) < timedelta(seconds=5)


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "asia/tokyo", "Tokyo", " tokyo "])
def test_current_time_in_tokyo(zone):
    first, moment = _parse(current_time.invoke({"timezone": zone}))
    assert re.fullmatch(
        r"Asia/Tokyo: \w+day, \d{1,2} \w+ \d{4}, \d\d:\d\d:\d\d JST \(UTC\+09:00\)", first
    )
    assert moment.utcoffset() == timedelta(hours=9)
    assert abs(datetime.now(UTC) - moment) < timedelta(seconds=5)
    assert first.split(", ", 1)[1].startswith(f"{moment.day} {moment:%B %Y, %H:%M:%S}")


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/passwd", "x" * 1000]
)
def test_current_time_unknown_zone(zone):
    assert current_time.invoke({"timezone": zone}) == (
        f"Error: unknown time zone {zone!r}. Use an IANA name in Area/City form, such as "
        "Europe/Paris, America/New_York, Asia/Tokyo, or UTC."
    )


# weather, against the Open-Meteo stand-in


async def test_weather(weather, weather_server):
    weather_server.add_place(PARIS, current=PARIS_NOW)
    assert await weather.ainvoke({"location": "Paris"}) == (
        "Current weather in Paris, Île-de-France, France at 2026-11-25 16:00 local time: "
        "Partly cloudy, 8.4°C (feels like 5.9°C), humidity 81%, wind 14.2 km/h."
    )
    assert weather_server.requests == [
        RecordedRequest(
            GEOCODING_PATH, {"name": "Paris", "count": "1", "language": "en", "format": "json"}
        ),
        RecordedRequest(
            FORECAST_PATH,
            {
                "latitude": "48.85341",
                "longitude": "2.3488",
                "current": CURRENT_FIELDS,
                "timezone": "auto",
            },
        ),
    ]
    assert CURRENT_FIELDS == (
        "temperature_2m,apparent_temperature,relative_humidity_2m,wind_speed_10m,weather_code"
    )


async def test_weather_with_partial_data_and_an_unlisted_code(weather, weather_server):
    berlin = {
        "name": "Berlin",
        "latitude": 52.52,
        "longitude": 13.41,
        "admin1": "Berlin",
        "country": "Germany",
    }
    weather_server.add_place(berlin, current={"temperature_2m": -1.5, "weather_code": 42})
    assert await weather.ainvoke({"location": "berlin"}) == (
        "Current weather in Berlin, Germany: Weather code 42, -1.5°C."
    )


async def test_weather_unknown_place(weather, weather_server):
    assert await weather.ainvoke({"location": "Atlantis"}) == (
        "Error: no place called 'Atlantis' was found. Check the spelling, "
        "or give just the city name without the country."
    )
    assert [request.path for request in weather_server.requests] == [GEOCODING_PATH]


async def test_weather_without_a_location(weather, weather_server):
    assert await weather.ainvoke({"location": "  "}) == (
        "Error: give a place name of 1 to 200 characters, such as 'Paris'."
    )
    assert weather_server.requests == []


async def test_weather_server_error(weather, weather_server):
    weather_server.add_place(PARIS, current=PARIS_NOW)
    weather_server.status = 500
    assert await weather.ainvoke({"location": "Paris"}) == (
        "Error: the weather service answered with HTTP 500; try again later."
    )


async def test_weather_malformed_answer(weather, weather_server):
    weather_server.body = b"<html>Service Unavailable</html>"
    assert await weather.ainvoke({"location": "Paris"}) == (
        "Error: the weather service sent an unexpected answer; try again later."
    )


async def test_weather_timeout(weather_server):
    weather_server.add_place(PARIS, current=PARIS_NOW)
    weather_server.delay = 30  # released when the fixture closes the server
    weather = make_weather_tool(weather_server.geocoding_url, weather_server.forecast_url, 0.2)
    assert await weather.ainvoke({"location": "Paris"}) == (
        "Error: the weather service did not answer within 0.2 seconds; try again later."
    )


async def test_weather_offline():
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    weather = make_weather_tool(f"{url}/v1/search", f"{url}/v1/forecast", 5)
    answer = await weather.ainvoke({"location": "Paris"})
    assert re.fullmatch(
        r"Error: the weather service could not be reached \(.+\); try again later\.", answer
    ), answer
