"""Safe arithmetic for the calculator tool.

The expression is parsed with `ast` and walked over a whitelist of node types; nothing is ever
passed to `eval`. Every step is bounded so that hostile input (``9**9**9``, ``factorial(10**6)``,
very long or deeply nested expressions) is refused at once instead of hanging or eating memory.
"""

from __future__ import annotations

import ast
import math
import operator
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ollamastack.agent.tools.math_functions import (
    CONSTANTS,
    FUNCTIONS,
    CalculationError,
    Number,
)

__all__ = ["CONSTANTS", "FUNCTIONS", "CalculationError", "evaluate", "format_number"]

MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 200
MAX_DIGITS = 3000

_LOG10_2 = math.log10(2)
_FLOAT_MAX = sys.float_info.max

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}

_UNSUPPORTED: dict[type[ast.AST], str] = {
    ast.Compare: "comparisons",
    ast.BoolOp: "'and' and 'or'",
    ast.IfExp: "'if' expressions",
    ast.Lambda: "lambda functions",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.List: "lists",
    ast.Set: "sets",
    ast.Dict: "dictionaries",
    ast.Subscript: "indexing",
    ast.Starred: "'*' unpacking",
    ast.NamedExpr: "assignments",
    ast.JoinedStr: "f-strings",
    ast.Await: "'await'",
}

_SYMBOLS: dict[type[ast.AST], str] = {
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.MatMult: "@",
    ast.Invert: "~",
    ast.Not: "not",
}

