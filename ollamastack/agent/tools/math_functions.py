"""The names the calculator knows: its constants and functions, each bounded (a factorial or a
rounding that could run away is refused)."""

from __future__ import annotations

import math
from collections.abc import Callable

MAX_FACTORIAL = 1000
MAX_ROUND_DIGITS = 100

Number = int | float


class CalculationError(Exception):
    """An expression the calculator cannot or will not evaluate; the message is for the user."""


def _whole(value: Number, function: str, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not low <= value <= high:
        raise CalculationError(f"{function}() takes a whole number from {low:,} to {high:,}.")
    return value


def _factorial(n: Number) -> int:
    return math.factorial(_whole(n, "factorial", 0, MAX_FACTORIAL))


def _round(x: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(x)
    return round(x, _whole(ndigits, "round", -MAX_ROUND_DIGITS, MAX_ROUND_DIGITS))


CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "cbrt": math.cbrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "asinh": math.asinh,
    "acosh": math.acosh,
    "atanh": math.atanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "hypot": math.hypot,
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "trunc": math.trunc,
    "min": min,
    "max": max,
    "factorial": _factorial,
    "gcd": math.gcd,
    "lcm": math.lcm,
}

