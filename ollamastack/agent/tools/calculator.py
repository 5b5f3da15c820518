"""The `calculator` tool: exact arithmetic through `arithmetic.evaluate` (an `ast` walk, never
`eval`)."""

from __future__ import annotations

from langchain_core.tools import tool

from ollamastack.agent.tools.arithmetic import CalculationError, evaluate, format_number


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