_TRANSLATION = str.maketrans({"^": "**", "×": "*", "÷": "/", "−": "-"})


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression, raising `CalculationError` with a readable message.

    ``^`` is read as a power, as on a pocket calculator.

    >>> evaluate("2 * (3 + 4) ** 2")
    98
    >>> evaluate("2 ^ 0.5")
    1.4142135623730951
    """
    text = " ".join(expression.translate(_TRANSLATION).split())
    if not text:
        raise CalculationError("the expression is empty.")
    if len(text) > MAX_EXPRESSION_CHARS:
        limit = MAX_EXPRESSION_CHARS
        raise CalculationError(
            f"the expression is too long ({len(text):,} characters; the limit is {limit})."
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"the expression is not valid arithmetic ({exc.msg}).") from None
    except (ValueError, RecursionError, MemoryError):
        raise CalculationError("the expression is not valid arithmetic.") from None
    return _eval(tree.body, 1)


def format_number(value: Number) -> str:
    """Write a result the way a person reads it: whole numbers without ".0", 15 significant digits.

    >>> [format_number(v) for v in (14, 4.0, 2.5, 0.1 + 0.2, 1 / 3, 1e20, -0.0)]
    ['14', '4', '2.5', '0.3', '0.333333333333333', '1e+20', '0']
    """
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15g}"
    return str(value)


def _eval(node: ast.AST, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise CalculationError(
            f"the expression is nested too deeply (more than {MAX_DEPTH} levels)."
        )
    match node:
        case ast.Constant(value=bool()):
            raise CalculationError("True and False are not numbers; use 1 and 0.")
        case ast.Constant(value=int() | float() as value):
            return _checked(value)
        case ast.Constant(value=str() | bytes()):
            raise CalculationError("text is not allowed; the calculator only works with numbers.")
        case ast.Constant(value=value):
            raise CalculationError(f"{value!r} is not a number the calculator understands.")
        case ast.Name(id=name) if name in CONSTANTS:
            return CONSTANTS[name]
        case ast.Name(id=name) if name in FUNCTIONS:
            raise CalculationError(
                f"{name} is a function; call it with parentheses, like {name}(2)."
            )
        case ast.Name(id=name):
            raise CalculationError(
                f"unknown name {name!r}. Use numbers, the constants pi, e and tau, "
                "and the functions listed in the tool description."
            )
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand, depth + 1)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return +_eval(operand, depth + 1)
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            return _binary(op, _eval(left, depth + 1), _eval(right, depth + 1))
        case ast.BinOp(op=op) | ast.UnaryOp(op=op):
            symbol = _SYMBOLS.get(type(op), type(op).__name__)
            raise CalculationError(
                f"the operator {symbol!r} is not supported; use + - * / // % **."
            )
        case ast.Call(func=ast.Name(id=name), keywords=[_, *_]):
            raise CalculationError(f"keyword arguments are not supported (in {name}()).")
        case ast.Call(func=ast.Name(id=name), args=args) if name in FUNCTIONS:
            values = [_eval(arg, depth + 1) for arg in args]
            return _call(name, values)
        case ast.Call(func=ast.Name(id=name)):
            raise CalculationError(
                f"unknown function {name!r}. Use only the functions listed in the tool description."
            )
        case ast.Call(func=func):
            _eval(func, depth + 1)  # raises for attributes, lambdas and the like
            raise CalculationError(
                "a number cannot be called; use * to multiply, as in 2 * (3 + 4)."
            )
        case ast.Attribute():
            raise CalculationError("attribute access ('.') is not allowed.")
        case ast.Tuple():
            raise CalculationError(
                "a comma-separated list is not a single expression (write 1000, not 1,000)."
            )
    what = _UNSUPPORTED.get(type(node), type(node).__name__)
    raise CalculationError(
        f"{what} are not supported; use numbers, operators and the listed functions."
    )


def _binary(op: ast.operator, left: Number, right: Number) -> Number:
    if isinstance(op, ast.Pow):
        _check_power(left, right)
    elif isinstance(op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
        _check_digits((left.bit_length() + right.bit_length()) * _LOG10_2)
    with _arithmetic_errors(left, right):
        return _checked(_BINARY[type(op)](left, right))


def _call(name: str, args: list[Number]) -> Number:
    with _arithmetic_errors(*args):
        try:
            return _checked(FUNCTIONS[name](*args))
        except ValueError:
            shown = ", ".join(format_number(arg) for arg in args)
            raise CalculationError(f"{name}({shown}) is undefined (math domain error).") from None
        except TypeError:
            raise CalculationError(f"wrong number or kind of arguments for {name}().") from None


@contextmanager
def _arithmetic_errors(*operands: Number) -> Iterator[None]:
    """Name what went wrong. An overflow may come from a whole number too large to become a
    float on the way in (``10**400 / 3``, ``sqrt(10**400)``), not from the result."""
    try:
        yield
    except ZeroDivisionError:
        raise CalculationError("division by zero.") from None
    except OverflowError:
        if any(isinstance(x, int) and abs(x) > _FLOAT_MAX for x in operands):
            raise CalculationError(
                "whole numbers above about 1.8e308 work only with + - * // % and whole powers; "
                "/, decimals and functions like sqrt need smaller numbers."
            ) from None
        raise CalculationError("the result is too large (overflow).") from None


def _check_power(base: Number, exponent: Number) -> None:
    if base < 0 and isinstance(exponent, float) and not exponent.is_integer():
        raise CalculationError(
            "a negative number raised to a fractional power is not a real number."
        )
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent.bit_length() > 64:
            _check_digits(math.inf)
        _check_digits(exponent * math.log10(abs(base)))


def _check_digits(digits: float) -> None:
    """Refuse results of more than `MAX_DIGITS` digits, or fewer where the interpreter's limit
    on writing whole numbers as text (`sys.get_int_max_str_digits`) is lower, so that
    `format_number` can always write the result."""
    limit = min(MAX_DIGITS, sys.get_int_max_str_digits() or MAX_DIGITS)
    if digits > limit:
        size = f"about {digits:,.0f}" if math.isfinite(digits) else "astronomically many"
        raise CalculationError(
            f"the result is too large ({size} digits; the limit is {limit:,} digits)."
        )


def _checked(value: object) -> Number:
    if isinstance(value, int):
        _check_digits(value.bit_length() * _LOG10_2)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CalculationError("the result is too large (overflow).")
        return value
    raise CalculationError("the result is not a real number.")
